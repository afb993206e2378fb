"""Swappable guides (docs/guides.md): resolution by name and import path, the start-up check,
and that model and guide never share parameters."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_ccvae.models.ccvae import sites
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO
from pyro_ccvae.models.ccvae.guides import (
    GUIDES,
    CCVAEGuide,
    FlowGuide,
    FullRankGuide,
    GuideError,
    LowRankGuide,
    MeanFieldGuide,
    build_guide,
    check_guide,
    resolve_guide,
    sample_labels,
)
from pyro_ccvae.models.ccvae.model import CCVAEModel, fill_labels

B, L, DC, DS, CH, SIZE = 5, 3, 2, 4, 1, 32
DIMS = dict(num_labels=L, z_char_dim=DC, z_style_dim=DS, channels=CH, image_size=SIZE)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class TinyGuide(CCVAEGuide):
    """A user's own guide: a linear map from pixels to the means, unit scales."""

    def __init__(self, num_labels, z_char_dim, z_style_dim, channels, image_size):
        super().__init__(num_labels, z_char_dim, z_style_dim)
        self.linear = torch.nn.Linear(channels * image_size**2, num_labels * z_char_dim + z_style_dim)

    def mean(self, x):
        h = self.linear(x.flatten(1))
        n_c = self.num_labels * self.z_char_dim
        return h[:, :n_c].reshape(x.shape[0], self.num_labels, self.z_char_dim), h[:, n_c:]

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), 1.0).to_event(1))


class NoStyleGuide(TinyGuide):
    def sample_latents(self, x, labels):
        loc_c, _ = self.mean(x)
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), 1.0).to_event(1))


class TransposedGuide(TinyGuide):
    """z_c in data-major layout [B, L, d_c] (the classifier still gets the plate layout)."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        z_c = pyro.sample(sites.Z_C, dist.Normal(loc_c, 1.0).to_event(2))
        return z_c.transpose(0, 1)


class PositiveStyleGuide(TinyGuide):
    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.LogNormal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), 1.0).to_event(1))


class NoClassifierGuide(TinyGuide):
    def forward(self, x, y=None, mask=None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        with pyro.plate(sites.DATA_PLATE, x.shape[0], dim=sites.DATA_DIM):
            labels = pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM)
            z_c = self.sample_latents(x, labels)
            with labels:
                q_y = dist.Categorical(logits=self.classifier(z_c))
                with pyro.poutine.mask(mask=mask.T):
                    pyro.sample(sites.Y_OBSERVED, q_y, obs=y.T, infer={"is_auxiliary": True})
                with pyro.poutine.mask(mask=~mask.T):
                    pyro.sample(sites.Y_UNOBSERVED, q_y)


class BatchlessStyleGuide(TinyGuide):
    """z_s drawn outside the data plate as one event over the whole batch: its value has the
    right shape [B, d_s], but its log-density is a single number for the whole batch."""

    def forward(self, x, y=None, mask=None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(2))
        with pyro.plate(sites.DATA_PLATE, x.shape[0], dim=sites.DATA_DIM):
            with pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM):
                z_c = pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), 1.0).to_event(1))
                sample_labels(self.classifier, z_c, y.T, mask.T)


class StyleWithoutEventGuide(TinyGuide):
    """The classic slip: z_s without .to_event(1); Pyro's plate check fails inside the guide."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), 1.0).to_event(1))


class FailingGuide(TinyGuide):
    def sample_latents(self, x, labels):
        raise RuntimeError("boom")


def WrongSignature(num_labels):  # noqa: N802 - a factory that cannot take the model's dims
    return TinyGuide(num_labels, 1, 1, 1, 32)


def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, CH, SIZE, SIZE, generator=g)
    y = torch.bernoulli(torch.full((B, L), 0.5), generator=g)
    mask = torch.rand(B, L, generator=g) < 0.5
    mask[0] = True
    mask[1] = False
    return x, y, mask


def model():
    return CCVAEModel(L, CH, SIZE, DS, z_char_dim=DC)


