"""Estimator hygiene of CCVAE_ELBO: the importance weight cannot overflow float32, vectorised
particles, a per-datum poutine.scale, and an outer poutine.mask."""
from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI

from pyro_ccvae.models.ccvae import sites
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO
from pyro_ccvae.models.ccvae.guides import GUIDES
from pyro_ccvae.models.ccvae.model import CCVAEModel

B, L, DC, DS, CH, SIZE = 5, 3, 2, 4, 1, 32
MIXED = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def make(guide_name="meanfield", labels=L, char_dim=DC, dtype=torch.float32):
    model = CCVAEModel(labels, CH, SIZE, DS, z_char_dim=char_dim)
    guide = GUIDES[guide_name](num_labels=labels, z_char_dim=char_dim, z_style_dim=DS, channels=CH, image_size=SIZE)
    return model.to(dtype), guide.to(dtype)


def batch(size=B, labels=L, dtype=torch.float32):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(size, CH, SIZE, SIZE, generator=g).to(dtype)
    y = torch.bernoulli(torch.full((size, labels), 0.5), generator=g).to(dtype)
    return x, y


def per_datum(elbo, model, guide, x, y, mask, seed):
    """The per-datum bound on the draws that ``elbo.loss(..)`` makes under ``seed``."""
    pyro.set_rng_seed(seed)
    return elbo.per_datum_elbo(*elbo._get_trace(model, guide, (x, y, mask), {}))


def _named_params(model, guide):
    return [("model." + n, p) for n, p in model.named_parameters()] + [("guide." + n, p) for n, p in guide.named_parameters()]


# --- the importance weight in float32 -----------------------------------------------------------


def test_importance_weight_cannot_overflow_float32_and_capped_draws_are_counted():
    """A sharp classifier (weight 100 per dim, reachable: the classifier term is weighted by 1000
    in training) on six labels: sometimes the one sample of z_c classifies every label and all K
    samples of q(y_o|x) miss one, and log w is in the hundreds. Uncapped, float32 turns such a
    loss into inf; capped, every loss is finite and the capped draws are counted."""
    model, guide = make(labels=6, char_dim=1)
    with torch.no_grad():
        guide.classifier.weight.fill_(100.0)
    x, y = batch(16, labels=6)
    y.fill_(1.0)
    pyro.enable_validation(False)  # as in training
    infinite, counts = {}, {}
    for cap in (None, 20.0):
        elbo = CCVAE_ELBO(k_samples=10, max_log_weight=cap)
        pyro.set_rng_seed(0)
        losses = torch.tensor([elbo.loss(model, guide, x, y) for _ in range(100)])
        infinite[cap], counts[cap] = int((~torch.isfinite(losses)).sum()), elbo.take_counts()
    assert infinite[None] > 0 and counts[None]["capped_weights"] == 0  # the failure is real here
    assert infinite[20.0] == 0
    assert counts[20.0]["weighted_draws"] == 100 * 16
    assert 0 < counts[20.0]["capped_weights"] < counts[20.0]["weighted_draws"]
    assert elbo.take_counts() == {"capped_weights": 0, "weighted_draws": 0}  # taking them resets them


