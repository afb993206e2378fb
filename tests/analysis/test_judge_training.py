"""``train-classifier`` stops when it has learned: a seeded validation part of the training split,
early stopping on its NLL with the best epoch's weights kept, a checkpoint per epoch that
``--resume`` continues exactly, and judge directories from before these still load."""
from __future__ import annotations

import io
import json

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.analysis import classifier as judges
from pyro_ccvae.analysis.classifier import ClassifierConfig, load_classifier, train_classifier
from pyro_ccvae_cli.main import main

from analysis.categorical_fakes import level_side_data  # tests/ is on the path of its top-level modules

#: a quick judge: no GP head unless a test asks for one.
QUICK = dict(dataset="shapes", batch_size=16, lr=3e-3, device="cpu", gp_steps=0)


@pytest.fixture(autouse=True)
def fake_dataset(monkeypatch):
    monkeypatch.setattr(judges, "load_dataset", lambda name, options: level_side_data())


def weights(folder):
    return torch.load(io.BytesIO((folder / judges.WEIGHTS).read_bytes()), weights_only=True)["state_dict"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def scripted_validation(monkeypatch, losses):
    """Validation NLLs in the order given, whatever the network does."""
    values = iter(losses)
    monkeypatch.setattr(judges, "validation_nll", lambda probs, split: next(values))


def test_the_validation_part_is_seeded_disjoint_and_stated(tmp_path):
    train = level_side_data().train
    kept, held, count = judges.split_validation(train, 0.1, seed=3)
    assert count == 8 and len(held) == 8 and len(kept) == 72
    again = judges.split_validation(train, 0.1, seed=3)[1]
    assert torch.equal(held.images, again.images)  # seeded
    other = judges.split_validation(train, 0.1, seed=4)[1]
    assert not torch.equal(held.images, other.images) or not torch.equal(held.labels, other.labels)
    summary = train_classifier(ClassifierConfig(**QUICK, epochs=1, seed=3), tmp_path, progress=False)
    assert summary["validation"] == {
        **summary["validation"], "source": "training split", "fraction": 0.1, "images": 8, "seed": 3, "patience": 2, "min_delta": 1e-3,
    }  # fmt: skip
    assert json.loads((tmp_path / judges.SUMMARY).read_text())["validation"]["images"] == 8


def test_validation_nll_is_the_judges_loss_on_held_out_images():
    split = level_side_data(6).train
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.9, 0.1, 0.0]]).expand(6, 2, 3)
    expected = -(probs[torch.arange(6)[:, None], torch.arange(2), split.labels.long()]).log().mean()
    assert judges.validation_nll(probs, split) == pytest.approx(float(expected))


def test_training_stops_on_a_plateau_and_keeps_the_best_weights(tmp_path, monkeypatch):
    # improves in epoch 2, then not by --min-delta for --patience 2 epochs: stops after epoch 4
    scripted_validation(monkeypatch, [1.0, 0.5, 0.4995, 0.8, 0.1, 0.1])
    summary = train_classifier(ClassifierConfig(**QUICK, epochs=10, patience=2), tmp_path / "stopped", progress=False)
    assert (summary["epochs"], summary["best_epoch"], summary["stopped_early"], summary["max_epochs"]) == (4, 2, True, 10)
    assert [h["validation_nll"] for h in summary["history"]] == [1.0, 0.5, 0.4995, 0.8]
    # the weights kept are those after epoch 2: what training for 2 epochs leaves
    scripted_validation(monkeypatch, [1.0, 0.5])
    two = train_classifier(ClassifierConfig(**QUICK, epochs=2, patience=2), tmp_path / "two", progress=False)
    assert (two["epochs"], two["best_epoch"], two["stopped_early"]) == (2, 2, False)
    assert same_weights(weights(tmp_path / "stopped"), weights(tmp_path / "two"))
    assert summary["test_accuracy"] == two["test_accuracy"]
    load_classifier(tmp_path / "stopped", "cpu")


def test_a_real_plateau_stops_before_the_most_epochs(tmp_path):
    """Without scripted losses: the easy fake data are learnt in a few epochs and the validation
    NLL stops falling long before 40 epochs."""
    summary = train_classifier(ClassifierConfig(**QUICK, epochs=40, patience=2, min_delta=0.01), tmp_path, progress=False)
    assert summary["stopped_early"] and summary["epochs"] < 40
    assert summary["epochs"] == summary["best_epoch"] + 2
    best = summary["validation"]["best_nll"]
    assert best == summary["history"][summary["best_epoch"] - 1]["validation_nll"]
    assert all(h["validation_nll"] >= best - 0.01 for h in summary["history"][summary["best_epoch"] :])  # no improvement by --min-delta since


