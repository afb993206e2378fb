import pytest
import torch

from pyro_ccvae.data import DataError, DataOptions, load_dataset
from pyro_ccvae.data.mnist import FASHION_CLASSES


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.mark.parametrize("gz", [False, True])
def test_shapes_one_hot_labels_and_splits(tmp_path, layouts, gz):
    copy = layouts.write_mnist(tmp_path, gz=gz)
    splits = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=3))
    assert splits.label_names == tuple("0123456789") and splits.channels == 1 and splits.image_size == 32
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (30, 10, 10)
    for s in (splits.train, splits.valid, splits.test):
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 32, 32)
        assert s.labels.dtype == torch.float32 and s.mask.dtype == torch.bool and s.mask.all()
        assert torch.equal(s.labels.sum(1), torch.ones(len(s)))  # exactly one on
    assert splits.test.ids == [f"t10k/{i}" for i in range(10)]
    assert splits.test.labels.argmax(1).tolist() == copy.test_labels.tolist()
    # valid: a seeded 25% of the official train set, disjoint from train; each image is its id's
    train_ids, valid_ids = set(splits.train.ids), set(splits.valid.ids)
    assert not train_ids & valid_ids and train_ids | valid_ids == {f"train/{i}" for i in range(40)}
    for s in (splits.train, splits.valid):
        index = [int(i.split("/")[1]) for i in s.ids]
        assert s.labels.argmax(1).tolist() == [copy.train_labels[i] for i in index]
        assert s.images[:, 0, 5, 5].tolist() == [3 * (i % 80) for i in index]
    again = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=3))
    other = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=4))
    assert again.valid.ids == splits.valid.ids != other.valid.ids


@pytest.mark.parametrize("where", ["root", "folder", "raw"])
def test_data_dir_is_root_folder_or_raw(tmp_path, layouts, where):
    copy = layouts.write_mnist(tmp_path, folder="FashionMNIST", gz=True)
    data_dir = {"root": tmp_path, "folder": tmp_path / "FashionMNIST", "raw": copy.raw}[where]
    splits = load_dataset("fashion-mnist", DataOptions(data_dir=data_dir, image_size=28))
    assert splits.label_names == FASHION_CLASSES and splits.label_names[0] == "T-shirt/top"
    assert splits.image_size == 28 and len(splits.test) == 10
    assert splits.source["root"] == str(copy.raw)


def test_fashion_is_not_mnist(tmp_path, layouts):
    layouts.write_mnist(tmp_path, folder="FashionMNIST")
    message = one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    assert "MNIST/raw/" in message and "train-images-idx3-ubyte" in message and "download" in message


def test_missing_directory_and_file(tmp_path, mnist):
    message = one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path / "none")))
    assert "none" in message and "--data-dir" in message
    (mnist.raw / "t10k-labels-idx1-ubyte").unlink()
    message = one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    assert "t10k-labels-idx1-ubyte (or .gz) is missing" in message


def test_corrupt_idx_files(tmp_path, mnist):
    path = mnist.raw / "train-labels-idx1-ubyte"
    data = path.read_bytes()
    path.write_bytes(b"\x00\x00\x09\x01" + data[4:])
    message = one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    assert "train-labels-idx1-ubyte is not an IDX file" in message
    path.write_bytes(data[:-3])
    assert "truncated" in one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    path.write_bytes(data[:-1] + b"\x0c")
    assert "class 12" in one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    path.write_bytes(data)
    images = mnist.raw / "train-images-idx3-ubyte"
    images.rename(mnist.raw / "train-images-idx3-ubyte.gz")  # not really gzip
    assert "cannot read" in one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
