"""The names the configuration offers as choices, as plain data that imports neither torch nor Pyro.

``ccvae-pyro --help``, ``train --help`` and every error found while parsing options build the
command line from the config dataclasses (:mod:`pyro_ccvae.config`), whose choices are these
names. The registries that hold what the names stand for (the likelihoods, the data set loaders,
the estimators) import torch, which costs seconds at start-up (docs/benchmarks.md, Start-up time); a test
(tests/cli/test_startup.py) checks that each table here names exactly what its registry holds.

The model families' names are :data:`pyro_ccvae.models.MODELS`'s keys, which it knows without
importing a family's model code.
"""
from __future__ import annotations

#: ``--dataset``: the data sets :data:`pyro_ccvae.data.DATASETS` registers.
DATASETS = ("celeba", "chexpert", "digits", "fashion-mnist", "mnist", "shapes")
#: ``--likelihood``: the keys of :data:`pyro_ccvae.likelihoods.LIKELIHOODS`, in its order.
LIKELIHOODS = (
    "laplace", "normal", "laplace-learned", "laplace-learned-channel", "normal-learned", "normal-learned-channel",
    "bernoulli", "continuous-bernoulli",
)  # fmt: skip
#: ``--jensen``: the CCVAE objective's estimators of the unsupervised term (:mod:`pyro_ccvae.models.ccvae.elbo`).
JENSEN_ESTIMATORS = ("exact", "sampled")
#: ``--precision`` (:mod:`pyro_ccvae.acceleration`).
PRECISIONS = ("fp32", "bf16")
#: ``--noise`` (:mod:`pyro_ccvae.noise`).
NOISE_CHOICES = ("global", "keyed")

#: ``--labels``: per data set (the keys of :data:`DATASETS`), its default labels, the other names
#: it accepts and how they combine, as its loader (:mod:`pyro_ccvae.data`) names them. CelebA's
#: attributes are read from its annotation file, so only its default set is named here.
LABELS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "shapes": (
        ("square", "red", "large", "right", "stripe", "dark_background"), ("shape", "colour"),
        "shape (circle, square, triangle) replaces square, colour (blue, red, green, yellow) replaces red",
    ),
    "digits": (("digit",), tuple("0123456789"), "digit is one 10-class label; digits named instead are one-vs-rest binary labels"),
    "mnist": (("digit",), tuple("0123456789"), "digit is one 10-class label; digits named instead are one-vs-rest binary labels"),
    "fashion-mnist": (
        ("article",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "article is one 10-class label; classes named instead are one-vs-rest binary labels",
    ),
    "chexpert": (
        ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion"),
        ("No Finding", "Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion", "Pneumonia", "Pneumothorax",
         "Pleural Other", "Fracture", "Support Devices"),
        "each a binary label",
    ),  # fmt: skip
    "celeba": (
        ("Arched_Eyebrows", "Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
         "Chubby", "Eyeglasses", "Heavy_Makeup", "Male", "No_Beard", "Pale_Skin", "Receding_Hairline", "Smiling",
         "Wavy_Hair", "Wearing_Necktie", "Young"),
        (),
        "also any other of the 40 attributes of list_attr_celeba.txt, each a binary label, or NAME=A|B|..., "
        "a categorical label of exclusive attributes",
    ),  # fmt: skip
}


def labels_help() -> str:
    """``--labels``'s help: a paragraph per data set (those alike share one) naming its labels (:data:`LABELS`)."""
    paragraphs: dict[tuple, list[str]] = {}
    for dataset, entry in LABELS.items():
        paragraphs.setdefault(entry, []).append(dataset)
    lines = ["Comma-separated labels, in this order; names match case-insensitively, _ and space alike."]
    for (default, others, note), datasets in paragraphs.items():
        offered = ", ".join(default) + (" (the default set)" if len(default) > 1 else " (the default)")
        lines.append(f"{', '.join(datasets)}: {offered}" + (f", {', '.join(others)}" if others else "") + f"; {note}.")
    return "\n\n".join(lines)