def test_the_cap_changes_nothing_below_it_and_only_the_capped_points_above():
    """Deterministic: the K samples pushed far into the wrong class for the points that see a
    label, so their log w is in the hundreds; the capped bound sets exactly those points' log w
    to the cap, the others are unchanged, and the gradient stays finite."""
    model, guide = make()
    with torch.no_grad():
        guide.classifier.weight.fill_(30.0)
    x, y = batch()
    y.fill_(1.0)
    elbo_free, elbo_capped = CCVAE_ELBO(k_samples=4, max_log_weight=None), CCVAE_ELBO(k_samples=4)
    pyro.set_rng_seed(3)
    model_trace, guide_trace = elbo_capped._get_trace(model, guide, (x, y, MIXED), {})
    site = guide_trace.nodes[sites.Z_C]
    main = site["value"].detach()
    site["value"] = main.abs() + 3.0  # the main sample: well inside the seen class (values only feed the classifier)
    loc = site["fn"].base_dist.loc

    class FarDraws:  # K different draws, all far on the other side of every boundary (y = 1: z > 0)
        def rsample(self, shape):
            (k,) = shape
            return loc - loc.detach() - (main.abs() + 3.0) - torch.arange(k, dtype=main.dtype).reshape(k, 1, 1, 1)

    site["fn"] = FarDraws()
    free = elbo_free.per_datum_elbo(model_trace, guide_trace)
    capped = elbo_capped.per_datum_elbo(model_trace, guide_trace)
    seen = MIXED.any(1)
    assert not torch.isfinite(free[seen]).any()  # float32: w = exp(~500) is inf
    assert torch.isfinite(capped).all()
    torch.testing.assert_close(capped[~seen], free[~seen])  # w = 1 there: the cap cannot touch it
    loss = -capped.sum()
    grads = torch.autograd.grad(loss, [p for _, p in _named_params(model, guide)], allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    # the count: exactly the points that see a label
    assert elbo_capped._differentiable_loss_particle(model_trace, guide_trace).isfinite()
    assert elbo_capped.take_counts() == {"capped_weights": int(seen.sum()), "weighted_draws": int(seen.sum())}


def test_float64_weights_below_the_cap_are_the_uncapped_ones():
    """The binary bound is unchanged by the cap where log w < 20 (every ordinary draw)."""
    model, guide = make(dtype=torch.float64)
    x, y = batch(dtype=torch.float64)
    a = per_datum(CCVAE_ELBO(k_samples=8), model, guide, x, y, MIXED, seed=2)
    b = per_datum(CCVAE_ELBO(k_samples=8, max_log_weight=None), model, guide, x, y, MIXED, seed=2)
    assert torch.equal(a, b)


# --- vectorised particles -------------------------------------------------------------------------


@pytest.mark.parametrize("guide_name", ["meanfield", "lowrank", "fullrank", "flow"])
def test_vectorised_particles_step_with_every_guide(guide_name):
    model, guide = make(guide_name)
    x, y = batch()
    elbo = CCVAE_ELBO(k_samples=4, num_particles=3, vectorize_particles=True)
    assert elbo.max_plate_nesting == sites.MAX_PLATE_NESTING  # no particle plate: the batch is repeated
    (model_trace, guide_trace), = list(elbo._get_traces(model, guide, (x, y, MIXED), {}))
    assert guide_trace.nodes[sites.Z_C]["value"].shape == (L, 3 * B, DC)
    before = {n: p.detach().clone() for n, p in _named_params(model, guide)}
    loss = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), elbo).step(x, y, MIXED)
    assert math.isfinite(loss)
    assert all(not torch.equal(p.detach(), before[n]) for n, p in _named_params(model, guide))


def test_vectorised_particles_are_the_looped_estimator():
    """Same mean, and the spread of P particles (vectorised or looped) is that of one over sqrt(P)."""
    model, guide = make()
    x, y = batch()
    pyro.enable_validation(False)
    runs = 80

    def losses(elbo, seed):
        pyro.set_rng_seed(seed)
        with torch.no_grad():
            return torch.tensor([elbo.loss(model, guide, x, y, MIXED) for _ in range(runs)], dtype=torch.float64)

    one = losses(CCVAE_ELBO(k_samples=4), 10)
    looped = losses(CCVAE_ELBO(k_samples=4, num_particles=4), 11)
    vectorised = losses(CCVAE_ELBO(k_samples=4, num_particles=4, vectorize_particles=True), 12)
    se = (looped.var() / runs + vectorised.var() / runs).sqrt()
    assert (looped.mean() - vectorised.mean()).abs() < 4 * se
    for many in (looped, vectorised):
        ratio = float(many.std() / one.std())
        assert 0.35 < ratio < 0.7, ratio  # 1/sqrt(4) = 0.5