def test_resume_ends_where_an_uninterrupted_training_ends(tmp_path, monkeypatch):
    options = dict(QUICK, epochs=3, patience=5, gp_steps=10, gp_inducing=8, gp_points=40)
    whole = train_classifier(ClassifierConfig(**options), tmp_path / "whole", progress=False)

    saved = judges.save_checkpoint
    calls = []

    def killed_after_two(state, path, hint="on that file system"):
        digest = saved(state, path, hint)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the checkpoint of epoch 2 is written, training is killed
        return digest

    monkeypatch.setattr(judges, "save_checkpoint", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifierConfig(**options), tmp_path / "killed", progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(judges, "load_dataset", lambda name, options: level_side_data())
    assert not (tmp_path / "killed" / judges.MANIFEST).exists()
    resumed = train_classifier(ClassifierConfig(**{**QUICK, "epochs": 3}), tmp_path / "killed", progress=False, resume=True)
    assert resumed == whole  # history, best epoch, accuracies, the GP head's numbers
    assert same_weights(weights(tmp_path / "whole"), weights(tmp_path / "killed"))
    heads = [torch.load(io.BytesIO((tmp_path / d / judges.UNCERTAINTY).read_bytes()), weights_only=True)["heads"] for d in ("whole", "killed")]
    assert all(same_weights(heads[0][label], heads[1][label]) for label in heads[0])


def test_resume_goes_on_to_more_epochs_and_refuses_what_cannot_change(tmp_path):
    out = tmp_path / "judge"
    with pytest.raises(ValueError, match="holds no checkpoint.pt of an earlier train-classifier"):
        train_classifier(ClassifierConfig(**QUICK, epochs=1), out, progress=False, resume=True)
    train_classifier(ClassifierConfig(**QUICK, epochs=1, patience=5), out, progress=False)
    with pytest.raises(ValueError, match="--lr cannot change when resuming") as error:
        train_classifier(ClassifierConfig(**{**QUICK, "lr": 0.1}, epochs=2), out, progress=False, resume=True, explicit=["lr"])
    assert "\n" not in str(error.value)
    summary = train_classifier(ClassifierConfig(**{**QUICK, "lr": 0.1}, epochs=2), out, progress=False, resume=True)
    assert summary["epochs"] == 2 and len(summary["history"]) == 2
    assert json.loads((out / judges.CONFIG).read_text())["lr"] == 3e-3  # the checkpoint's config wins


def test_a_judge_directory_from_before_these_options_still_loads(tmp_path):
    from pyro_ccvae.analysis.judge_uncertainty import load_uncertainty

    train_classifier(ClassifierConfig(**QUICK, epochs=1), tmp_path, progress=False)
    new_keys = {"patience", "min_delta", "validation_fraction", "gp_steps", "gp_inducing", "gp_points", "judge_format"}
    config = {k: v for k, v in json.loads((tmp_path / judges.CONFIG).read_text()).items() if k not in new_keys}
    (tmp_path / judges.CONFIG).write_text(json.dumps(config))
    summary = json.loads((tmp_path / judges.SUMMARY).read_text())
    (tmp_path / judges.SUMMARY).write_text(json.dumps({k: summary[k] for k in ("epochs", "test_accuracy", "test_accuracy_mean")}))
    (tmp_path / judges.MANIFEST).unlink()  # a judge from before manifests
    for name in (judges.CHECKPOINT, "checkpoint.prev.pt", "checkpoint.pt.sha256.json"):
        (tmp_path / name).unlink(missing_ok=True)
    net = load_classifier(tmp_path, torch.device("cpu"))
    assert ClassifierConfig.load(tmp_path / judges.CONFIG).patience == 2
    assert load_uncertainty(tmp_path, net, torch.device("cpu")) is None


def test_train_classifier_resume_through_the_command_line(tmp_path):
    out = tmp_path / "judge"
    args = ["train-classifier", "--out", str(out), "--dataset", "shapes", "--num-train", "48", "--device", "cpu", "--no-progress", "--gp-steps", "0"]
    first = CliRunner().invoke(main, [*args, "--epochs", "1", "--patience", "3"])
    assert first.exit_code == 0, first.output
    refused = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume", "--patience", "4"])
    assert refused.exit_code == 1 and "--patience cannot change when resuming" in refused.output
    again = CliRunner().invoke(main, [*args, "--epochs", "2", "--resume"])
    assert again.exit_code == 0, again.output
    summary = json.loads((out / judges.SUMMARY).read_text())
    assert summary["max_epochs"] == 2 and len(summary["history"]) == summary["epochs"] <= 2