def one_line_guide_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert type(excinfo.value) is GuideError
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- resolution ---------------------------------------------------------------------------------


def test_builtins_by_name():
    assert resolve_guide("meanfield") is MeanFieldGuide
    assert resolve_guide("lowrank") is LowRankGuide
    assert resolve_guide("fullrank") is FullRankGuide
    assert resolve_guide("flow") is FlowGuide
    assert set(GUIDES) == {"meanfield", "lowrank", "fullrank", "flow"}
    for name, cls in GUIDES.items():
        guide = build_guide(name, **DIMS)
        assert type(guide) is cls and guide.num_labels == L and guide.z_style_dim == DS


@pytest.mark.parametrize(
    "spec, guide",
    [
        ("pyro_ccvae.guides:MeanFieldGuide", MeanFieldGuide),
        ("pyro_ccvae.guides:FlowGuide", FlowGuide),
        ("pyro_ccvae.guides.base:CCVAEGuide", CCVAEGuide),
        ("pyro_ccvae.guides.lowrank:LowRankGuide", LowRankGuide),
    ],
)
def test_a_guide_named_by_its_old_import_path_still_resolves(spec, guide):
    # A run's config.json written before the guides moved into the CCVAE family names them so.
    assert resolve_guide(spec) is guide


def test_custom_guide_by_import_path_trains_with_the_same_model_and_elbo():
    spec = f"{__name__}:TinyGuide"
    assert resolve_guide(spec) is TinyGuide
    guide = build_guide(spec, **DIMS)
    assert type(guide) is TinyGuide
    m = model()
    x, y, mask = batch()
    check_guide(m, guide, x, y, mask)
    before = guide.linear.weight.detach().clone()
    svi = pyro.infer.SVI(m, guide, pyro.optim.Adam({"lr": 1e-2}), CCVAE_ELBO(k_samples=5))
    assert torch.isfinite(torch.tensor(svi.step(x, y, mask)))
    assert not torch.equal(before, guide.linear.weight)


def test_unknown_name():
    with pytest.raises(GuideError) as e:
        resolve_guide("meanfeild")
    one_line_guide_error(e, "'meanfeild'", "meanfield", "lowrank")


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("no_such_module_zz:Guide", "no_such_module_zz"),
        ("pyro_ccvae..guides:Guide", "pyro_ccvae..guides"),
        (":Guide", ":Guide"),  # empty module name
        (".guides:MeanFieldGuide", ".guides"),  # relative import path
    ],
)
def test_bad_import_path(spec, fragment):
    with pytest.raises(GuideError) as e:
        resolve_guide(spec)
    one_line_guide_error(e, fragment)


def test_missing_attribute():
    with pytest.raises(GuideError) as e:
        resolve_guide("pyro_ccvae.guides:NoSuchGuide")
    one_line_guide_error(e, "NoSuchGuide", "pyro_ccvae.guides")


def test_factory_that_cannot_take_the_dims():
    with pytest.raises(GuideError) as e:
        build_guide(f"{__name__}:WrongSignature", **DIMS)
    one_line_guide_error(e, "WrongSignature")


# --- the start-up check -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meanfield", "lowrank"])
@pytest.mark.parametrize("labels", ["partial", "none_seen", "all_seen"])
def test_check_guide_accepts_builtins(name, labels):
    x, y, mask = batch()
    mask = {"partial": mask, "none_seen": torch.zeros_like(mask), "all_seen": torch.ones_like(mask)}[labels]
    check_guide(model(), build_guide(name, **DIMS), x, y, mask)


