"""Each likelihood's log-density against a hand computation, and learned scales in the model."""
from __future__ import annotations

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyro_ccvae.models.ccvae import sites
from pyro_ccvae.likelihoods import LIKELIHOODS, MIN_SCALE, build_likelihood
from pyro_ccvae.models.ccvae.model import CCVAEModel

C, S = 3, 4


def _pixels(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, C, S, S, generator=g, dtype=torch.float64), (0.02 + 0.96 * torch.rand(2, C, S, S, generator=g, dtype=torch.float64))


def _hand_log_prob(name, x, m, scale):
    if name.startswith("laplace"):
        per_pixel = -(x - m).abs() / scale - torch.log(2 * scale)
    elif name.startswith("normal"):
        per_pixel = -0.5 * ((x - m) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
    elif name == "bernoulli":
        per_pixel = x * torch.log(m) + (1 - x) * torch.log1p(-m)
    else:  # continuous Bernoulli: log C(lambda) + x log lambda + (1 - x) log(1 - lambda)
        log_norm = torch.log(2 * torch.atanh(1 - 2 * m) / (1 - 2 * m))
        per_pixel = log_norm + x * torch.log(m) + (1 - x) * torch.log1p(-m)
    return per_pixel.sum((-1, -2, -3))


@pytest.mark.parametrize("name", list(LIKELIHOODS))
def test_log_prob_matches_hand_computation(name):
    x, m = _pixels(0)
    lik = build_likelihood(name, C).double()
    scale = torch.ones(C, 1, 1, dtype=torch.float64)
    if "learned" in name:
        with torch.no_grad():  # a scale away from its initial 1, different per channel where it may be
            new = torch.tensor([0.3, 0.05, 0.7], dtype=torch.float64).reshape(C, 1, 1)
            lik.scale = new if name.endswith("channel") else new[:1]
        scale = lik.scale.expand(C, 1, 1)
    d = lik.distribution(m)
    assert d.event_shape == (C, S, S) and d.batch_shape == (2,)
    torch.testing.assert_close(d.log_prob(x), _hand_log_prob(name, x, m, scale), rtol=1e-6, atol=1e-6)


def test_learned_scales_are_bounded_shaped_and_trained():
    for name, shape in [("laplace-learned", (1, 1, 1)), ("normal-learned-channel", (C, 1, 1))]:
        lik = build_likelihood(name, C)
        assert lik.scale.shape == shape and torch.all(lik.scale == 1)
        lik.scale_unconstrained.data.fill_(-50.0)  # far below the bound
        assert torch.all(lik.scale >= MIN_SCALE)
    pyro.clear_param_store()
    model = CCVAEModel(2, C, 32, 3, likelihood="laplace-learned-channel")
    x = torch.rand(4, C, 32, 32)
    log_p = poutine.trace(model).get_trace(x).nodes[sites.X]["fn"].log_prob(x).sum()
    log_p.backward()
    assert model.likelihood.scale_unconstrained.grad.abs().min() > 0
    assert "likelihood.scale_unconstrained" in model.state_dict()
    assert any(name.endswith("likelihood.scale") for name in pyro.get_param_store().keys())


def test_unit_scale_likelihoods_keep_old_checkpoints_loadable():
    state = CCVAEModel(2, 1, 32, 3, likelihood="laplace").state_dict()
    assert not any("likelihood" in key for key in state)
    CCVAEModel(2, 1, 32, 3, likelihood="normal").load_state_dict(state)


def test_continuous_bernoulli_shows_its_mean():
    model = CCVAEModel(2, 1, 32, 3, likelihood="continuous-bernoulli")
    z_c, z_s = torch.randn(5, 2, 1), torch.randn(5, 3)
    lam = model.decoder(torch.cat([z_c.flatten(1), z_s], -1)).clamp(1e-4, 1 - 1e-4)
    expected = torch.distributions.ContinuousBernoulli(probs=lam).mean
    torch.testing.assert_close(model.decode(z_c, z_s), expected)


def test_unknown_likelihood_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown likelihood 'gauss'; choose one of laplace"):
        build_likelihood("gauss", 1)
