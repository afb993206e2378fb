"""Tiny copies of the official on-disk layouts of CheXpert, CelebA and (Fashion-)MNIST.

Same file names, headers, value conventions and image sizes as the real data sets; only a few
images. Every image is one uniform grey level (CelebA: one colour), unique to it, so a test can
tell which source image ended up in which row.
"""
from __future__ import annotations

import csv
import gzip
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

@pytest.fixture
def layouts():
    """This module, for the builders and helpers below (conftest modules are not importable by name)."""
    return sys.modules[__name__]


CHEXPERT_LABELS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]  # fmt: skip
CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + CHEXPERT_LABELS
CHEXPERT_SIZE = (320, 390)  # width, height of CheXpert-v1.0-small's images

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_SIZE = (178, 218)


def one_line(error) -> str:
    """The message of a DataError, checked to be one line."""
    message = str(error.value if hasattr(error, "value") else error)
    assert "\n" not in message and message.strip() == message and message
    return message


def write_jpeg(path: Path, size, mode: str, colour) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, quality=95)


# ---------------------------------------------------------------- CheXpert


@dataclass
class XRay:
    """One row of a CheXpert CSV."""

    patient: int
    study: int = 1
    view: int = 1
    frontal: bool = True
    labels: dict = field(default_factory=dict)  # label name -> cell text ("1.0", "0.0", "-1.0", "")
    grey: int = 0

    def path(self, folder: str, split: str) -> str:
        kind = "frontal" if self.frontal else "lateral"
        return f"{folder}/{split}/patient{self.patient:05d}/study{self.study}/view{self.view}_{kind}.jpg"


@dataclass
class CheXpertCopy:
    parent: Path
    root: Path
    train: list
    valid: list

    def path(self, row: XRay) -> str:
        return row.path(self.root.name, "train" if row in self.train else "valid")


def write_chexpert(
    parent: Path,
    train: list,
    valid: list,
    folder: str = "CheXpert-v1.0-small",
    header: Optional[list] = None,
) -> CheXpertCopy:
    root = parent / folder
    root.mkdir(parents=True, exist_ok=True)
    header = header or CHEXPERT_HEADER
    for split, rows in (("train", train), ("valid", valid)):
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                cells = {
                    "Path": row.path(folder, split),
                    "Sex": "Female",
                    "Age": "68",
                    "Frontal/Lateral": "Frontal" if row.frontal else "Lateral",
                    "AP/PA": "AP" if row.frontal else "",
                }
                cells.update(row.labels)
                writer.writerow([cells.get(column, "") for column in header])
                write_jpeg(parent / row.path(folder, split), CHEXPERT_SIZE, "L", row.grey)
    return CheXpertCopy(parent, root, train, valid)


def chexpert_rows():
    """Ten training patients (some with a lateral view or a second study), two test patients."""
    values = ["1.0", "0.0", "", "-1.0"]
    train, valid, grey = [], [], 10
    for patient in range(1, 11):
        studies = [(1, 1, True)]  # (study, view, frontal)
        studies += [(1, 2, False)] if patient % 2 == 0 else []
        studies += [(2, 1, True)] if patient % 3 == 0 else []
        for study, view, frontal in studies:
            labels = {name: values[(patient + j + study) % 4] for j, name in enumerate(CHEXPERT_LABELS[1:])}
            labels["No Finding"] = "1.0" if patient % 4 == 0 else ""
            train.append(XRay(patient, study, view, frontal, labels, grey))
            grey += 9
    for patient, view, frontal in ((64541, 1, True), (64541, 2, False), (64542, 1, True)):
        labels = {name: "1.0" if view == 1 else "0.0" for name in CHEXPERT_LABELS[1:]}
        valid.append(XRay(patient, 1, view, frontal, labels, grey))
        grey += 9
    return train, valid


@pytest.fixture
def chexpert(tmp_path) -> CheXpertCopy:
    """A CheXpert-v1.0-small copy under ``tmp_path``."""
    train, valid = chexpert_rows()
    return write_chexpert(tmp_path, train, valid)


# ---------------------------------------------------------------- CelebA


@dataclass
class CelebACopy:
    root: Path
    names: list
    attributes: np.ndarray  # [N, 40] of -1/1
    partition: list
    colours: list


def write_celeba(parent: Path, partition=(0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2), seed: int = 0) -> CelebACopy:
    """``parent/celeba/`` as torchvision lays it out: attribute and partition files, 178x218 JPEGs."""
    root = parent / "celeba"
    rng = np.random.default_rng(seed)
    n = len(partition)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attributes = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    colours = [(20 + 20 * i, 200 - 15 * i, 60 + 10 * i) for i in range(n)]
    root.mkdir(parents=True)
    # the official file: right-aligned values, so two spaces before a 1 and one before a -1
    lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [name + "".join(f"{v:>3d}" for v in row) for name, row in zip(names, attributes)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, p in zip(names, partition)))
    for name, colour in zip(names, colours):
        write_jpeg(root / "img_align_celeba" / name, CELEBA_SIZE, "RGB", colour)
    return CelebACopy(root, names, attributes, list(partition), colours)


@pytest.fixture
def celeba(tmp_path) -> CelebACopy:
    return write_celeba(tmp_path)


# ---------------------------------------------------------------- MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@dataclass
class MnistCopy:
    root: Path
    raw: Path
    train_labels: np.ndarray
    test_labels: np.ndarray


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = False, n_train: int = 40, n_test: int = 10) -> MnistCopy:
    """``root/<folder>/raw/`` with the four IDX files; image ``i`` is uniformly ``3 * (i % 80)``, class ``i % 10``."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.repeat((3 * (np.arange(n) % 80)).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
        data[f"{prefix}-images-idx3-ubyte"] = idx_bytes(images)
        data[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(labels)
    for name, content in data.items():
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (raw / name).write_bytes(content)
    return MnistCopy(root, raw, np.arange(n_train) % 10, np.arange(n_test) % 10)


@pytest.fixture
def mnist(tmp_path) -> MnistCopy:
    return write_mnist(tmp_path)
