"""MVAE's sub-sampled objective (Wu & Goodman, 2018) and its experts against hand computations.

Every expected number is a Python loop over data points and labels with ``torch.distributions``
(the products of Gaussian experts written out from their means and variances); the model and
guide are used only for their networks and parameters. Labels of 3 and 2 classes, ``B = 4``,
``L = 2``, ``d = 5``; the latents of every ELBO term are fixed by :class:`~.helpers.FixLatents`.
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
from pyro_ccvae.models import get_family
from pyro_ccvae.models.mvae import MVAEConfig, MVAEGuide, MVAEModel, MVAERepresentation, sites
from pyro_ccvae.models.mvae.elbo import mvae_elbo
from pyro_ccvae.nets import ConvDecoder

from .helpers import FixLatents

NUM_CLASSES, B, D, CH, SIZE = [3, 2], 4, 5, 1, 32
L, K = len(NUM_CLASSES), max(NUM_CLASSES)
BETA, IMAGE_WEIGHT, LABEL_WEIGHT = 0.6, 1.3, 4.0
Y = torch.tensor([[2, 1], [0, 0], [1, 1], [2, 0]], dtype=torch.float64)
MASKS = {
    "all_seen": torch.ones(B, L, dtype=torch.bool),
    "none_seen": torch.zeros(B, L, dtype=torch.bool),
    "mixed": torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=torch.bool),
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make():
    """An MVAE whose label experts differ from the prior and from each other."""
    g = torch.Generator().manual_seed(21)
    decoder = ConvDecoder(D, CH, SIZE)
    model = MVAEModel(NUM_CLASSES, D, build_likelihood("laplace", CH), decoder, beta=BETA, image_weight=IMAGE_WEIGHT, label_weight=LABEL_WEIGHT)
    guide = MVAEGuide(NUM_CLASSES, D, CH, SIZE, beta=BETA)
    with torch.no_grad():
        guide.label_loc.copy_(torch.randn(L, K, D, generator=g))
    guide.label_scale = PyroParam(0.3 + torch.rand(L, K, D, generator=g), constraint=constraints.positive)
    return model.double(), guide.double()


def images():
    return torch.rand(B, CH, SIZE, SIZE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def fixed_latents():
    g = torch.Generator().manual_seed(17)
    return {
        sites.Z_IMAGE: torch.randn(B, D, generator=g, dtype=torch.float64),
        sites.Z_JOINT: torch.randn(B, D, generator=g, dtype=torch.float64),
        sites.Z_LABEL: torch.randn(L, B, D, generator=g, dtype=torch.float64),
    }


def expert_product(experts):
    """The product of ``N(0, 1)`` with Gaussian experts ``[(loc, scale), ...]``, by its mean and variance."""
    precision = 1.0 + sum(1.0 / scale**2 for _, scale in experts)
    loc = sum(loc / scale**2 for loc, scale in experts) / precision
    return td.Normal(loc, precision**-0.5)


def label_log_probs(model, z, i):
    """``log p(y_i | z)`` from the label decoder's weights."""
    hidden = F.relu(model.label_decoder.hidden(z))
    logits = model.label_decoder.heads(hidden).reshape(L, K)[i, : NUM_CLASSES[i]]
    return td.Categorical(logits=logits)


@torch.no_grad()
def objective_by_hand(model, guide, x, y, mask, z, beta=BETA) -> torch.Tensor:
    standard = td.Normal(torch.zeros(D, dtype=torch.float64), 1.0)
    total = torch.zeros((), dtype=torch.float64)
    for b in range(B):
        loc, raw = guide.encoder(x[b : b + 1])[0].chunk(2)
        image = (loc, F.softplus(raw) + 1e-4)
        labels = {i: (guide.label_loc[i, y[b, i].long()], guide.label_scale[i, y[b, i].long()]) for i in range(L) if mask[b, i]}

        def log_p_x(latent):
            return td.Laplace(model.decoder(latent.unsqueeze(0))[0], 1.0).log_prob(x[b]).sum()

        q = expert_product([image])  # ELBO(x)
        total += IMAGE_WEIGHT * log_p_x(z[sites.Z_IMAGE][b]) - beta * td.kl_divergence(q, standard).sum()
        if not labels:
            continue
        q = expert_product([image, *labels.values()])  # ELBO(x, y_o)
        z_joint = z[sites.Z_JOINT][b]
        label_terms = sum(label_log_probs(model, z_joint, i).log_prob(y[b, i].long()) for i in labels)
        total += IMAGE_WEIGHT * log_p_x(z_joint) + LABEL_WEIGHT * label_terms - beta * td.kl_divergence(q, standard).sum()
        for i, expert in labels.items():  # ELBO(y_i)
            q = expert_product([expert])
            total += label_log_probs(model, z[sites.Z_LABEL][i, b], i).log_prob(y[b, i].long()) - beta * td.kl_divergence(q, standard).sum()
    return total


