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
    # by default one 10-class label, whose class index is sklearn's target
    assert splits.label_names == ("digit",) and splits.num_classes == (10,)
    assert splits.channels == 1 and splits.image_size == size
    assert splits.source["classes"] == {"digit": list("0123456789")}
    assert len(splits.train) + len(splits.valid) + len(splits.test) == len(SOURCE.target)
    for split in (splits.train, splits.valid, splits.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, size, size)
        assert split.labels.dtype == torch.float32 and split.labels.shape == (len(split), 1) and split.mask.all()
        assert split.labels[:, 0].tolist() == SOURCE.target[index_of(split)].astype(float).tolist()
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
        counts = np.bincount(split.labels[:, 0].long().numpy(), minlength=10)
        expected = fraction * np.bincount(SOURCE.target)
        assert np.all(np.abs(counts - expected) <= 1)  # every class in every split, in proportion
    again = load_dataset("digits", DataOptions(seed=0))
    other = load_dataset("digits", DataOptions(seed=1))
    assert again.test.ids == splits.test.ids != other.test.ids
    assert torch.equal(again.train.images, splits.train.images)


def test_one_vs_rest_labels_and_num_train():
    splits = load_dataset("digits", DataOptions(labels=("7", "3"), num_train=100, seed=2))
    assert splits.label_names == ("7", "3") and splits.num_classes == (2, 2) and len(splits.train) == 100
    assert "classes" not in splits.source
    target = SOURCE.target[index_of(splits.train)]
    assert splits.train.labels[:, 0].tolist() == (target == 7).astype(float).tolist()
    assert splits.train.labels[:, 1].tolist() == (target == 3).astype(float).tolist()
    full = load_dataset("digits", DataOptions(seed=2))
    assert set(splits.train.ids) <= set(full.train.ids) and splits.test.ids == full.test.ids
    with pytest.raises(DataError, match="--num-train between 1 and"):
        load_dataset("digits", DataOptions(num_train=5000))


def test_all_ten_one_vs_rest_labels_are_the_one_hot_of_the_default():
    binary = load_dataset("digits", DataOptions(labels=tuple("0123456789"), seed=1))
    default = load_dataset("digits", DataOptions(seed=1))
    assert binary.label_names == tuple("0123456789") and binary.num_classes == (2,) * 10
    for one_hot, index in ((binary.train, default.train), (binary.valid, default.valid), (binary.test, default.test)):
        assert one_hot.ids == index.ids and torch.equal(one_hot.images, index.images)
        assert torch.equal(one_hot.labels, torch.nn.functional.one_hot(index.labels[:, 0].long(), 10).float())
    # the categorical label may be asked for by name
    assert load_dataset("digits", DataOptions(labels=("Digit",))).label_names == ("digit",)


@pytest.mark.parametrize(
    "labels, expected",
    [
        (("eleven",), "digits has no label 'eleven'; pass --labels digit (the default: one 10-class label) or classes"),
        (("digit", "3"), "--labels names both digit and some of its classes (3); pass digit alone"),
        (("3", "3"), "label '3' is asked for twice"),
    ],
)
def test_bad_labels_name_the_choices(labels, expected):
    with pytest.raises(DataError) as error:
        load_dataset("digits", DataOptions(labels=labels))
    message = str(error.value)
    assert "\n" not in message and message.startswith(expected)
    if "eleven" in labels:
        assert message.endswith("(e.g. --labels 3,7), from: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9")


@pytest.mark.parametrize(
    "labels, names, num_classes",
    [(None, ["digit"], [10]), ("0,1,2,3,4,5,6,7,8,9", list("0123456789"), [2] * 10)],
    ids=["categorical", "one-vs-rest"],
)
def test_train_on_digits_end_to_end(tmp_path, labels, names, num_classes):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--out", out, "--epochs", 1, "--num-train", 64, "--batch-size", 32,
            "--k-samples", 4, "--z-style-dim", 3, "--device", "cpu", "--no-progress"]  # fmt: skip
    args += ["--labels", labels] if labels else []
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "config.json").read_text())["data"]["info"]
    assert info == {"label_names": names, "num_classes": num_classes, "channels": 1, "image_size": 32, "num_train": 64}
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test_accuracy"]) == set(names)
