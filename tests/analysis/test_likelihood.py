"""The importance-weighted bounds: IWAE >= ELBO, growth with K, and the prior term by hand."""
from __future__ import annotations

import math

import pyro
import pytest
import torch

from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.likelihood import importance_weighted, iwae
from pyro_ccvae.models import encode_once
from pyro_ccvae.models.ccvae.guides import GUIDES, build_guide
from pyro_ccvae.models.ccvae.representation import CCVAERepresentation


def log_weights(model, guide, x, num_samples, y=None, mask=None):
    """The CCVAE's importance weights (its ``likelihood`` capability)."""
    return CCVAERepresentation(model, guide, [str(i) for i in range(model.num_labels)], x.device).log_weights(x, num_samples, y, mask)


def log_prior_characteristic(model, z_c):
    return CCVAERepresentation(model, None, [str(i) for i in range(model.num_labels)], z_c.device).log_prior_characteristic(z_c)


@pytest.fixture(scope="module")
def batch(run):
    analysis = Analysis.from_run(run, max_images=24, progress=False)
    index = torch.arange(24)
    y, mask = analysis.labels(index)
    mask = mask.clone()
    mask[::2, 1:] = False  # some labels unseen: the joint marginalises them
    mask[1] = False  # and one image with none seen
    return analysis.images(index), y, mask


def test_iwae_at_least_elbo_and_joint_below_marginal(run, batch):
    x, y, mask = batch
    w_x, w_xy = log_weights(run.model, run.guide, x, 7, y, mask)
    assert w_x.shape == w_xy.shape == (7, 24)
    assert (iwae(w_x) >= w_x.mean(0) - 1e-3).all()  # Jensen, per image: same samples
    # log p(x, y_o) <= log p(x) per sample: one term of a sum over y instead of the sum.
    assert (w_xy <= w_x + 1e-3).all()
    assert torch.equal(w_xy[:, 1], w_x[:, 1])  # nothing seen: joint == marginal


def test_iwae_grows_with_samples(run, batch):
    x = batch[0]
    small, large = [], []
    for seed in range(4):
        pyro.set_rng_seed(seed)
        small.append(iwae(log_weights(run.model, run.guide, x, 1)[0]).mean())
        large.append(iwae(log_weights(run.model, run.guide, x, 20)[0]).mean())
    assert torch.stack(small).mean() <= torch.stack(large).mean() + 0.5


def test_chunked_samples_match_one_pass(run, batch, monkeypatch):
    """Splitting the K samples into several guide passes changes nothing but the random draws."""
    x = batch[0][:4]
    pyro.set_rng_seed(3)
    whole = log_weights(run.model, run.guide, x, 6)[0]
    monkeypatch.setattr(encode_once, "MAX_ROWS", 8)  # 2 samples of 4 images per pass
    pyro.set_rng_seed(3)
    chunked = log_weights(run.model, run.guide, x, 6)[0]
    assert chunked.shape == whole.shape == (6, 4)
    assert torch.allclose(chunked.mean(), whole.mean(), atol=50.0)


def test_log_prior_characteristic_by_hand(run):
    model = run.model
    z_c = torch.randn(model.num_labels, 3, model.z_char_dim)
    with torch.no_grad():
        got = log_prior_characteristic(model, z_c)
    i, n = 2, 1
    for y in (0, 1):
        loc, scale = model.conditional_prior.loc[i, y].detach(), model.conditional_prior.scale[i, y].detach()
        pi = float(model.label_probs[i, 1])
        expected = torch.distributions.Normal(loc, scale).log_prob(z_c[i, n]).sum() + math.log(pi if y else 1 - pi)
        assert float(got[y, i, n]) == pytest.approx(float(expected), rel=1e-5)


def test_importance_weighted_report(run):
    analysis = Analysis.from_run(run, max_images=16, progress=False)
    out = importance_weighted(analysis, num_samples=3)
    assert out["num_images"] == 16 and out["num_samples"] == 3
    assert out["log_px_iwae"] >= out["log_px_elbo"]
    assert out["log_pxy_iwae"] >= out["log_pxy_elbo"]
    assert out["bits_per_dim_px_iwae"] == pytest.approx(-out["log_px_iwae"] / (out["dims"] * math.log(2)))
    with pytest.raises(ValueError, match="--iw-samples"):
        importance_weighted(analysis, num_samples=0)


def test_log_prior_characteristic_is_the_hand_computed_joint():
    """log p(y_i) + log p(z_c^i | y_i) for both label values, against torch.distributions by hand."""
    import torch

    from pyro_ccvae.models.ccvae.model import CCVAEModel

    model = CCVAEModel(3, 1, 32, 4, z_char_dim=2)
    with torch.no_grad():
        model.conditional_prior.loc.normal_()
        pi = torch.tensor([0.2, 0.5, 0.7])
        model.label_probs.copy_(torch.stack([1 - pi, pi], dim=-1))
    z_c = torch.randn(3, 5, 2)
    prior = model.conditional_prior
    expected = torch.stack(
        [
            torch.distributions.Normal(prior.loc[:, y, None, :], prior.scale[:, y, None, :]).log_prob(z_c).sum(-1)
            + torch.distributions.Bernoulli(pi).log_prob(torch.full((3,), float(y)))[:, None]
            for y in (0, 1)
        ]
    )
    assert torch.allclose(log_prior_characteristic(model, z_c), expected)


@pytest.mark.parametrize("spec", sorted(GUIDES))
def test_weights_encode_each_image_once_and_match_encoding_every_copy(run, batch, spec):
    """Every guide: in evaluation mode the encoder sees the 24 images once (not K = 7 copies), and
    the weights equal those from encoding every copy (a guide in training mode) under one seed."""
    x, y, mask = batch
    model = run.model
    guide = build_guide(
        spec, num_labels=model.num_labels, num_classes=model.num_classes, z_char_dim=model.z_char_dim,
        z_style_dim=model.z_style_dim, channels=x.shape[1], image_size=x.shape[-1],
    )  # fmt: skip
    rows = []
    first_layer = next(m for m in guide.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    first_layer.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    weights = {}
    for training in (False, True):
        guide.train(training)
        rows.clear()
        pyro.set_rng_seed(5)
        weights[training] = log_weights(model, guide, x, 7, y, mask)
        assert rows == ([7 * 24] if training else [24])
    for once, every in zip(weights[False], weights[True]):
        torch.testing.assert_close(once, every, rtol=1e-5, atol=1e-3)
