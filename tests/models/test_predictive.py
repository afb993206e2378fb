"""Pyro's own tools on every family's model and guide: ``Predictive`` (sequential and parallel),
``poutine.condition`` and ``poutine.do``, freshly built and loaded from a run; a loaded run's
model and guide use the run's parameters and leave the caller's param store as it was."""
from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models import MODELS, get_family
from pyro_ccvae.models.labels import one_hot
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train

#: each family's settings for a tiny model (its own option names).
SMALL = {
    "ccvae": {"k_samples": 3, "z_style_dim": 3},
    "m2": {"z_style_dim": 3},
    "diva": {"z_style_dim": 3},
    "mvae": {"z_dim": 8},
}
#: two labels of 2 and 3 classes, one channel of 32 x 32.
INFO = {"label_names": ["a", "b"], "channels": 1, "image_size": 32, "num_classes": [2, 3]}
BATCH, SAMPLES = 4, 5


def fresh(name: str):
    """An untrained model and guide of family ``name`` (eval mode), for :data:`INFO`."""
    config = TrainConfig.from_options(model=name, device="cpu", **SMALL[name])
    config.data.info = dict(INFO)
    family = get_family(name)
    family.fill_defaults(config.model, config.data.dataset)
    model, guide = family.build_run(config)
    return model.eval(), guide.eval()


def batch():
    """Images, labels and a mask that sees some labels of some images."""
    x = torch.rand(BATCH, 1, 32, 32)
    y = torch.tensor([[0.0, 1.0], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[True, False], [True, True], [False, False], [False, True]])
    return x, y, mask


def value_shapes(model, guide, *args) -> dict[str, tuple]:
    """Each site's value shape in one run of the guide and the model replayed on it."""
    guide_trace = poutine.trace(guide).get_trace(*args)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    shapes = {}
    for trace in (guide_trace, model_trace):
        for name, site in trace.nodes.items():
            if site["type"] == "sample":
                shapes.setdefault(name, tuple(site["value"].shape))
    return shapes


def check_samples(samples: dict, shapes: dict) -> None:
    """``S`` samples of every site, each shaped as one run's value after Pyro's sample dim and
    the size-1 plate dims that Predictive puts before a site outside the labels plate."""
    assert samples
    for name, value in samples.items():
        single = shapes[name]
        assert value.shape[0] == SAMPLES, name
        assert value.shape[-len(single):] == single, name
        assert all(d == 1 for d in value.shape[1 : value.dim() - len(single)]), name


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictive_runs_every_fresh_family(name, parallel):
    model, guide = fresh(name)
    x, y, mask = batch()
    for args in ((x,), (x, y, mask)):
        samples = Predictive(model, guide=guide, num_samples=SAMPLES, parallel=parallel)(*args)
        check_samples(samples, value_shapes(model, guide, *args))


def test_predictive_shapes_of_the_ccvae():
    model, guide = fresh("ccvae")
    x, _, _ = batch()
    for parallel in (False, True):
        samples = Predictive(model, guide=guide, num_samples=SAMPLES, parallel=parallel)(x)
        assert samples["z_c"].shape == (SAMPLES, 2, BATCH, 1)  # [S, L, B, d_c]
        assert samples["z_s"].shape == (SAMPLES, 1, BATCH, 3)  # outside the labels plate
        assert samples["x"].shape == (SAMPLES, 1, BATCH, 1, 32, 32)
        assert torch.equal(samples["x"][0, 0], x)  # observed


@pytest.fixture(scope="module", params=sorted(MODELS))
def loaded(request, tmp_path_factory):
    """A run of family ``request.param`` trained one epoch, loaded without its data."""
    path = tmp_path_factory.mktemp(request.param) / "run"
    config = TrainConfig.from_options(model=request.param, num_train=32, epochs=1, batch_size=16, device="cpu", **SMALL[request.param])
    train(config, path, progress=False)
    return load_run(path, "cpu", load_data=False)


def test_a_loaded_run_works_with_predictive_and_leaves_the_param_store_alone(loaded):
    mine = pyro.param("mine", torch.ones(2))
    info = loaded.config.data.info
    x = torch.rand(3, info["channels"], info["image_size"], info["image_size"])
    shapes = value_shapes(loaded.model, loaded.guide, x)
    for parallel in (False, True):
        check_samples(Predictive(loaded.model, guide=loaded.guide, num_samples=SAMPLES, parallel=parallel)(x), shapes)
    poutine.trace(loaded.guide).get_trace(x)
    loaded.model(x)
    assert list(pyro.get_param_store().keys()) == ["mine"] and pyro.param("mine") is mine


