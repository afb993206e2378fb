"""M2's objective against hand computations (Kingma et al., 2014; :mod:`pyro_ccvae.models.m2.elbo`).

Every expected number is an explicit Python sum over data points and joint label values with
``torch.distributions``; the model and guide are used only for their networks. Two labels of
3 and 2 classes (so one label is padded), ``B = 4 != L = 2``, and ``z`` fixed per data point
by :class:`~.helpers.FixLatents` so that value comparisons are exact.
"""
from __future__ import annotations

import itertools

import pyro
import pytest
import torch
from pyro.infer import SVI
from torch import distributions as td
from torch.nn import functional as F

from pyro_ccvae.likelihoods import build_likelihood
from pyro_ccvae.models.m2 import M2Guide, M2Model
from pyro_ccvae.models.m2 import sites
from pyro_ccvae.models.m2.elbo import m2_elbo, resolve_label_sum
from pyro_ccvae.nets import ConvDecoder

from .helpers import FixLatents

NUM_CLASSES, B, D, CH, SIZE = [3, 2], 4, 3, 1, 32
L, K = len(NUM_CLASSES), max(NUM_CLASSES)
ALPHA = 0.3
Y = torch.tensor([[2, 1], [0, 0], [1, 1], [2, 0]], dtype=torch.float64)
MASKS = {
    "all_seen": torch.ones(B, L, dtype=torch.bool),
    "none_seen": torch.zeros(B, L, dtype=torch.bool),
    # label 0 seen for some points, label 1 for others, one point with both and one with none
    "mixed": torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=torch.bool),
}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make(enumerate: bool = True):
    """An M2 whose decoder reacts strongly to the labels (so that sums over them matter)."""
    decoder = ConvDecoder(L * K + D, CH, SIZE)
    model = M2Model(NUM_CLASSES, D, build_likelihood("laplace", CH), decoder, enumerate=enumerate)
    guide = M2Guide(NUM_CLASSES, D, CH, SIZE, enumerate=enumerate, alpha=ALPHA)
    with torch.no_grad():
        model.label_probs.copy_(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.4, 0.0]]))
        decoder.fc[0].weight[:, : L * K] *= 30.0
        guide.classifier.bias.copy_(torch.randn(L * K, generator=torch.Generator().manual_seed(3)))
    return model.double(), guide.double()


