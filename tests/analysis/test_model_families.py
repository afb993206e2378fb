"""The model-family contract: every registered family trains, saves, reloads and answers each
capability it declares; analysis refuses, in one line, a task whose capabilities a model lacks."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.analysis import metrics, sections, tasks
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models import CAPABILITIES, MODELS, CapabilityError
from pyro_ccvae.models.base import ModelFamily, Representation
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main


#: each family's settings for a tiny run (its own option names).
SMALL = {
    "ccvae": {"k_samples": 3, "z_style_dim": 3},
    "m2": {"z_style_dim": 3},
    "diva": {"z_style_dim": 3},
    "mvae": {"z_dim": 8},
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def family_run(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "run"
    config = TrainConfig.from_options(model=request.param, num_train=48, epochs=1, batch_size=16, device="cpu", **SMALL[request.param])
    train(config, path, progress=False)
    return request.param, path


def test_every_family_has_tiny_settings():
    assert set(SMALL) == set(MODELS)


def test_every_family_brings_its_parts():
    for name, family in MODELS.items():
        assert isinstance(family, ModelFamily) and family.name == name
        first = dataclasses.fields(family.config_class)[0]
        assert first.name == "name" and first.default == name


def test_a_family_trains_saves_reloads_and_answers_its_capabilities(family_run):
    name, path = family_run
    run = load_run(path, "cpu")
    rep = run.representation
    assert isinstance(rep, Representation) and rep.family == name
    assert rep.capabilities <= set(CAPABILITIES)
    x = torch.rand(5, *run.data.test.images.shape[1:])
    num_labels, classes = len(run.label_names), max(rep.num_classes)
    with run.scope():
        if "encode" in rep.capabilities:
            z_c, z_s = rep.encode(x)
            assert z_c.shape[:2] == (5, num_labels) and z_s.shape[0] == 5
        if "predict" in rep.capabilities:
            probs = rep.predict(x)
            assert probs.shape == (5, num_labels, classes)
            assert torch.allclose(probs.sum(-1), torch.ones(5, num_labels))
        if "decode" in rep.capabilities:
            assert rep.decode(z_c, z_s).shape == x.shape
        if "reconstruct" in rep.capabilities:
            assert rep.reconstruct(x).shape == x.shape
        if "sample" in rep.capabilities:
            assert rep.label_prior().shape == (num_labels, classes)
            y = rep.sample_labels(4, {0: 1})
            assert y.shape == (4, num_labels) and (y[:, 0] == 1).all()
            assert rep.sample_characteristic(y).shape == (4, *z_c.shape[1:])
            assert rep.sample_style((4,)).shape == (4, z_s.shape[-1])
        if "intervene" in rep.capabilities:
            moved = rep.intervene(z_c, 0, 1, sample=False)
            assert torch.equal(moved[:, 1:], z_c[:, 1:])
            if "traverse" in rep.capabilities:
                assert torch.allclose(moved[:, 0], rep.class_prior(0)[0][1].expand_as(moved[:, 0]))
            for wrong in (-1, rep.num_classes[0], 0.5):  # every family refuses a class its label lacks
                with pytest.raises(ValueError, match=rf"{run.label_names[0]!r} has classes 0\.\.{rep.num_classes[0] - 1}"):
                    rep.intervene(z_c, 0, wrong)
        if "likelihood" in rep.capabilities:
            w_x, w_xy = rep.log_weights(x, 2)
            assert w_x.shape == w_xy.shape == (2, 5)


def test_a_family_refuses_in_one_line_what_it_does_not_declare(family_run):
    """Every capability a model lacks is a one-line CapabilityError from the representation,
    and every research task that needs one refuses before doing anything."""
    name, path = family_run
    run = load_run(path, "cpu", load_data=False)
    rep = run.representation
    for capability in set(CAPABILITIES) - rep.capabilities:
        with pytest.raises(CapabilityError) as error:
            rep.require("a task", [capability])
        assert "\n" not in str(error.value) and repr(name) in str(error.value)
    for task in (tasks.evaluate, tasks.traverse, tasks.generate, tasks.intervene, tasks.swap):
        if not set(task.needs) <= rep.capabilities:
            with pytest.raises(CapabilityError, match=f"needs the capability .* which model {name!r} does not offer") as error:
                task(run)
            assert "\n" not in str(error.value)


def test_evaluate_runs_the_sections_a_family_offers_and_names_the_rest(family_run):
    name, path = family_run
    run = load_run(path, "cpu")
    tasks.evaluate(run, iw_samples=2, max_images=8, gen_samples=4, attribute_epochs=0, progress=False)
    written = json.loads((path / "metrics.json").read_text())
    lacking = {s for s, needs in sections.OPTIONAL.items() if not set(needs) <= run.representation.capabilities}
    assert set(written["evaluation"]["skipped"]) == lacking | {"fid"}  # fid: no --fid-weights given
    assert all("does not offer" in why and "\n" not in why for s, why in written["evaluation"]["skipped"].items() if s != "fid")
    assert written["classification"]["accuracy_mean"] is not None and "health" in written
    assert ("likelihood" in written) == ("likelihood" not in lacking)
    assert ("latent_separation" in written) == ("latent_separation" not in lacking)
    assert (path / "figures" / "reconstructions.png").exists()


def without_traversals(inner: Representation) -> Representation:
    """The same representation, offering everything but traversals."""
    partial = copy.copy(inner)
    partial.family, partial.capabilities = "partial", inner.capabilities - {"traverse"}
    return partial


def test_a_task_refuses_a_capability_the_model_lacks(run, monkeypatch):
    monkeypatch.setattr(run, "representation", without_traversals(run.representation))
    with pytest.raises(CapabilityError, match="`traverse` needs the capability 'traverse', which model 'partial' does not offer") as error:
        tasks.traverse(run)
    assert "\n" not in str(error.value)
    assert "traverse" in tasks.traverse.needs and "traverse" not in tasks.swap.needs
    tasks.swap(run, images=2)  # a task that does not need it still runs


def test_the_cli_names_the_missing_capability_in_one_line(run_dir, monkeypatch):
    from pyro_ccvae import api

    real = api.load_run

    def partial(*args, **kwargs):
        loaded = real(*args, **kwargs)
        loaded.representation = without_traversals(loaded.representation)
        return loaded

    monkeypatch.setattr(api, "load_run", partial)
    result = CliRunner().invoke(main, ["traverse", str(run_dir), "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "needs the capability 'traverse'" in result.output and "'partial'" in result.output


def test_an_unknown_model_is_one_line():
    with pytest.raises(ValueError, match="unknown model 'nosuch'.*ccvae"):
        TrainConfig.from_options(model="nosuch")


def test_evaluate_warns_of_z_s_leakage_where_the_design_keeps_z_s_label_free(family_run, monkeypatch):
    name, path = family_run
    run = load_run(path, "cpu")
    first = run.label_names[0]
    per_label = lambda value: {n: value for n in run.label_names}  # noqa: E731
    leaking = {
        "linear_accuracy": per_label(1.0), "knn_accuracy": per_label(1.0), "chance": per_label(0.5),
        "leakage": per_label(1.0), "leaking_labels": [first], "leakage_warning": 0.5,
    }  # fmt: skip
    monkeypatch.setattr(metrics, "style_leakage", lambda analysis, seed=0: dict(leaking))
    tasks.evaluate(run, iw_samples=2, max_images=8, gen_samples=4, attribute_epochs=0, progress=False)
    written = json.loads((path / "metrics.json").read_text())
    warned = [w for w in written["health"]["warnings"] if w.startswith("z_s holds label information")]
    assert written["style_leakage"]["style_is_label_free"] == (name != "mvae")
    assert len(warned) == (0 if name == "mvae" else 1)
