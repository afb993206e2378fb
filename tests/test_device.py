"""Device bugs without a GPU (docs/objective.md, Pyro form): run the ELBO and its backward pass with the model,
guide and data on ``torch.device("meta")``. A tensor created on the CPU anywhere in the model,
guide or ELBO then meets meta tensors and raises ("... on the expected device meta", "Expected
all tensors to be on the same device"), exactly where it would fail on CUDA.

Validation is off: Pyro's validation reads values (``.all()`` on a support check), which meta
tensors do not have. Stock ``SVI.step`` calls ``.item()`` and cannot run on meta either, so the
ELBO's ``differentiable_loss`` is called directly.
"""
from __future__ import annotations

import pyro
import pytest
import torch

import pyro_ccvae.models.ccvae.elbo as elbo_module
import pyro_ccvae.models.ccvae.guides.base as guide_base_module
import pyro_ccvae.models.ccvae.model as model_module
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO
from pyro_ccvae.models.ccvae.guides import build_guide
from pyro_ccvae.models.ccvae.model import CCVAEModel

B, L, DC, DS, CH, SIZE = 5, 3, 2, 4, 3, 32
META = torch.device("meta")


@pytest.fixture(autouse=True)
def _meta_setup():
    torch.set_num_threads(1)
    pyro.enable_validation(False)  # conftest turns it back on for the next test
    yield
    pyro.enable_validation(True)


@pytest.fixture
def no_nan_check(monkeypatch):
    """``CCVAE_ELBO.differentiable_loss`` calls ``pyro.util.warn_if_nan(loss)``, whose
    ``torch.isnan(loss).any()`` in an ``if`` is a host sync (``.item()``): it cannot run on meta
    (and costs a device sync per step on CUDA). Bypassed here so the other tests still check
    every tensor the model, guide and ELBO create; ``test_differentiable_loss_has_no_host_sync``
    covers the call itself."""
    monkeypatch.setattr(elbo_module, "warn_if_nan", lambda value, *args, **kwargs: value)


def on_meta(guide_name: str, labels: str):
    model = CCVAEModel(L, CH, SIZE, DS, z_char_dim=DC).to(META)
    guide = build_guide(guide_name, num_labels=L, z_char_dim=DC, z_style_dim=DS, channels=CH, image_size=SIZE)
    guide = guide.to(META)
    x = torch.empty(B, CH, SIZE, SIZE, device=META)
    y = torch.empty(B, L, device=META)
    mask = torch.empty(B, L, dtype=torch.bool, device=META)
    args = {"y_none": (x, None, None), "all_seen": (x, y, None), "partial": (x, y, mask)}[labels]
    return model, guide, args


def run_meta(model, guide, args, **elbo_kwargs):
    loss = CCVAE_ELBO(k_samples=4, **elbo_kwargs).differentiable_loss(model, guide, *args)
    assert loss.device == META and loss.shape == ()
    loss.backward()
    for name, p in list(model.named_parameters()) + list(guide.named_parameters()):
        assert p.device == META, name
        assert p.grad is not None and p.grad.device == META, name


def test_differentiable_loss_has_no_host_sync():
    run_meta(*on_meta("meanfield", "partial"))


@pytest.mark.usefixtures("no_nan_check")
@pytest.mark.parametrize("labels", ["y_none", "all_seen", "partial"])
@pytest.mark.parametrize("jensen", ["exact", "sampled"])
# Not "flow": Pyro's rational spline selects each input's interval by boolean indexing, which needs
# the data (meta tensors have none; on a GPU it is a host sync inside the guide, not the ELBO).
@pytest.mark.parametrize("guide_name", ["meanfield", "lowrank", "fullrank"])
def test_elbo_and_backward_stay_on_device(guide_name, jensen, labels):
    run_meta(*on_meta(guide_name, labels), jensen=jensen)


@pytest.mark.usefixtures("no_nan_check")
@pytest.mark.parametrize("detach", [True, False])
def test_reparameterised_variant_stays_on_device(detach):
    run_meta(*on_meta("meanfield", "partial"), detach_classifier_input=detach, num_particles=2)


@pytest.mark.usefixtures("no_nan_check")
def test_vectorised_particles_stay_on_device():
    run_meta(*on_meta("meanfield", "partial"), num_particles=2, vectorize_particles=True)


# --- the check has teeth: a CPU tensor slipped into the model or the ELBO is caught -------------


def _cpu_fill_labels(x, y, mask, num_labels):
    """The classic bug: ``torch.zeros(...)`` without ``device=x.device``."""
    if y is None:
        y = torch.zeros(x.shape[0], num_labels)
        mask = torch.zeros(x.shape[0], num_labels, dtype=torch.bool)
    elif mask is None:
        mask = torch.ones(x.shape[0], num_labels, dtype=torch.bool)
    return torch.where(mask, y, torch.zeros_like(y)), mask


def _cpu_masked_sum(values, mask):
    return torch.where(mask, values, torch.zeros(values.shape)).sum(-2)


DEVICE_ERROR = r"is not on the expected device (meta|cpu)|same device"


@pytest.mark.usefixtures("no_nan_check")
@pytest.mark.parametrize("labels", ["y_none", "all_seen"])
@pytest.mark.parametrize("where", [model_module, guide_base_module], ids=["model", "guide"])
def test_a_cpu_tensor_in_the_model_or_guide_is_caught(monkeypatch, where, labels):
    monkeypatch.setattr(where, "fill_labels", _cpu_fill_labels)
    with pytest.raises((RuntimeError, ValueError), match=DEVICE_ERROR):
        run_meta(*on_meta("meanfield", labels))


@pytest.mark.usefixtures("no_nan_check")
def test_a_cpu_tensor_in_the_elbo_is_caught(monkeypatch):
    monkeypatch.setattr(elbo_module, "_masked_sum", _cpu_masked_sum)
    with pytest.raises((RuntimeError, ValueError), match=DEVICE_ERROR):
        run_meta(*on_meta("lowrank", "partial"))