def images():
    return torch.rand(B, CH, SIZE, SIZE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


def fixed_z():
    return torch.randn(B, D, generator=torch.Generator().manual_seed(11), dtype=torch.float64)


@torch.no_grad()
def bound_by_hand(model, guide, x, y, mask, z) -> torch.Tensor:
    """``sum_b L(x_b, y_o)`` at ``z_b``: the sum over every joint value of the unseen labels,
    plus the classification term ``alpha * B / n_i * log q(y_i | x)`` for each seen label."""
    total = torch.zeros((), dtype=torch.float64)
    for b in range(B):
        h = F.relu(guide.encoder(x[b : b + 1]))[0]
        logits = guide.classifier(h).reshape(L, K)
        log_q = [td.Categorical(logits=logits[i, : NUM_CLASSES[i]]) for i in range(L)]
        unseen = [i for i in range(L) if not mask[b, i]]
        for values in itertools.product(*(range(NUM_CLASSES[i]) for i in unseen)):
            labels = y[b].long().clone()
            labels[unseen] = torch.tensor(values, dtype=torch.long)
            vectors = torch.zeros(L, K, dtype=torch.float64)
            vectors[torch.arange(L), labels] = 1.0
            log_q_unseen = sum((log_q[i].log_prob(labels[i]) for i in unseen), torch.zeros((), dtype=torch.float64))
            loc, raw = guide.z_net(torch.cat([h, vectors.flatten()])).chunk(2)
            log_q_z = td.Normal(loc, F.softplus(raw) + 1e-4).log_prob(z[b]).sum()
            mean = model.decoder(torch.cat([vectors.flatten(), z[b]]).unsqueeze(0))[0]
            log_p_x = td.Laplace(mean, 1.0).log_prob(x[b]).sum()
            log_p_y = sum(td.Categorical(probs=model.label_probs[i, : NUM_CLASSES[i]]).log_prob(labels[i]) for i in range(L))
            log_p_z = td.Normal(0.0, 1.0).log_prob(z[b]).sum()
            total = total + log_q_unseen.exp() * (log_p_x + log_p_z + log_p_y - log_q_z - log_q_unseen)
    seen_count = mask.sum(0)
    for b in range(B):
        h = F.relu(guide.encoder(x[b : b + 1]))[0]
        logits = guide.classifier(h).reshape(L, K)
        for i in range(L):
            if mask[b, i]:
                log_q = td.Categorical(logits=logits[i, : NUM_CLASSES[i]]).log_prob(y[b, i].long())
                total = total + ALPHA * B / seen_count[i] * log_q
    return total


@pytest.mark.parametrize("case", sorted(MASKS))
def test_enumerated_bound_is_the_explicit_sum_over_label_values(case):
    model, guide = make()
    x, z, mask = images(), fixed_z(), MASKS[case]
    loss = m2_elbo("enumerate").loss(model, FixLatents({sites.Z: z})(guide), x, Y, mask)
    assert loss == pytest.approx(-bound_by_hand(model, guide, x, Y, mask, z).item(), rel=1e-10)


def test_no_labels_is_the_unlabelled_bound():
    model, guide = make()
    x, z = images(), fixed_z()
    conditioned = FixLatents({sites.Z: z})(guide)
    elbo = m2_elbo("enumerate")
    assert elbo.loss(model, conditioned, x) == pytest.approx(elbo.loss(model, conditioned, x, Y, MASKS["none_seen"]), rel=1e-12)


def draws_by_hand(guide, x, y, mask):
    """Every joint value of one data point's unseen labels with its probability under ``q(y|x)``,
    as the value ``[L, 1]`` that :class:`~.helpers.FixLatents` gives the guide's ``y_unobserved``
    (whose seen entries are a point mass at the label)."""
    logits = guide.classifier(F.relu(guide.encoder(x)))[0].reshape(L, K).detach()
    unseen = [i for i in range(L) if not mask[0, i]]
    for values in itertools.product(*(range(NUM_CLASSES[i]) for i in unseen)):
        probability, value = 1.0, y.T.long().clone()
        for i, v in zip(unseen, values):
            probability *= float(td.Categorical(logits=logits[i, : NUM_CLASSES[i]]).probs[v])
            value[i] = v
        yield probability, {f"{sites.Y}_unobserved": value}


@pytest.mark.parametrize("case", ["none_seen", "mixed"])
def test_the_sampled_estimator_is_unbiased_in_value_and_gradient(case):
    """The score-function estimator with its learned baseline, averaged exactly over its draws of
    ``y`` (each draw fixed in turn, weighted by ``q(y|x)``; one data point so that draws of
    different points do not mix), equals the enumerated bound and its gradient."""
    model, guide = make(enumerate=False)
    x, z, mask = images()[:1], fixed_z()[:1], MASKS[case][2:3] if case == "mixed" else MASKS[case][:1]
    y = Y[:1]
    bias = guide.classifier.bias
    model.enumerate = guide.enumerate = True  # the same networks, the exact sum
    exact_loss = m2_elbo("enumerate").differentiable_loss(model, FixLatents({sites.Z: z})(guide), x, y, mask)
    exact_grad = torch.autograd.grad(exact_loss, bias)[0]
    model.enumerate = guide.enumerate = False
    loss, grad = 0.0, torch.zeros_like(bias)
    for probability, values in draws_by_hand(guide, x, y, mask):
        for p in [*model.parameters(), *guide.parameters()]:
            p.grad = None
        loss += probability * m2_elbo("sampled").loss_and_grads(model, FixLatents({sites.Z: z, **values})(guide), x, y, mask)
        grad += probability * bias.grad
    assert loss == pytest.approx(exact_loss.item(), rel=1e-10)
    assert exact_grad.abs().max() > 0.1  # the labels matter: the test is not vacuous
    assert torch.allclose(grad, exact_grad, rtol=1e-8, atol=1e-8)


def test_a_step_moves_every_network_and_keeps_gradients_finite():
    """Every parameter learns, the score-function baselines too (Pyro trains them by least squares)."""
    for enumerate in (True, False):
        pyro.clear_param_store()
        model, guide = make(enumerate)
        before = {n: p.detach().clone() for n, p in [*model.named_parameters(), *guide.named_parameters()]}
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), m2_elbo("enumerate" if enumerate else "sampled"))
        loss = svi.step(images(), Y, MASKS["mixed"])
        assert torch.isfinite(torch.tensor(loss))
        after = dict([*model.named_parameters(), *guide.named_parameters()])
        moved = [n for n, p in before.items() if not torch.equal(p, after[n].detach())]
        assert set(moved) == set(before), set(before) - set(moved)


def test_auto_enumerates_small_label_spaces_only():
    assert resolve_label_sum("auto", [10], 64) == "enumerate"
    assert resolve_label_sum("auto", [2] * 6, 64) == "enumerate"
    assert resolve_label_sum("auto", [2] * 7, 64) == "sampled"
    assert resolve_label_sum("sampled", [2], 64) == "sampled"
    with pytest.raises(ValueError, match="resolves 'auto'"):
        m2_elbo("auto")