def test_vectorised_particles_refuse_a_per_datum_scale_in_one_line():
    model, guide = make()
    x, y = batch()
    scale = torch.arange(1.0, B + 1)
    elbo = CCVAE_ELBO(k_samples=4, num_particles=2, vectorize_particles=True)
    with pytest.raises(ValueError) as e:
        elbo.loss(poutine.scale(model, scale=scale), poutine.scale(guide, scale=scale), x, y, MIXED)
    assert "\n" not in str(e.value) and "vectorize_particles=False" in str(e.value)
    looped = CCVAE_ELBO(k_samples=4, num_particles=2)
    assert math.isfinite(looped.loss(poutine.scale(model, scale=scale), poutine.scale(guide, scale=scale), x, y, MIXED))


# --- scales and masks ------------------------------------------------------------------------------


def test_a_per_datum_scale_scales_each_datum_s_term():
    model, guide = make(dtype=torch.float64)
    x, y = batch(dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=5)
    scale = torch.tensor([0.5, 2.0, 0.25, 3.0, 1.0], dtype=torch.float64)
    terms = per_datum(elbo, model, guide, x, y, MIXED, seed=4)
    pyro.set_rng_seed(4)
    scaled = elbo.differentiable_loss(poutine.scale(model, scale=scale), poutine.scale(guide, scale=scale), x, y, MIXED)
    torch.testing.assert_close(scaled, -(scale * terms).sum(), rtol=1e-12, atol=1e-10)
    # gradients too: datum b's gradient is s_b times its own
    params = [p for _, p in _named_params(model, guide)]
    want = torch.autograd.grad(-(scale * terms).sum(), params, allow_unused=True, retain_graph=True)
    got = torch.autograd.grad(scaled, params, allow_unused=True)
    for a, b in zip(got, want):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_a_scale_on_the_model_alone_is_an_error_with_validation_on():
    model, guide = make()
    x, y = batch()
    with pytest.raises(ValueError, match="scale the model and the guide alike"):
        CCVAE_ELBO(k_samples=4).loss(poutine.scale(model, scale=2.0), guide, x, y, MIXED)


def test_an_outer_mask_drops_the_masked_points_whole_terms():
    """poutine.mask(mask=m) around model and guide: the loss is -sum of the kept points' terms,
    with their gradients only; the labels' own mask still decides which labels each kept point sees."""
    model, guide = make(dtype=torch.float64)
    x, y = batch(dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=5)
    keep = torch.tensor([True, False, True, False, True])
    terms = per_datum(elbo, model, guide, x, y, MIXED, seed=5)
    pyro.set_rng_seed(5)
    masked = elbo.differentiable_loss(poutine.mask(model, mask=keep), poutine.mask(guide, mask=keep), x, y, MIXED)
    want = -terms[keep].sum()
    torch.testing.assert_close(masked, want, rtol=1e-12, atol=1e-10)
    params = [p for _, p in _named_params(model, guide)]
    got_grads = torch.autograd.grad(masked, params, allow_unused=True, retain_graph=True)
    want_grads = torch.autograd.grad(want, params, allow_unused=True)
    for a, b in zip(got_grads, want_grads):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # everything masked: nothing to learn from, and the capped/weighted counts skip it
    elbo.take_counts()
    pyro.set_rng_seed(5)
    none = elbo.differentiable_loss(poutine.mask(model, mask=False), poutine.mask(guide, mask=False), x, y, MIXED)
    assert none.item() == 0.0 and elbo.take_counts()["weighted_draws"] == 0


def test_a_mask_per_label_is_a_one_line_error():
    model, guide = make()
    x, y = batch()
    per_label = torch.ones(L, B, dtype=torch.bool)
    pyro.enable_validation(False)
    with pytest.raises(ValueError) as e:
        CCVAE_ELBO(k_samples=4).loss(poutine.mask(model, mask=per_label), poutine.mask(guide, mask=per_label), x, y, MIXED)
    assert "\n" not in str(e.value) and "one per data point" in str(e.value) and "mask argument" in str(e.value)
