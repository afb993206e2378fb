"""The run directory's contract: a nested config.json that loads strictly, version 0.1's flat
config still loads, loading a run leaves the caller's Pyro parameter store alone, and the CLI's
options come from the config dataclasses."""
import json
from dataclasses import fields

import pyro
import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.config import SECTIONS, TrainConfig, option_name
from pyro_ccvae.checkpoint import save_checkpoint
from pyro_ccvae.run_directory import CHECKPOINT, CONFIG, RunError, config_from_json, load_run, read_config
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("rundir") / "run"
    config = TrainConfig.from_options(num_train=64, epochs=1, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
    train(config, path, progress=False)
    return path


def test_config_is_nested_and_round_trips(trained):
    raw = json.loads((trained / CONFIG).read_text())
    assert list(raw) == ["version", *SECTIONS]
    assert raw["model"]["name"] == "ccvae" and raw["guide"] == {"name": "meanfield", "options": {}}
    assert raw["data"]["info"]["label_names"][0] == "square" and raw["run"]["device"] == "cpu"
    config = read_config(trained)
    assert config.to_dict() == {k: v for k, v in raw.items() if k != "version"}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["optimisation"].update(momentum=0.9), "unknown key optimisation.momentum"),
        (lambda c: c["model"].pop("z_char_dim"), "missing key model.z_char_dim"),
        (lambda c: c.pop("guide"), "section 'guide' is missing"),
        (lambda c: c.update(extra={}), "unknown section 'extra'"),
        (lambda c: c["model"].update(name="vae"), "unknown model 'vae'"),
        (lambda c: c.update(version=7), "version 7"),
    ],
)
def test_config_loads_strictly_with_one_line_errors(trained, tmp_path, change, message):
    raw = json.loads((trained / CONFIG).read_text())
    change(raw)
    (tmp_path / CONFIG).write_text(json.dumps(raw))
    with pytest.raises(RunError, match=message) as error:
        read_config(tmp_path)
    assert "\n" not in str(error.value)


def version_01_config(nested: dict) -> dict:
    """The flat config.json version 0.1 wrote for the same run (before the sections existed)."""
    flat = {}
    for section in SECTIONS:
        for key, value in nested[section].items():
            flat[{"info": "data_info"}.get(key, key)] = value
    flat["guide"] = flat.pop("name")  # the guide's; the model's name did not exist
    for key in ("detach_weight_denominator", "classifier_weight", "prior_lr_factor"):
        del flat[key]  # options 0.1 did not have
    return flat


def test_a_version_0_1_run_still_loads(trained, tmp_path):
    import shutil

    path = tmp_path / "old"
    shutil.copytree(trained, path)
    nested = json.loads((path / CONFIG).read_text())
    flat = version_01_config(nested)
    (path / CONFIG).write_text(json.dumps(flat))
    # a checkpoint of version 0.1 recorded no config (one that does is compared with config.json)
    state = torch.load(path / CHECKPOINT, weights_only=True)
    del state["config"]
    save_checkpoint(state, path / CHECKPOINT)
    config = read_config(path)
    # options it lacked get what 0.1 trained with: the paper's objective
    assert (config.model.detach_weight_denominator, config.model.classifier_weight, config.model.prior_lr_factor) == (False, 1.0, 1.0)
    assert config.guide.name == flat["guide"] and config.data.info == nested["data"]["info"]
    assert load_run(path, load_data=False).label_names == nested["data"]["info"]["label_names"]
    with pytest.raises(ValueError, match="unknown key 'momentum'"):
        config_from_json({**flat, "momentum": 0.9})


def test_loading_a_run_leaves_the_caller_s_param_store_alone(trained):
    store = pyro.get_param_store()
    mine = pyro.param("my_weight", torch.tensor(3.0))
    # A parameter of the caller's with a name the run's model also uses must not leak into the run.
    pyro.param("model.conditional_prior.scale", torch.full((6, 2, 1), 7.0))
    run = load_run(trained, load_data=False)
    with run.scope():
        loc, scale = run.model.conditional_prior(torch.zeros(6, 2))
    assert not torch.allclose(scale, torch.tensor(7.0))
    assert set(store.keys()) == {"my_weight", "model.conditional_prior.scale"}
    assert pyro.param("my_weight") is mine
    assert torch.equal(pyro.param("model.conditional_prior.scale"), torch.full((6, 2, 1), 7.0))
    # The run's own scope keeps its parameters between calls.
    with run.scope():
        assert "model.conditional_prior.scale" in store.keys() and "my_weight" not in store.keys()


def test_every_config_field_is_an_option_of_train():
    result = CliRunner().invoke(main, ["train", "--help"], catch_exceptions=False)
    help_text = result.output
    config = TrainConfig()
    for section in SECTIONS:
        for f in fields(getattr(config, section)):
            if f.metadata.get("cli", True):
                flag = (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]
                assert flag in help_text, f"{section}.{f.name}"
    names = [option_name(f) for s in SECTIONS for f in fields(getattr(config, s))]
    assert len(names) == len(set(names)), "option names must be unique across sections"


def test_from_options_names_an_unknown_option():
    with pytest.raises(ValueError, match="unknown option 'momentum'"):
        TrainConfig.from_options(momentum=0.9)
