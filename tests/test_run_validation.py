"""A hand-edited or mismatched run directory ends in one line that names the file and the key,
never a traceback, and changes nothing (issue 19, items 4, 5 and part of 10).

Every fault is made by hand in a copy of one tiny trained run: ``config.json`` with a section of
the wrong type or nested deeply, ``labelled.json`` and ``splits.json`` edited, a checkpoint of
another configuration (another ``--z-char-dim``, label order, likelihood, image size).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.checkpoint import checksums_path, save_checkpoint
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import CHECKPOINT, CONFIG, LABELLED, SPLITS, RunError, load_run, read_config, write_config
from pyro_ccvae.training import choose_labelled, train
from pyro_ccvae_cli.main import main

TINY = dict(num_train=64, epochs=1, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
#: lock files change whenever a process takes them: not part of what a refused command must keep.
LOCKS = {".writer.lock", ".results.lock"}


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_options(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("validation") / "run"
    train(tiny(), path, progress=False)
    return path


@pytest.fixture(scope="module")
def others(tmp_path_factory) -> dict[str, Path]:
    """Runs of other configurations, whose checkpoints are put into a copy of ``trained``."""
    root = tmp_path_factory.mktemp("others")
    settings = {
        "z_char_dim": dict(z_char_dim=2),
        "labels": dict(labels=["red", "square"]),
        "likelihood": dict(likelihood="bernoulli"),
        "image_size": dict(image_size=64, num_train=32),
    }
    runs = {}
    for name, options in settings.items():
        runs[name] = root / name
        train(tiny(**options), runs[name], progress=False)
    return runs


def copy_of(run: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copy"
    shutil.copytree(run, path)
    return path


def contents(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (locks aside) by relative path: its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in LOCKS
    }  # fmt: skip


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    """The command failed with exactly one ``error: ...`` line and no traceback; that line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def edit_json(file: Path, change) -> None:
    value = json.loads(file.read_text())
    changed = change(value)
    file.write_text(json.dumps(value if changed is None else changed))


# --- item 5: config.json -----------------------------------------------------------------------


CONFIG_FAULTS = {
    "section a list": (lambda c: c.update(model=[1, 2]), "section 'model' must be an object"),
    "section a string": (lambda c: c.update(data="abc"), "section 'data' must be an object"),
    "info a list": (lambda c: c["data"].update(info=[1]), "data.info must be an object"),
    "label names a string": (lambda c: c["data"]["info"].update(label_names="abc"), "data.info.label_names must be"),
    "label named twice": (lambda c: c["data"]["info"].update(label_names=["red"] * 6), "data.info.label_names names 'red' twice"),
    "classes of other labels": (lambda c: c["data"]["info"].update(num_classes=[2]), "data.info.num_classes has 1 entries for 6"),
    "channels a string": (lambda c: c["data"]["info"].update(channels="3"), "data.info.channels must be 1 or 3"),
    "guide options a list": (lambda c: c["guide"].update(options=[1]), "guide.options must be an object"),
    "guide option nested": (lambda c: c["guide"].update(options={"rank": {"a": 1}}), "guide.options.rank must be"),
    "epochs a string": (lambda c: c["optimisation"].update(epochs="x"), "optimisation.epochs must be an integer"),
    "z_char_dim a bool": (lambda c: c["model"].update(z_char_dim=True), "model.z_char_dim must be an integer"),
    "labels a number": (lambda c: c["data"].update(labels=5), "data.labels must be a list of strings or null"),
    "seed null": (lambda c: c["run"].update(seed=None), "run.seed must be an integer, not null"),
    "model name a list": (lambda c: c["model"].update(name=[1]), "model.name must be a string"),
    "a choice that is none": (lambda c: c["model"].update(jensen="maybe"), "model.jensen is \"maybe\", not one of"),
    "not an object": (lambda c: [c], "it is not a JSON object but list"),
}