@pytest.mark.parametrize(
    "guide_cls, fragments",
    [
        (NoStyleGuide, ["'z_s'"]),
        (TransposedGuide, ["'z_c'", f"({B}, {L}, {DC})", f"({L}, {B}, {DC})"]),
        (PositiveStyleGuide, ["'z_s'", "support"]),
        (NoClassifierGuide, ["'y'", "classifier"]),
        (FailingGuide, ["boom"]),
        (StyleWithoutEventGuide, ["z_s"]),
        (BatchlessStyleGuide, ["'z_s'"]),
    ],
)
def test_check_guide_rejects_naming_the_site(guide_cls, fragments):
    x, y, mask = batch()
    with pytest.raises(GuideError) as e:
        check_guide(model(), guide_cls(**DIMS), x, y, mask)
    one_line_guide_error(e, *fragments)


# --- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["meanfield", "lowrank", f"{__name__}:TinyGuide"])
def test_model_and_guide_parameters_never_overlap(name):
    m, guide = model(), build_guide(name, **DIMS)
    x, y, mask = batch()
    CCVAE_ELBO(k_samples=3).loss(m, guide, x, y, mask)
    names = set(pyro.get_param_store().keys())
    model_names = {n for n in names if n.startswith("model.")}
    guide_names = {n for n in names if n.startswith("guide.")}
    assert model_names and guide_names and model_names | guide_names == names
    # every tensor of each module is in the store under its owner's prefix, and none is shared
    store = pyro.get_param_store()
    model_ids = {id(p) for p in m.parameters()}
    guide_ids = {id(p) for p in guide.parameters()}
    assert not model_ids & guide_ids
    assert {id(store.get_param(n).unconstrained()) for n in model_names} == model_ids
    assert {id(store.get_param(n).unconstrained()) for n in guide_names} == guide_ids


# --- the z_c site must carry the marginal q(z_c | x) ------------------------------------------


class AutoContinuousStyleGuide(TinyGuide):
    """The pattern of Pyro's AutoContinuous guides: one joint Gaussian over the whole z drawn at an
    auxiliary site, then z_c and z_s exposed as Deltas of its blocks (with their log-density, 0
    here as the transform is the identity). The z_c site's "distribution" is a point mass: its K
    samples for q(y|x) would all equal the main sample."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        loc = torch.cat([loc_c.flatten(1), loc_s], dim=-1)
        latent = pyro.sample("_AutoContinuousStyle_latent", dist.Normal(loc, 1.0).to_event(1), infer={"is_auxiliary": True})
        n_c = self.num_labels * self.z_char_dim
        z_c = latent[:, :n_c].reshape(loc_c.shape).transpose(0, 1)
        pyro.sample(sites.Z_S, dist.Delta(latent[:, n_c:], event_dim=1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Delta(z_c, event_dim=1))


class NoRsampleCharacteristic(dist.Normal):
    has_rsample = False


class NoRsampleGuide(TinyGuide):
    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, NoRsampleCharacteristic(loc_c.transpose(0, 1), 1.0).to_event(1))


class PointMassCharacteristic(dist.Normal):
    """Claims rsample but returns the mean: K identical draws without being a Delta."""

    def rsample(self, sample_shape=torch.Size()):
        return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)


class IdenticalDrawsGuide(TinyGuide):
    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, PointMassCharacteristic(loc_c.transpose(0, 1), 1.0).to_event(1))


class ConditionalCharacteristicGuide(TinyGuide):
    """z_c given z_s, sampled first: its site holds q(z_c | z_s, x), not the marginal q(z_c | x)."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        z_s = pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1) + z_s[:, :1].T.unsqueeze(-1), 1.0).to_event(1))


class ExtraLatentGuide(TinyGuide):
    """A further latent site per data point that the model lacks (marked auxiliary, too): its
    entropy would enter log q(z|x) with nothing in p to balance it."""

    def sample_latents(self, x, labels):
        z_c = super().sample_latents(x, labels)
        pyro.sample("extra", dist.Normal(torch.zeros(x.shape[0]), 2.0), infer={"is_auxiliary": True})
        return z_c


