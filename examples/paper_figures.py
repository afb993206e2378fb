"""The published figures of Joy, Schmon, Torr, Siddharth and Rainforth, *Capturing Label
Characteristics in VAEs* (ICLR 2021), Tables 1, 2, 4, 5, 6 and 7, for printing beside ours.

Cite the paper, not this file, when quoting them. Every figure is indexed as
``PAPER[table][paper_dataset][model][rate]`` with the supervision rates of :data:`RATES`; Table 7
holds ``(accuracy, mutual information)`` pairs. :data:`STAND_INS` says which of the paper's data
sets a table of ours is read beside, and :data:`DATA_DIFFERENCES` how they differ.
"""
from __future__ import annotations

from typing import Optional, Sequence

SOURCE = "Joy et al., Capturing Label Characteristics in VAEs (ICLR 2021)"
#: the supervision rates (fractions of labelled training points) of every table.
RATES = (0.004, 0.06, 0.2, 1.0)


def _by_rate(*values) -> dict:
    return dict(zip(RATES, values))


PAPER = {
    "table1": {  # classification accuracy, mean over labels
        "CelebA": {
            "ccvae": _by_rate(0.832, 0.862, 0.878, 0.900), "m2": _by_rate(0.794, 0.862, 0.877, 0.893),
            "diva": _by_rate(0.807, 0.860, 0.867, 0.877), "mvae": _by_rate(0.793, 0.828, 0.847, 0.864),
        },
        "CheXpert": {
            "ccvae": _by_rate(0.809, 0.792, 0.794, 0.826), "m2": _by_rate(0.799, 0.779, 0.777, 0.774),
            "diva": _by_rate(0.747, 0.786, 0.781, 0.775), "mvae": _by_rate(0.759, 0.787, 0.767, 0.715),
        },
    },
    "table2": {  # characteristic swap: mean |change| of a pre-trained classifier's log-probability
        "CelebA": {
            "ccvae": _by_rate(1.177, 0.890, 0.790, 0.758), "m2": _by_rate(2.118, 1.194, 1.179, 1.143),
            "diva": _by_rate(1.489, 0.976, 0.996, 0.941), "mvae": _by_rate(2.114, 2.113, 2.088, 2.121),
        },
        "CheXpert": {
            "ccvae": _by_rate(1.142, 1.221, 1.078, 1.084), "m2": _by_rate(1.624, 1.43, 1.41, 1.415),
            "diva": _by_rate(1.36, 1.25, 1.199, 1.259), "mvae": _by_rate(1.618, 1.624, 1.618, 1.601),
        },
    },
    "table4": {  # FID on CelebA (appendix D.3)
        "CelebA": {
            "ccvae": _by_rate(127.956, 121.84, 121.751, 120.457), "m2": _by_rate(127.719, 122.521, 120.406, 119.228),
            "diva": _by_rate(192.448, 230.522, 218.774, 201.484), "mvae": _by_rate(118.308, 115.947, 128.867, 137.461),
        },
    },
    "table5": {  # conditional-generation accuracy of a pre-trained classifier (appendix D.4)
        "CelebA": {
            "ccvae": _by_rate(0.513, 0.605, 0.612, 0.596), "m2": _by_rate(0.499, 0.61, 0.612, 0.611),
            "diva": _by_rate(0.501, 0.501, 0.501, 0.501), "mvae": _by_rate(0.501, 0.501, 0.501, 0.501),
        },
        "CheXpert": {
            "ccvae": _by_rate(0.516, 0.563, 0.549, 0.542), "m2": _by_rate(0.503, 0.547, 0.547, 0.558),
            "diva": _by_rate(0.499, 0.503, 0.503, 0.503), "mvae": _by_rate(0.499, 0.499, 0.499, 0.499),
        },
    },
    "table6": {  # multi-class classification accuracy (appendix D.6)
        "MNIST": {"ccvae": _by_rate(0.927, 0.974, 0.979, 0.988), "m2": _by_rate(0.918, 0.962, 0.968, 0.981)},
        "FashionMNIST": {"ccvae": _by_rate(0.741, 0.865, 0.879, 0.901), "m2": _by_rate(0.756, 0.848, 0.860, 0.892)},
    },
    "table7": {  # conditional generation on one 10-class label: (judge's accuracy, mutual information)
        "MNIST": {
            "ccvae": _by_rate((0.910, 0.020), (0.954, 0.014), (0.961, 0.013), (0.973, 0.010)),
            "m2": _by_rate((0.883, 0.035), (0.929, 0.026), (0.934, 0.024), (0.948, 0.020)),
        },
        "FashionMNIST": {
            "ccvae": _by_rate((0.734, 0.025), (0.806, 0.024), (0.801, 0.028), (0.798, 0.029)),
            "m2": _by_rate((0.750, 0.032), (0.792, 0.032), (0.787, 0.032), (0.789, 0.031)),
        },
    },
}  # fmt: skip

#: our data set -> the paper's data set its tables are read beside (a stand-in where it differs).
STAND_INS = {
    "celeba": "CelebA", "chexpert": "CheXpert", "shapes": "CelebA",
    "mnist": "MNIST", "digits": "MNIST", "fashion-mnist": "FashionMNIST",
}  # fmt: skip

#: how our data set differs from the paper's one beside it.
DATA_DIFFERENCES = {
    "shapes": "ours: synthetic shapes, 32x32, 6 binary labels, a few thousand images; "
    "the paper's: CelebA, 64x64, 18 binary labels, 162,770 training images",
    "digits": "ours: scikit-learn's digits, 8x8 upscaled, 1,258 training images; "
    "the paper's: MNIST, 28x28, 60,000 training images",
    "mnist": "ours: the MNIST images given by --data-dir (a sample has fewer than the paper's 60,000)",
    "fashion-mnist": "ours: the Fashion-MNIST images given by --data-dir (a sample has fewer than the paper's 60,000)",
    "celeba": "the same data set; our image size and training length may differ",
    "chexpert": "the same data set; our image size and training length may differ",
}


def paper_figure(table: str, dataset: str, model: str, rate: float) -> Optional[float | tuple]:
    """The paper's figure for our ``dataset`` (read beside its stand-in), or None where it has none."""
    row = PAPER.get(table, {}).get(STAND_INS.get(dataset, ""), {}).get(model, {})
    return next((value for r, value in row.items() if abs(r - rate) < 1e-9), None)


def ordering(values: dict[str, Optional[float]], lower_is_better: bool = False) -> list[str]:
    """The models with a figure, best first."""
    known = [(v, m) for m, v in values.items() if v is not None]
    return [m for _, m in sorted(known, reverse=not lower_is_better)]


def pairs_agreeing(ours: dict[str, Optional[float]], paper: dict[str, Optional[float]]) -> tuple[int, int]:
    """Of the pairs of models that both tables rank strictly (no tie in either), how many ours
    ranks the paper's way: ``(agreeing, compared)``."""
    both = [m for m in ours if ours[m] is not None and paper.get(m) is not None]
    agreeing = compared = 0
    for i, a in enumerate(both):
        for b in both[i + 1:]:
            if ours[a] != ours[b] and paper[a] != paper[b]:
                compared += 1
                agreeing += (ours[a] > ours[b]) == (paper[a] > paper[b])
    return agreeing, compared


def order_text(models: Sequence[str]) -> str:
    return " > ".join(models) if models else "-"
