"""Loading a run for analysis: a guide import path needs --trust-run; generate needs no data;
the independent classifier loads weights-only and its --out refuses a stranger's folder."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.analysis.classifier import ClassifierConfig, load_classifier, train_classifier
from pyro_ccvae.checkpoint import ForeignDirectoryError, save_checkpoint
from pyro_ccvae.data import DataError
from pyro_ccvae.run_directory import RunError, load_run
from pyro_ccvae_cli.main import main


def copy_run(run_dir, tmp_path, **config_changes):
    """A copy of the run, with ``section={key: value}`` changes to its config."""
    path = tmp_path / "copy"
    shutil.copytree(run_dir, path, ignore=shutil.ignore_patterns("figures", "attribute_classifier", "*.html"))
    config = json.loads((path / "config.json").read_text())
    for section, changes in config_changes.items():
        config[section].update(changes)
    (path / "config.json").write_text(json.dumps(config))
    if config_changes:  # the checkpoint records the config it was trained with: as if trained with this one
        state = torch.load(path / "checkpoint.pt", weights_only=True)
        state["config"] = config
        save_checkpoint(state, path / "checkpoint.pt")
    return path


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_a_guide_import_path_needs_trust(run_dir, tmp_path):
    path = copy_run(run_dir, tmp_path, guide={"name": "pyro_ccvae.guides:MeanFieldGuide"})
    with pytest.raises(RunError, match="--trust-run"):
        load_run(path, load_data=False)
    assert load_run(path, load_data=False, trust=True).config.guide.name == "pyro_ccvae.guides:MeanFieldGuide"
    refused = cli("generate", path, "--device", "cpu")
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "--trust-run" in refused.output
    assert cli("generate", path, "--device", "cpu", "--trust-run").exit_code == 0


def test_generate_does_not_load_the_data(run_dir, tmp_path, monkeypatch):
    path = copy_run(run_dir, tmp_path)

    def no_data(*args, **kwargs):
        raise AssertionError("generate loaded the data")

    monkeypatch.setattr("pyro_ccvae.run_directory.load_dataset", no_data)
    result = cli("generate", path, "--device", "cpu", "--samples", 2)
    assert result.exit_code == 0, result.output


def test_data_that_no_longer_match_the_splits_are_named(run_dir, tmp_path):
    path = copy_run(run_dir, tmp_path)
    splits = json.loads((path / "splits.json").read_text())
    splits["test"] = splits["test"][:-1]
    (path / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(RunError, match="no longer matches .*splits.json.*--data-dir"):
        load_run(path)


def test_data_dir_override_reaches_the_loader(run_dir, tmp_path):
    path = copy_run(run_dir, tmp_path, data={"dataset": "chexpert"})
    result = cli("swap", path, "--device", "cpu", "--data-dir", tmp_path / "moved")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert str(tmp_path / "moved") in result.output
    with pytest.raises(DataError, match=str(tmp_path / "moved")):
        load_run(path, data_dir=tmp_path / "moved")


def test_classifier_loads_weights_only_and_its_out_is_checked(classifier_dir, tmp_path):
    net = load_classifier(classifier_dir, "cpu")
    assert net.label_names
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(ForeignDirectoryError, match="refusing"):
        train_classifier(ClassifierConfig(num_train=64, epochs=1, device="cpu"), tmp_path, progress=False)
    (tmp_path / "classifier.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read.*train-classifier"):
        load_classifier(tmp_path, "cpu")