@pytest.mark.parametrize("fault", CONFIG_FAULTS)
def test_a_hand_edited_config_is_one_line_naming_the_key(trained, tmp_path, fault):
    change, message = CONFIG_FAULTS[fault]
    run = copy_of(trained, tmp_path)
    edit_json(run / CONFIG, change)
    before = contents(tmp_path)
    line = one_error_line(cli("generate", run, "--device", "cpu"))
    assert str(run / CONFIG) in line and message in line
    with pytest.raises(RunError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_config(run)
    assert contents(tmp_path) == before


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000, "NaN", "{\n", "\xff"])
def test_config_json_nested_deeply_or_not_json_is_one_line(trained, tmp_path, text):
    run = copy_of(trained, tmp_path)
    (run / CONFIG).write_bytes(text.encode("latin-1"))
    before = contents(tmp_path)
    for args in (("generate", run, "--device", "cpu"), ("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")):
        line = one_error_line(cli(*args))
        assert str(run / CONFIG) in line
    assert contents(tmp_path) == before


def test_a_non_finite_setting_is_never_written(tmp_path):
    config = tiny(lr=float("nan"))
    with pytest.raises(RunError, match=r"optimisation.lr is nan: .*give --lr a finite value"):
        write_config(tmp_path, config)
    assert not (tmp_path / CONFIG).exists()


# --- item 5 and 10: labelled.json and splits.json ------------------------------------------------


LABELLED_FAULTS = {
    "empty": ([], "it holds 0 indices, but optimisation.sup_frac 1.0 of 64 training points labels 64"),
    "beyond the split": (list(range(63)) + [64], "entry 63 is 64, beyond the training split's 64 points (0 to 63)"),
    "a string": (list(range(63)) + ["a"], 'entry 63 is "a", not an index'),
    "a float": ([0.5] + list(range(1, 64)), "entry 0 is 0.5, not an index"),
    "a bool": ([True] + list(range(1, 64)), "entry 0 is true, not an index"),
    "negative": ([-1] + list(range(1, 64)), "entry 0 is -1, a negative index"),
    "duplicated": ([1] + list(range(1, 64)), "entry 1 repeats index 1 (entry 0)"),
    "an object": ({"a": 1}, "it must be a list of indices"),
}


@pytest.mark.parametrize("fault", LABELLED_FAULTS)
def test_labelled_json_is_checked_on_resume(trained, tmp_path, fault):
    value, message = LABELLED_FAULTS[fault]
    run = copy_of(trained, tmp_path)
    (run / LABELLED).write_text(json.dumps(value))
    before = contents(tmp_path)
    line = one_error_line(cli("train", "--out", run, "--resume", "--epochs", "2", "--no-progress"))
    assert str(run / LABELLED) in line and message in line, line
    assert contents(tmp_path) == before  # config.json too: not rewritten to 2 epochs


def test_a_missing_labelled_json_is_named_on_resume(trained, tmp_path):
    run = copy_of(trained, tmp_path)
    (run / LABELLED).unlink()
    line = one_error_line(cli("train", "--out", run, "--resume", "--epochs", "2", "--no-progress"))
    assert f"{run / LABELLED} is missing" in line


SPLITS_FAULTS = {
    "a list": ([], "it must be an object with the lists train, valid, test"),
    "a split missing": ({"train": [], "valid": []}, "it has no list 'test'"),
    "a split a number": ({"train": 5, "valid": [], "test": []}, "train must be a list"),
    "an item a list": ({"train": [[1]], "valid": [], "test": []}, "train[0] is [1], not an item's name or number"),
}


@pytest.mark.parametrize("fault", SPLITS_FAULTS)
def test_splits_json_is_checked(trained, tmp_path, fault):
    value, message = SPLITS_FAULTS[fault]
    run = copy_of(trained, tmp_path)
    (run / SPLITS).write_text(json.dumps(value))
    before = contents(tmp_path)
    for args in (("swap", run, "--device", "cpu"), ("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")):
        line = one_error_line(cli(*args))
        assert str(run / SPLITS) in line and message in line, line
    assert contents(tmp_path) == before


def test_resume_with_fewer_epochs_leaves_config_json_alone(trained, tmp_path, caplog):
    run = copy_of(trained, tmp_path)
    train(tiny(epochs=2), run, resume=True, progress=False)
    config_before = (run / CONFIG).read_bytes()
    with caplog.at_level(logging.INFO):
        train(tiny(epochs=1), run, resume=True, progress=False)
    assert "nothing to do" in caplog.text
    assert (run / CONFIG).read_bytes() == config_before
    assert read_config(run).optimisation.epochs == 2


