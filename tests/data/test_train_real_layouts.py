"""`ccvae-pyro train` end to end on tiny copies of the official layouts."""
import json

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.run_directory import CHECKPOINT
from pyro_ccvae.training import Trainer
from pyro_ccvae.config import TrainConfig
from pyro_ccvae_cli.main import main

TINY = ["--epochs", "1", "--batch-size", "4", "--k-samples", "4", "--z-style-dim", "3", "--no-progress"]


@pytest.mark.parametrize(
    "name, data_dir, channels, num_classes, labels",
    [
        ("chexpert", lambda copy: copy.root, 1, [2] * 5, []),
        ("celeba", lambda copy: copy.root.parent, 3, [2] * 18, []),
        # a categorical label and a binary one, from one command-line string
        ("celeba", lambda copy: copy.root, 3, [3, 2], ["--labels", "hair=Black_Hair|Blond_Hair|Brown_Hair,Smiling"]),
        ("mnist", lambda copy: copy.root, 1, [10], []),  # one 10-class label
    ],
)
def test_train_on_a_tiny_official_layout(request, tmp_path, name, data_dir, channels, num_classes, labels):
    copy = request.getfixturevalue(name)
    out = tmp_path / "run"
    args = ["train", "--dataset", name, "--data-dir", str(data_dir(copy)), "--out", str(out), *labels, *TINY]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "config.json").read_text())["data"]["info"]
    assert (info["channels"], info["num_classes"]) == (channels, num_classes)
    assert len(info["label_names"]) == len(num_classes)
    if labels:
        assert info["label_names"] == ["hair", "Smiling"]
    assert info["image_size"] == (32 if name == "mnist" else 64)
    assert (out / CHECKPOINT).exists() and (out / "metrics.jsonl").read_text().count("\n") == 1
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["train"]) == info["num_train"]


def test_chexpert_uncertain_labels_train_as_unobserved(chexpert, tmp_path):
    """The default --uncertain ignore reaches the ELBO as a partial per-label mask."""
    config = TrainConfig.from_options(dataset="chexpert", data_dir=str(chexpert.root), epochs=1, batch_size=4, k_samples=4, z_style_dim=3)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    mask = trainer.batches.mask
    assert mask.any() and not mask.all()
    partly_seen = mask.any(1) & ~mask.all(1)
    assert partly_seen.any(), "some images must have seen and unseen labels at once"
    x, y, m = trainer.batches.batch(torch.nonzero(partly_seen).flatten()[:2])
    assert torch.isfinite(torch.tensor(trainer.svi.evaluate_loss(x, y, m)))
