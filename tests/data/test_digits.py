"""The built-in ``digits`` data set (scikit-learn's 8x8 digits, upscaled; no download)."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_digits

from pyro_ccvae.data import DataError, DataOptions, default_image_size, load_dataset
from pyro_ccvae_cli.main import main

SOURCE = load_digits()


def index_of(split) -> list[int]:
    return [int(i.split("/")[1]) for i in split.ids]


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_labels_and_pixels(size):
    splits = load_dataset("digits", DataOptions(image_size=size, seed=0))
    assert splits.label_names == tuple("0123456789") and splits.channels == 1 and splits.image_size == size
    assert len(splits.train) + len(splits.valid) + len(splits.test) == len(SOURCE.target)
    for split in (splits.train, splits.valid, splits.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, size, size)
        assert split.mask.all() and torch.equal(split.labels.sum(1), torch.ones(len(split)))
        # the one label on is sklearn's target of that image
        assert split.labels.argmax(1).tolist() == SOURCE.target[index_of(split)].tolist()
        # the upscaled image is the 8x8 original, blurred: its 8x8 block means follow the original
        block = split.images.float().reshape(len(split), 8, size // 8, 8, size // 8).mean((2, 4))
        original = torch.from_numpy(SOURCE.images[index_of(split)]).float()
        assert np.corrcoef(block.flatten().numpy(), original.flatten().numpy())[0, 1] > 0.95
    assert int(splits.train.images.max()) == 255 and int(splits.train.images.min()) == 0
    assert default_image_size("digits") == 32


def test_at_8_pixels_the_images_are_sklearn_s_scaled_to_255():
    splits = load_dataset("digits", DataOptions(image_size=8))
    expected = np.round(SOURCE.images[index_of(splits.test)] * 255 / 16)
    assert np.array_equal(splits.test.images[:, 0].numpy(), expected)


def test_splits_are_disjoint_stratified_and_seeded():
    splits = load_dataset("digits", DataOptions(seed=0))
    ids = [set(s.ids) for s in (splits.train, splits.valid, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for split, fraction in ((splits.train, 0.70), (splits.valid, 0.15), (splits.test, 0.15)):
        counts = split.labels.sum(0).numpy()
        expected = fraction * np.bincount(SOURCE.target)
        assert np.all(np.abs(counts - expected) <= 1)  # every class in every split, in proportion
    again = load_dataset("digits", DataOptions(seed=0))
    other = load_dataset("digits", DataOptions(seed=1))
    assert again.test.ids == splits.test.ids != other.test.ids
    assert torch.equal(again.train.images, splits.train.images)


def test_label_subset_and_num_train():
    splits = load_dataset("digits", DataOptions(labels=("7", "3"), num_train=100, seed=2))
    assert splits.label_names == ("7", "3") and len(splits.train) == 100
    target = SOURCE.target[index_of(splits.train)]
    assert splits.train.labels[:, 0].tolist() == (target == 7).astype(float).tolist()
    assert splits.train.labels[:, 1].tolist() == (target == 3).astype(float).tolist()
    full = load_dataset("digits", DataOptions(seed=2))
    assert set(splits.train.ids) <= set(full.train.ids) and splits.test.ids == full.test.ids
    with pytest.raises(DataError, match="--num-train between 1 and"):
        load_dataset("digits", DataOptions(num_train=5000))
    with pytest.raises(DataError, match="no label 'eleven'"):
        load_dataset("digits", DataOptions(labels=("eleven",)))


def test_train_on_digits_end_to_end(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--out", out, "--epochs", 1, "--num-train", 64, "--batch-size", 32,
            "--k-samples", 4, "--z-style-dim", 3, "--device", "cpu", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "config.json").read_text())["data"]["info"]
    assert info == {"label_names": list("0123456789"), "num_classes": [2] * 10, "channels": 1, "image_size": 32, "num_train": 64}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test_accuracy"]) == set("0123456789")
