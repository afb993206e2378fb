import pytest
import torch

from pyro_ccvae.data import DataError, DataOptions, load_dataset
from pyro_ccvae.data.mnist import FASHION_CLASSES


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.mark.parametrize("gz", [False, True])
def test_shapes_categorical_labels_and_splits(tmp_path, layouts, gz):
    copy = layouts.write_mnist(tmp_path, gz=gz)
    splits = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=3))
    # by default one 10-class label whose class index is the IDX label
    assert splits.label_names == ("digit",) and splits.num_classes == (10,)
    assert splits.source["classes"] == {"digit": list("0123456789")}
    assert splits.channels == 1 and splits.image_size == 32
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (30, 10, 10)
    for s in (splits.train, splits.valid, splits.test):
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 32, 32)
        assert s.labels.dtype == torch.float32 and s.labels.shape == (len(s), 1)
        assert s.mask.dtype == torch.bool and s.mask.all()
    assert splits.test.ids == [f"t10k/{i}" for i in range(10)]
    assert splits.test.labels[:, 0].tolist() == copy.test_labels.tolist()
    # valid: a seeded 25% of the official train set, disjoint from train; each image is its id's
    train_ids, valid_ids = set(splits.train.ids), set(splits.valid.ids)
    assert not train_ids & valid_ids and train_ids | valid_ids == {f"train/{i}" for i in range(40)}
    for s in (splits.train, splits.valid):
        index = [int(i.split("/")[1]) for i in s.ids]
        assert s.labels[:, 0].tolist() == [copy.train_labels[i] for i in index]
        assert s.images[:, 0, 5, 5].tolist() == [3 * (i % 80) for i in index]
    again = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=3))
    other = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=32, valid_fraction=0.25, seed=4))
    assert again.valid.ids == splits.valid.ids != other.valid.ids


@pytest.mark.parametrize("where", ["root", "folder", "raw"])
def test_data_dir_is_root_folder_or_raw(tmp_path, layouts, where):
    copy = layouts.write_mnist(tmp_path, folder="FashionMNIST", gz=True)
    data_dir = {"root": tmp_path, "folder": tmp_path / "FashionMNIST", "raw": copy.raw}[where]
    splits = load_dataset("fashion-mnist", DataOptions(data_dir=data_dir, image_size=28))
    assert splits.label_names == ("article",) and splits.num_classes == (10,)
    assert splits.source["classes"] == {"article": list(FASHION_CLASSES)} and FASHION_CLASSES[0] == "T-shirt/top"
    assert splits.test.labels[:, 0].tolist() == copy.test_labels.tolist()
    assert splits.image_size == 28 and len(splits.test) == 10
    assert splits.source["root"] == str(copy.raw)


def test_one_vs_rest_labels(tmp_path, layouts):
    copy = layouts.write_mnist(tmp_path)
    splits = load_dataset("mnist", DataOptions(data_dir=tmp_path, labels=("3", "7"), valid_fraction=0.0))
    assert splits.label_names == ("3", "7") and splits.num_classes == (2, 2) and "classes" not in splits.source
    target = torch.from_numpy(copy.train_labels)
    assert torch.equal(splits.train.labels, torch.stack([target == 3, target == 7], 1).float())
    # every class named: the one-hot of the categorical label (the ten binary labels of earlier versions)
    binary = load_dataset("mnist", DataOptions(data_dir=tmp_path, labels=tuple("0123456789")))
    default = load_dataset("mnist", DataOptions(data_dir=tmp_path))
    assert binary.num_classes == (2,) * 10 and binary.test.ids == default.test.ids
    assert torch.equal(binary.test.labels, torch.nn.functional.one_hot(default.test.labels[:, 0].long(), 10).float())


def test_fashion_one_vs_rest_by_class_name(tmp_path, layouts):
    copy = layouts.write_mnist(tmp_path, folder="FashionMNIST")
    splits = load_dataset("fashion-mnist", DataOptions(data_dir=tmp_path, labels=("ankle_boot", "t-shirt/top")))
    assert splits.label_names == ("Ankle boot", "T-shirt/top") and splits.num_classes == (2, 2)
    assert splits.test.labels.tolist() == [[float(c == 9), float(c == 0)] for c in copy.test_labels]


@pytest.mark.parametrize(
    "dataset, folder, labels, expected",
    [
        ("mnist", "MNIST", ("ten",), "MNIST has no label 'ten'; pass --labels digit (the default: one 10-class label) "
         "or classes, each then a one-vs-rest binary label (e.g. --labels 3,7), from: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),
        ("fashion-mnist", "FashionMNIST", ("Hat",), "Fashion-MNIST has no label 'Hat'; pass --labels article (the default: "
         "one 10-class label) or classes, each then a one-vs-rest binary label (e.g. --labels Dress,Sneaker), from: T-shirt/top, "),
        ("mnist", "MNIST", ("7", "digit"), "--labels names both digit and some of its classes (7); pass digit alone "
         "(one 10-class label) or only classes (one-vs-rest binary labels)"),
    ],
)
def test_bad_labels_name_the_choices(tmp_path, layouts, dataset, folder, labels, expected):
    layouts.write_mnist(tmp_path, folder=folder)
    message = one_line(pytest.raises(DataError, load_dataset, dataset, DataOptions(data_dir=tmp_path, labels=labels)))
    assert message.startswith(expected)


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
    path.write_bytes(data + b"\x00" * 5)  # extra bytes are not a truncation
    message = one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    assert "has 5 extra bytes" in message and "truncated" not in message and "re-download" in message
    path.write_bytes(data[:-1] + b"\x0c")
    assert "class 12" in one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
    path.write_bytes(data)
    images = mnist.raw / "train-images-idx3-ubyte"
    images.rename(mnist.raw / "train-images-idx3-ubyte.gz")  # not really gzip
    assert "cannot read" in one_line(pytest.raises(DataError, load_dataset, "mnist", DataOptions(data_dir=tmp_path)))