@pytest.mark.parametrize("loaded", ["ccvae"], indirect=True)  # its conditional prior makes the check
def test_a_loaded_run_uses_its_own_parameters_not_the_caller_s(loaded):
    run_scale = loaded.model.conditional_prior.scale.detach().clone()
    pyro.param("model.conditional_prior.scale", torch.full_like(run_scale, 100.0))  # the same name, in the caller's store
    info = loaded.config.data.info
    trace = poutine.trace(loaded.model).get_trace(torch.rand(2, info["channels"], info["image_size"], info["image_size"]))
    assert trace.nodes["z_c"]["fn"].base_dist.scale.max() < 100.0
    assert torch.equal(pyro.param("model.conditional_prior.scale"), torch.full_like(run_scale, 100.0))


# --- condition and do -------------------------------------------------------------------------


def test_ccvae_generates_images_of_given_classes_with_condition():
    model, _ = fresh("ccvae")
    y = torch.tensor([[1, 2], [0, 1], [1, 0]])
    trace = poutine.trace(poutine.condition(model, data={"y": y.T})).get_trace(batch_size=len(y))
    loc, _ = model.conditional_prior(y.T)
    assert torch.equal(trace.nodes["z_c"]["fn"].base_dist.loc, loc)  # z_c ~ p(z_c | y) of the given y
    assert trace.nodes["x"]["value"].shape == (3, 1, 32, 32)  # drawn, not observed
    assert not trace.nodes["x"]["is_observed"]
    # the same with the labels as the model's argument
    trace = poutine.trace(model).get_trace(None, y.float())
    assert torch.equal(trace.nodes["z_c"]["fn"].base_dist.loc, loc)
    with pytest.raises(ValueError, match="give the labels y"):
        model()


def test_ccvae_intervenes_on_z_c_with_do():
    model, guide = fresh("ccvae")
    x, _, _ = batch()
    z_c = torch.randn(2, BATCH, 1)  # [L, B, d_c]
    trace = poutine.trace(poutine.do(model, data={"z_c": z_c})).get_trace(x)
    z_s = trace.nodes["z_s"]["value"]
    assert torch.allclose(trace.nodes["x"]["fn"].mean, model.decode(z_c.transpose(0, 1), z_s))
    # Predictive on the intervened model: the posterior's z_s with a chosen z_c
    samples = Predictive(poutine.do(model, data={"z_c": z_c}), guide=guide, num_samples=SAMPLES, return_sites=["x"])(x)
    assert samples["x"].shape == (SAMPLES, 1, BATCH, 1, 32, 32)


def test_diva_condition_and_do():
    model, _ = fresh("diva")
    x, _, _ = batch()
    y = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    trace = poutine.trace(poutine.condition(model, data={"y_unobserved": y.T})).get_trace(x)
    assert torch.equal(trace.nodes["z_c"]["fn"].base_dist.loc, model.conditional_prior(y.T)[0])
    z_c = torch.randn(2, BATCH, 1)
    trace = poutine.trace(poutine.do(model, data={"z_c": z_c})).get_trace(x)
    assert torch.allclose(trace.nodes["x"]["fn"].mean, model.decode(z_c.transpose(0, 1), trace.nodes["z_s"]["value"]))


def test_m2_condition_on_labels_and_do_on_z():
    model, _ = fresh("m2")
    x, _, _ = batch()
    y = torch.tensor([[1, 2], [0, 1], [1, 0], [0, 0]])
    z = torch.randn(BATCH, 3)
    data = {"y_0_unobserved": y[:, 0], "y_1_unobserved": y[:, 1]}
    trace = poutine.trace(poutine.do(poutine.condition(model, data=data), data={"z": z})).get_trace(x)
    assert torch.allclose(trace.nodes["x"]["fn"].mean, model.decode(one_hot(y, 3, x.dtype), z))
    # without images the model draws them: given labels as its argument, or conditioned on the label sites
    for trace in (
        poutine.trace(poutine.do(model, data={"z": z})).get_trace(None, y.float()),
        poutine.trace(poutine.do(poutine.condition(model, data=data), data={"z": z})).get_trace(batch_size=BATCH),
    ):
        assert not trace.nodes["x"]["is_observed"] and trace.nodes["x"]["value"].shape == x.shape
        assert torch.allclose(trace.nodes["x"]["fn"].mean, model.decode(one_hot(y, 3, x.dtype), z))


def test_mvae_do_on_z():
    model, _ = fresh("mvae")
    x, _, _ = batch()
    z = torch.randn(BATCH, 8)
    trace = poutine.trace(poutine.do(model, data={"z_image": z})).get_trace(x)
    assert torch.allclose(trace.nodes["x_image"]["fn"].mean, model.decode(z))