@pytest.mark.parametrize("case", sorted(MASKS))
def test_subsampled_objective_matches_hand_computation(case):
    model, guide = make()
    x, z, mask = images(), fixed_latents(), MASKS[case]
    loss = mvae_elbo().loss(model, FixLatents(z)(guide), x, Y, mask)
    assert loss == pytest.approx(-objective_by_hand(model, guide, x, Y, mask, z).item(), rel=1e-10)


@pytest.mark.parametrize("step, factor", [(1, 1 / 60), (30, 0.5), (60, 1.0), (500, 1.0)])
def test_kl_warmup_weights_every_kl_term(step, factor):
    """The family's warm-up (20 epochs of 3 steps here) scales every KL term by min(1, t / T)."""
    model, guide = make()
    family = get_family("mvae")
    family.before_step(model, guide, MVAEConfig(mvae_kl_warmup_epochs=20), step, steps_per_epoch=3)
    assert model.kl_annealing == guide.kl_annealing == pytest.approx(factor)
    x, z, mask = images(), fixed_latents(), MASKS["mixed"]
    loss = mvae_elbo().loss(model, FixLatents(z)(guide), x, Y, mask)
    assert loss == pytest.approx(-objective_by_hand(model, guide, x, Y, mask, z, beta=BETA * factor).item(), rel=1e-10)
    family.before_step(model, guide, MVAEConfig(mvae_kl_warmup_epochs=0), step, steps_per_epoch=3)
    assert model.kl_annealing == guide.kl_annealing == 1.0


def test_no_labels_is_the_image_elbo():
    model, guide = make()
    x, fixed = images(), FixLatents(fixed_latents())(guide)
    assert mvae_elbo().loss(model, fixed, x) == pytest.approx(mvae_elbo().loss(model, fixed, x, Y, MASKS["none_seen"]), rel=1e-12)


def test_a_step_moves_every_parameter_with_finite_gradients():
    model, guide = make()
    params = dict([*model.named_parameters(), *guide.named_parameters()])
    loss = mvae_elbo().differentiable_loss(model, guide, images(), Y, MASKS["mixed"])
    grads = torch.autograd.grad(loss, list(params.values()))
    assert all(torch.isfinite(g).all() for g in grads)
    before = {n: p.detach().clone() for n, p in params.items()}
    pyro.clear_param_store()
    SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), mvae_elbo()).step(images(), Y, MASKS["mixed"])
    after = dict([*model.named_parameters(), *guide.named_parameters()])
    assert {n for n in before if not torch.equal(before[n], after[n].detach())} == set(before)


@torch.no_grad()
def test_representation_decodes_products_of_its_experts():
    """Generation decodes a draw of ``q(z | y)``; a reconstruction conditions on the image and
    its own predicted labels; an intervention on label ``i`` swaps in class ``k``'s expert."""
    model, guide = make()
    rep = MVAERepresentation(model, guide, ["a", "b"], NUM_CLASSES, "cpu")
    y = Y[:2]
    style = rep.sample_style((2,)).double()
    eps = style[:, 2 * D :]
    generated = rep.decode(rep.sample_characteristic(y).double(), style)
    for b in range(2):
        q = expert_product([(guide.label_loc[i, y[b, i].long()], guide.label_scale[i, y[b, i].long()]) for i in range(L)])
        assert torch.allclose(generated[b], model.decoder((q.loc + q.scale * eps[b]).unsqueeze(0))[0])

    x = images()[:2]
    z_c, z_s = rep.encode(x)
    assert torch.allclose(z_c.sum(-1), torch.ones(2, L, dtype=torch.float64)) and (z_c[:, 1, 2] == 0).all()
    moved = rep.intervene(z_c, 0, 2)
    reconstructed, intervened = rep.decode(z_c, z_s), rep.decode(moved, z_s)
    for b in range(2):
        loc, raw = guide.encoder(x[b : b + 1])[0].chunk(2)
        image = (loc, F.softplus(raw) + 1e-4)
        assert torch.allclose(rep.classify(z_c)[b, 0, :3], label_log_probs(model, expert_product([image]).loc, 0).probs)
        # label 1 stays the geometric mixture of its class experts, weighted by its predicted probabilities
        mixture_precision = sum(z_c[b, 1, k] / guide.label_scale[1, k] ** 2 for k in range(2))
        mixture_eta = sum(z_c[b, 1, k] * guide.label_loc[1, k] / guide.label_scale[1, k] ** 2 for k in range(2))
        label_1 = (mixture_eta / mixture_precision, mixture_precision**-0.5)
        for vector, out in ((z_c[b, 0], reconstructed[b]), (torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), intervened[b])):
            precision = sum(vector[k] / guide.label_scale[0, k] ** 2 for k in range(3))
            label_0 = (sum(vector[k] * guide.label_loc[0, k] / guide.label_scale[0, k] ** 2 for k in range(3)) / precision, precision**-0.5)
            q = expert_product([image, label_0, label_1])
            assert torch.allclose(out, model.decoder(q.loc.unsqueeze(0))[0])