def test_a_sup_frac_that_labels_nothing_warns(caplog):
    with caplog.at_level(logging.WARNING):
        assert len(choose_labelled(200, 0.001, seed=0)) == 0
    assert "--sup-frac 0.001 of 200 training points rounds to 0 labelled points" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(choose_labelled(200, 0.0, seed=0)) == 0  # asked for: no warning
    assert not caplog.text


# --- item 4 and 10: a checkpoint of another configuration -----------------------------------------


EXPECTED = {
    "z_char_dim": "was trained with model.z_char_dim 2 but config.json says 1",
    "labels": 'was trained with data.labels ["red", "square"] but config.json says null',
    "likelihood": 'was trained with model.likelihood "bernoulli" but config.json says "{default}"',
    "image_size": "was trained with data.info.image_size 64 but config.json says 32",
}


@pytest.mark.parametrize("other", EXPECTED)
def test_a_checkpoint_of_another_configuration_names_the_setting(trained, others, tmp_path, other):
    expected = EXPECTED[other].format(default=read_config(trained).model.likelihood)
    run = copy_of(trained, tmp_path)
    for file in (CHECKPOINT, checksums_path(Path(CHECKPOINT)).name):
        shutil.copy(others[other] / file, run / file)
    before = contents(tmp_path)
    for args in (("generate", run, "--device", "cpu"), ("train", "--out", run, "--resume", "--epochs", "2", "--no-progress")):
        line = one_error_line(cli(*args))
        assert f"{run / CHECKPOINT} {expected}" in line, line
        assert "put back the config.json of the run that wrote it" in line
    assert contents(tmp_path) == before


def test_label_order_matters_though_the_shapes_agree(others, tmp_path):
    """``--labels red,square`` and ``square,red`` build the same shapes: the checkpoint's record tells them apart."""
    run = tmp_path / "swapped"
    train(tiny(labels=["square", "red"]), run, progress=False)
    shutil.copy(others["labels"] / CHECKPOINT, run / CHECKPOINT)
    shutil.copy(others["labels"] / checksums_path(Path(CHECKPOINT)).name, run / checksums_path(Path(CHECKPOINT)).name)
    with pytest.raises(RunError, match=r'data.labels \["red", "square"\] but config.json says \["square", "red"\]'):
        load_run(run, load_data=False)


def without_config_record(run: Path) -> None:
    """Make the run's checkpoint one written before checkpoints recorded their config."""
    state = torch.load(run / CHECKPOINT, weights_only=True)
    del state["config"]
    save_checkpoint(state, run / CHECKPOINT)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["model"].update(z_char_dim=3), "it was trained with model.z_char_dim 1, which config.json does not say"),
        (lambda c: c["data"]["info"].update(channels=1), "it was trained with data.info.channels 3, which config.json does not say"),
        (lambda c: c["model"].update(likelihood="bernoulli"), "it was trained with model.likelihood laplace-learned"),
    ],
)
def test_an_older_checkpoint_that_does_not_fit_names_the_setting_from_its_shapes(trained, tmp_path, edit, message):
    if "likelihood" in message and read_config(trained).model.likelihood != "laplace-learned":
        pytest.skip("the shapes data set's default likelihood is no longer laplace-learned")
    run = copy_of(trained, tmp_path)
    without_config_record(run)
    edit_json(run / CONFIG, edit)
    line = one_error_line(cli("generate", run, "--device", "cpu"))
    assert f"{run / CHECKPOINT} does not fit the model config.json describes" in line and message in line, line


def test_a_checkpoint_without_its_sha256_record_is_reported(trained, tmp_path, caplog):
    run = copy_of(trained, tmp_path)
    checksums_path(run / CHECKPOINT).unlink()
    with caplog.at_level(logging.WARNING):
        load_run(run, load_data=False)
    assert f"{run / CHECKPOINT} has no sha256 record" in caplog.text and "loaded unverified" in caplog.text


def test_resumable_settings_are_not_a_difference(trained, tmp_path):
    """What --resume may change (epochs, device, data location) does not make a checkpoint another run's."""
    run = copy_of(trained, tmp_path)
    def resumable(config):
        config["optimisation"]["epochs"], config["run"]["device"], config["data"]["cache_dir"] = 5, "auto", "/x"

    edit_json(run / CONFIG, resumable)
    assert load_run(run, load_data=False).config.optimisation.epochs == 5