class ScaleMixtureGuide(TinyGuide):
    """z_c drawn after a Gamma scale (a Student-t as a scale mixture), z_c sampled first among the
    model's sites: its site holds z_c given the scale, and the K samples for q(y|x) would come from
    that conditional, not the marginal."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        precision = pyro.sample("precision", dist.Gamma(torch.full((x.shape[0],), 2.0), 2.0))
        with labels:
            z_c = pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), precision.rsqrt().unsqueeze(-1)).to_event(1))
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        return z_c


class HiddenDrawGuide(TinyGuide):
    """A joint draw made with torch.randn, registered as z_c ~ Normal(draw, 1e-4): the K samples
    for q(y|x) would all sit at the draw and make w = 1."""

    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        draw = loc_c + torch.randn_like(loc_c)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, dist.Normal(draw.transpose(0, 1), 1e-4).to_event(1))


class OneBlockPointMass(dist.Normal):
    """Draws that never move in the first label's block and differ in the others."""

    def rsample(self, sample_shape=torch.Size()):
        draws = super().rsample(sample_shape)
        return torch.cat([self.loc[:1].expand_as(draws[..., :1, :, :]), draws[..., 1:, :, :]], dim=-3)


class OneBlockPointMassGuide(TinyGuide):
    def sample_latents(self, x, labels):
        loc_c, loc_s = self.mean(x)
        pyro.sample(sites.Z_S, dist.Normal(loc_s, 1.0).to_event(1))
        with labels:
            return pyro.sample(sites.Z_C, OneBlockPointMass(loc_c.transpose(0, 1), 1.0).to_event(1))


class GlobalLatentGuide(TinyGuide):
    """A latent outside the data plate has no per-datum log-density to put in log q(z|x)."""

    def forward(self, x, y=None, mask=None):
        pyro.sample("global", dist.Normal(0.0, 1.0))
        return super().forward(x, y, mask)


@pytest.mark.parametrize(
    "guide_cls, fragments",
    [
        (AutoContinuousStyleGuide, ["'_AutoContinuousStyle_latent'", "a latent the model does not have"]),
        (NoRsampleGuide, ["'z_c'", "without rsample"]),
        (IdenticalDrawsGuide, ["'z_c'", "identical draws"]),
        (ConditionalCharacteristicGuide, ["'z_c'", "depends on the latent site 'z_s'"]),
        (GlobalLatentGuide, ["'global'", "a latent the model does not have"]),
        (ExtraLatentGuide, ["'extra'", "a latent the model does not have", "without bound"]),
        (ScaleMixtureGuide, ["'precision'", "a latent the model does not have", "not be the marginal"]),
        (HiddenDrawGuide, ["'z_c'", "randomness drawn outside a Pyro sample site"]),
        (OneBlockPointMassGuide, ["'z_c'", "identical draws", "label 0"]),
    ],
)
def test_check_guide_rejects_a_z_c_that_is_not_the_marginal(guide_cls, fragments):
    x, y, mask = batch()
    with pytest.raises(GuideError) as e:
        check_guide(model(), guide_cls(**DIMS), x, y, mask)
    one_line_guide_error(e, *fragments)


def test_the_elbo_refuses_identical_k_samples_with_validation_on():
    """Used without check_guide, the Delta guide would silently give w = 1; validation stops it."""
    x, y, mask = batch()
    with pytest.raises(ValueError, match="identical") as e:
        CCVAE_ELBO(k_samples=4).loss(model(), AutoContinuousStyleGuide(**DIMS), x, y, mask)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["meanfield", "lowrank", "fullrank", "flow"])
def test_k_samples_of_every_builtin_differ_from_each_other_and_from_the_main_sample(name):
    x, y, mask = batch()
    guide_trace = pyro.poutine.trace(build_guide(name, **DIMS)).get_trace(x, y, mask)
    site = guide_trace.nodes[sites.Z_C]
    draws = site["fn"].rsample((6,))
    assert draws.shape == (6, L, B, DC) and draws.requires_grad  # reparameterised
    flat = draws.reshape(6, -1)
    distinct = (flat.unsqueeze(0) != flat.unsqueeze(1)).all(-1)  # every coordinate differs
    assert distinct.sum() == 6 * 5
    assert (draws != site["value"]).all()
