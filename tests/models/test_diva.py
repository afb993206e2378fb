"""The modified DIVA's objective (the CCVAE paper's appendix C.4) against a hand computation.

Every expected number is a Python loop over data points and labels with ``torch.distributions``;
the model and guide are used only for their networks and parameters. Labels of 3, 2 and 4
classes (so two are padded), ``B = 5``, ``L = 3``, ``d_c = 2``, ``d_s = 4``; the latents are fixed
by :class:`~.helpers.FixLatents` and every unseen label summed over exactly.
"""
from __future__ import annotations

import pyro
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer import SVI
from pyro.nn import PyroParam
from torch import distributions as td
from torch.nn import functional as F

from pyro_ccvae.likelihoods import build_likelihood
from pyro_ccvae.models.diva import DIVAGuide, DIVAModel, DIVARepresentation, sites
from pyro_ccvae.models.diva.elbo import diva_elbo
from pyro_ccvae.nets import ConvDecoder

from .helpers import FixLatents

NUM_CLASSES, B, DC, DS, CH, SIZE = [3, 2, 4], 5, 2, 4, 1, 32
L, K = len(NUM_CLASSES), max(NUM_CLASSES)
BETA, ALPHA = 0.7, 2.5
Y = torch.tensor([[2, 1, 3], [0, 0, 1], [1, 1, 0], [2, 0, 2], [0, 1, 3]], dtype=torch.float64)
MASKS = {
    "all_seen": torch.ones(B, L, dtype=torch.bool),
    "none_seen": torch.zeros(B, L, dtype=torch.bool),
    "mixed": torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool),
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make():
    """A DIVA with every symmetric default broken (prior locations and scales, p(y), classifier)."""
    g = torch.Generator().manual_seed(5)
    model = DIVAModel(NUM_CLASSES, DC, DS, build_likelihood("laplace", CH), ConvDecoder(L * DC + DS, CH, SIZE), beta=BETA)
    guide = DIVAGuide(NUM_CLASSES, DC, DS, CH, SIZE, beta=BETA, alpha=ALPHA)
    with torch.no_grad():
        model.conditional_prior.loc.copy_(torch.randn(L, K, DC, generator=g))
        model.label_probs.copy_(torch.tensor([[0.2, 0.5, 0.3, 0.0], [0.7, 0.3, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]]))
        guide.classifier.weight.copy_(torch.randn(L, K, DC, generator=g))
        guide.classifier.bias.copy_(torch.randn(L, K, generator=g))
    model.conditional_prior.scale = PyroParam(0.5 + torch.rand(L, K, DC, generator=g), constraint=constraints.positive)
    return model.double(), guide.double()


def fixed_latents():
    g = torch.Generator().manual_seed(13)
    return {sites.Z_C: torch.randn(L, B, DC, generator=g, dtype=torch.float64), sites.Z_S: torch.randn(B, DS, generator=g, dtype=torch.float64)}


def images():
    return torch.rand(B, CH, SIZE, SIZE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


@torch.no_grad()
def bound_by_hand(model, guide, x, y, mask, z_c, z_s) -> torch.Tensor:
    prior = model.conditional_prior
    total = torch.zeros((), dtype=torch.float64)
    for b in range(B):
        loc, raw = guide.encoder(x[b : b + 1])[0].split(L * DC + DS)
        scale = F.softplus(raw) + 1e-4
        loc_c, scale_c = loc[: L * DC].reshape(L, DC), scale[: L * DC].reshape(L, DC)
        total += td.Laplace(model.decoder(torch.cat([z_c[:, b].flatten(), z_s[b]]))[0], 1.0).log_prob(x[b]).sum()
        total += BETA * (td.Normal(0.0, 1.0).log_prob(z_s[b]).sum() - td.Normal(loc[L * DC :], scale[L * DC :]).log_prob(z_s[b]).sum())
        for i, k_i in enumerate(NUM_CLASSES):
            z = z_c[i, b]
            log_q_z = td.Normal(loc_c[i], scale_c[i]).log_prob(z).sum()
            log_q_y = td.Categorical(logits=torch.stack([guide.classifier.weight[i, k] @ z + guide.classifier.bias[i, k] for k in range(k_i)]))
            log_p_y = td.Categorical(probs=model.label_probs[i, :k_i])
            log_p_z = [td.Normal(prior.loc[i, k], prior.scale[i, k]).log_prob(z).sum() for k in range(k_i)]
            if mask[b, i]:
                k = y[b, i].long()
                total += BETA * (log_p_z[k] + log_p_y.log_prob(k) - log_q_z) + ALPHA * log_q_y.log_prob(k)
            else:
                ks = torch.arange(k_i)
                jensen = (log_q_y.probs * (torch.stack(log_p_z) + log_p_y.log_prob(ks) - log_q_y.log_prob(ks))).sum()
                total += BETA * (jensen - log_q_z)
    return total


@pytest.mark.parametrize("case", sorted(MASKS))
def test_bound_matches_hand_computation(case):
    model, guide = make()
    x, fixed, mask = images(), fixed_latents(), MASKS[case]
    loss = diva_elbo().loss(model, FixLatents(fixed)(guide), x, Y, mask)
    expected = bound_by_hand(model, guide, x, Y, mask, fixed[sites.Z_C], fixed[sites.Z_S])
    assert loss == pytest.approx(-expected.item(), rel=1e-10)


def test_no_labels_is_the_unsupervised_bound():
    model, guide = make()
    x, fixed = images(), FixLatents(fixed_latents())(guide)
    assert diva_elbo().loss(model, fixed, x) == pytest.approx(diva_elbo().loss(model, fixed, x, Y, MASKS["none_seen"]), rel=1e-12)


def test_a_step_moves_every_parameter_with_finite_gradients():
    model, guide = make()
    params = dict([*model.named_parameters(), *guide.named_parameters()])
    loss = diva_elbo().differentiable_loss(model, guide, images(), Y, MASKS["mixed"])
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    before = {n: p.detach().clone() for n, p in params.items()}
    pyro.clear_param_store()
    SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), diva_elbo()).step(images(), Y, MASKS["mixed"])
    after = dict([*model.named_parameters(), *guide.named_parameters()])
    assert {n for n in before if not torch.equal(before[n], after[n].detach())} == set(before)


def test_intervene_refuses_a_class_the_label_lacks():
    model, guide = make()
    rep = DIVARepresentation(model, guide, ["a", "b", "c"], "cpu")
    with pytest.raises(ValueError, match=r"'b' has classes 0\.\.1"):
        rep.intervene(torch.zeros(B, L, DC, dtype=torch.float64), 1, 2)
