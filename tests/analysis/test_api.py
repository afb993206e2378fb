"""The Python API: tensors with known answers, the caller's param store untouched, clean refusals."""
from __future__ import annotations

import copy

import pyro
import pytest
import torch

from pyro_ccvae import api
from pyro_ccvae.models import CapabilityError


@pytest.fixture(scope="module")
def loaded(run_dir):
    return api.load(run_dir)


def test_verbs_agree_with_each_other(loaded):
    x = loaded.images(6)
    assert torch.allclose(loaded.swap(x, x), loaded.reconstruct(x), atol=1e-6)
    z_c, z_s = loaded.encode(x)
    rep = loaded.representation
    with loaded.run.scope():
        expected = rep.decode(rep.intervene(z_c, 1, 1, sample=False), z_s)
    assert torch.allclose(loaded.intervene(x, loaded.label_names[1], 1, sample=False), expected, atol=1e-6)
    walk = loaded.traverse(x[:2], 0, steps=3, extend=0.0)
    loc = rep.class_prior(0)[0]
    z = z_c[:2].clone()
    z[:, 0] = loc[1]
    with loaded.run.scope():
        assert torch.allclose(walk[:, -1], rep.decode(z, z_s[:2]), atol=1e-6)
    uint8 = loaded.run.data.test.images[:6]
    assert torch.allclose(loaded.predict(uint8), loaded.predict(x))


def test_generate_fixes_the_labels_it_is_given(loaded):
    y = torch.zeros(3, len(loaded.label_names))
    assert loaded.generate(y).shape == (3, *loaded.images(1).shape[1:])
    assert loaded.generate({"red": 1}, 4, style=torch.zeros(4, loaded.encode(loaded.images(1))[1].shape[-1])).shape[0] == 4
    with pytest.raises(ValueError, match="not_a_label"):
        loaded.generate({"not_a_label": 1})


def test_the_api_leaves_the_caller_s_param_store_alone(loaded):
    mine = pyro.param("mine", torch.ones(2))
    loaded.predict(loaded.images(2))
    loaded.generate(None, 2)
    assert list(pyro.get_param_store().keys()) == ["mine"] and pyro.param("mine") is mine


def test_a_missing_capability_is_one_line(loaded):
    partial = copy.copy(loaded)
    partial.representation = copy.copy(loaded.representation)
    partial.representation.family, partial.representation.capabilities = "partial", frozenset({"encode"})
    with pytest.raises(CapabilityError, match="swap needs the capability 'swap', which model 'partial'") as error:
        partial.swap(loaded.images(1), loaded.images(1))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown task"):
        loaded.write("paint")


def test_without_data_images_are_refused(run_dir):
    bare = api.load(run_dir, data=False)
    with pytest.raises(ValueError, match="without its data"):
        bare.images(2)
    with pytest.raises(ValueError, match="without its data"):
        bare.labels(2)
    z_c, z_s = bare.encode(torch.rand(2, 3, 32, 32))
    assert bare.decode(z_c, z_s).shape == (2, 3, 32, 32)
    assert bare.predict(torch.rand(2, 3, 32, 32)).shape[:2] == (2, len(bare.label_names))


def test_decode_and_labels_complete_the_verbs(loaded):
    x = loaded.images(4)
    assert torch.allclose(loaded.decode(*loaded.encode(x)), loaded.reconstruct(x), atol=1e-6)
    y, seen = loaded.labels(4)
    test = loaded.run.data.test
    assert y.shape == seen.shape == (4, len(loaded.label_names)) and y.dtype == torch.long and seen.dtype == torch.bool
    assert torch.equal(y, test.labels[:4].long()) and torch.equal(seen, test.mask[:4])
    assert len(loaded.labels()[0]) == len(loaded.images()) == len(test)
    assert loaded.labels(2, split="train")[0].shape == (2, len(loaded.label_names))


def test_the_run_s_model_and_guide_work_with_pyro_and_leave_the_param_store_alone(loaded):
    mine = pyro.param("mine", torch.ones(2))
    x = loaded.images(3)
    samples = pyro.infer.Predictive(loaded.model, guide=loaded.guide, num_samples=2)(x)
    assert samples["z_c"].shape == (2, len(loaded.label_names), 3, 1)
    y, _ = loaded.labels(3)
    trace = pyro.poutine.trace(pyro.poutine.condition(loaded.model, data={"y": y.T})).get_trace(batch_size=3)
    assert trace.nodes["x"]["fn"].mean.shape == x.shape
    assert list(pyro.get_param_store().keys()) == ["mine"] and pyro.param("mine") is mine
