"""Training: resumption is exact, interrupts and NaNs keep a good checkpoint, any supervision rate."""
import json

import signal

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import CHECKPOINT, METRICS
from pyro_ccvae.training import Trainer, TrainingError, TrainingInterrupted, choose_labelled, train


def tiny(**overrides):
    options = dict(num_train=96, epochs=2, batch_size=32, k_samples=5, z_style_dim=3, device="cpu")
    options.update(overrides)
    return TrainConfig.from_options(**options)


def weights(run_dir):
    state = torch.load(run_dir / CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_run_directory_contents(tmp_path):
    summary = train(tiny(sup_frac=0.5), tmp_path, progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optimisation"]["sup_frac"] == 0.5 and config["data"]["info"]["label_names"][0] == "square"
    labelled = json.loads((tmp_path / "labelled.json").read_text())
    assert len(labelled) == 48 and labelled == sorted(set(labelled))
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(0 <= line["valid_accuracy_mean"] <= 1 and line["images_per_s"] > 0 for line in lines)
    assert set(summary["test_accuracy"]) == set(config["data"]["info"]["label_names"])
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert len(splits["train"]) == 96


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    train(tiny(epochs=3), tmp_path / "whole", progress=False)
    train(tiny(epochs=1), tmp_path / "split", progress=False)
    train(tiny(epochs=3), tmp_path / "split", resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "split"))
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "split" / METRICS).read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_interrupt_mid_epoch_saves_and_resumes_exactly(tmp_path, monkeypatch):
    train(tiny(), tmp_path / "whole", progress=False)

    trainer = Trainer(tiny(), tmp_path / "cut", progress=False)
    step, calls = trainer.svi.step, []

    def step_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 4:  # in epoch 2, after its first batch
            trainer.stops.signal = signal.SIGINT
        return step(*args)

    monkeypatch.setattr(trainer.svi, "step", step_then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        trainer.fit()
    position = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["position"]
    assert (position["epoch"], position["batch"]) == (1, 1)

    train(tiny(), tmp_path / "cut", resume=True, progress=False)
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "cut"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny(epochs=3), tmp_path, progress=False)
    step, calls = trainer.svi.step, []

    def step_until_nan(*args):
        calls.append(1)
        return float("nan") if len(calls) > 3 else step(*args)

    monkeypatch.setattr(trainer.svi, "step", step_until_nan)
    with pytest.raises(TrainingError, match="NaN|nan") as info:
        trainer.fit()
    assert "\n" not in str(info.value)
    position = torch.load(tmp_path / CHECKPOINT, weights_only=True)["position"]
    assert (position["epoch"], position["batch"]) == (1, 0)


@pytest.mark.parametrize("sup_frac", [0.0, 1.0])
def test_both_ends_of_supervision(tmp_path, sup_frac):
    summary = train(tiny(epochs=1, sup_frac=sup_frac), tmp_path, progress=False)
    assert summary["labelled"] == int(sup_frac * 96)
    prior = torch.load(tmp_path / CHECKPOINT, weights_only=True)["model"]["label_probs"]
    if sup_frac == 0:
        assert torch.equal(prior, torch.full_like(prior, 0.5))  # no labelled point: uniform prior
    else:
        assert not torch.equal(prior, torch.full_like(prior, 0.5))


def test_label_prior_is_the_labelled_frequency(tmp_path):
    trainer = Trainer(tiny(sup_frac=0.5), tmp_path, progress=False)
    labels = trainer.data.train.labels[trainer.labelled]
    # A frequency of 0.5 stays 0.5 (no sigmoid of frequencies, as in the authors' code).
    assert torch.allclose(trainer.model.label_probs[:, 1], labels.mean(0).clamp(1e-3, 1 - 1e-3))
    assert torch.allclose(trainer.model.label_probs.sum(-1), torch.ones(labels.shape[1]))


def test_labelled_subset_is_fixed_by_the_seed():
    assert torch.equal(choose_labelled(100, 0.3, seed=1), choose_labelled(100, 0.3, seed=1))
    assert not torch.equal(choose_labelled(100, 0.3, seed=1), choose_labelled(100, 0.3, seed=2))
    assert len(choose_labelled(100, 0.3, seed=1)) == 30


def test_refuses_to_overwrite_or_resume_nothing(tmp_path):
    train(tiny(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(tiny(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="cannot resume"):
        Trainer(tiny(epochs=1), tmp_path / "empty", resume=True, progress=False)
