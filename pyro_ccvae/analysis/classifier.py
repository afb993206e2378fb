"""The independent classifier: a plain CNN trained fully supervised on the observed labels.

The paper judges edited and generated images with a classifier that shares nothing with the
CCVAE (appendix D). Ours is a small CNN (3x3 convolutions from full resolution, batch norm,
max-pooling; not the VAE's stride-2 encoder, which blurs a 4-pixel square into a circle) with one
logit per label, trained with binary cross-entropy on the labels that are seen (all of them, not
just a run's labelled subset). A judge is only as good as its accuracy: reports show it per
label. Its directory::

    DIR/config.json      the ClassifierConfig (data options, training options, label names)
    DIR/classifier.pt    the network's weights
    DIR/summary.json     test accuracy per label
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..checkpoint import atomic_save, atomic_write_text, check_own_directory
from ..config import DataConfig, RunSection, TrainConfig, check_positive, option
from ..data import as_float_images, load_dataset
from ..devices import resolve_device
from ..prediction import label_accuracy, mean_of

CONFIG, WEIGHTS, SUMMARY = "config.json", "classifier.pt", "summary.json"


@dataclass
class ClassifierConfig(RunSection, DataConfig):
    """How the independent classifier was trained (the data and run options of a training run,
    and its own); saved flat as ``DIR/config.json``."""

    epochs: int = option(10, help="Epochs to train the classifier.")
    batch_size: int = option(64, help="Images per step.")
    lr: float = option(1e-3, help="Adam's learning rate.")

    def __post_init__(self) -> None:
        check_positive(self, "epochs", "batch_size", "lr")

    @classmethod
    def like_run(cls, config: TrainConfig, **options) -> "ClassifierConfig":
        """A classifier on the same data as a training run's ``config``."""
        return cls(**{**config.data.options(), "seed": config.run.seed, **options})

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ClassifierConfig":
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def judge_network(channels: int, image_size: int, outputs: int) -> torch.nn.Sequential:
    """A 3x3 convolution with batch norm at 16, 32, 64 (and 64 at 64 px) channels per stage,
    each stage halving the resolution down to 4x4; the flattened map (positions kept: ``right``
    is a position) goes through a hidden layer of 128 to the logits."""
    widths = [16, 32, 64] + ([64] if image_size == 64 else [])
    layers: list[torch.nn.Module] = []
    c_in = channels
    for width in widths:
        layers += [
            torch.nn.Conv2d(c_in, width, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        c_in = width
    head = [torch.nn.Flatten(), torch.nn.Linear(c_in * 16, 128), torch.nn.ReLU(), torch.nn.Linear(128, outputs)]
    return torch.nn.Sequential(*layers, *head)


def is_classifier_config(config: dict) -> bool:
    """Whether a ``config.json`` object is a classifier directory's (a training run's has a guide)."""
    return {"dataset", "epochs", "lr"} <= config.keys() and "guide" not in config


class IndependentClassifier(torch.nn.Module):
    """Images ``[B, C, S, S]`` in ``[0, 1]`` -> one logit per label ``[B, L]``."""

    def __init__(self, label_names: Sequence[str], channels: int, image_size: int):
        super().__init__()
        self.label_names = list(label_names)
        self.channels, self.image_size = channels, image_size
        self.net = judge_network(channels, image_size, len(self.label_names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def columns(self, label_names: Sequence[str]) -> list[int]:
        """The output columns of ``label_names``; a :class:`ValueError` names any it lacks."""
        missing = [name for name in label_names if name not in self.label_names]
        if missing:
            raise ValueError(
                f"the independent classifier has no label(s) {', '.join(missing)}; it knows "
                f"{', '.join(self.label_names)}; train one on the run's labels with `ccvae-pyro train-classifier`"
            )
        return [self.label_names.index(name) for name in label_names]

    def check_images(self, channels: int, image_size: int) -> None:
        if (channels, image_size) != (self.channels, self.image_size):
            raise ValueError(
                f"the independent classifier reads {self.channels}x{self.image_size}x{self.image_size} images, "
                f"the run makes {channels}x{image_size}x{image_size}; train it with the run's --image-size"
            )


class LabelReader:
    """An :class:`IndependentClassifier` restricted to a run's labels, in the run's order."""

    def __init__(self, classifier: IndependentClassifier, label_names: Sequence[str], channels: int, image_size: int):
        classifier.check_images(channels, image_size)
        self.classifier = classifier
        self.index = classifier.columns(label_names)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W]`` -> logits ``[..., L]`` of the run's labels."""
        batch_shape = x.shape[:-3]
        out = self.classifier(x.reshape(-1, *x.shape[-3:]))[:, self.index]
        return out.reshape(*batch_shape, len(self.index))


def train_classifier(config: ClassifierConfig, out_dir: Path, progress: bool = True) -> dict:
    """Train an :class:`IndependentClassifier` with Adam into ``out_dir``; returns the summary."""
    out_dir = Path(out_dir)
    check_own_directory(out_dir, CONFIG, is_classifier_config, "pyro-ccvae classifier")
    config.make_paths_absolute()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    data = load_dataset(config.dataset, config.data_options(config.seed))
    config.info = {"label_names": list(data.label_names), "channels": data.channels, "image_size": data.image_size}
    net = IndependentClassifier(data.label_names, data.channels, data.image_size).to(device)
    optim = torch.optim.Adam(net.parameters(), lr=config.lr)
    train = data.train
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        batches = torch.randperm(len(train), generator=generator).split(config.batch_size)
        bar = tqdm(batches, desc=f"classifier epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        net.train()
        for index in bar:
            x = as_float_images(train.images[index], device)
            y, mask = train.labels[index].to(device), train.mask[index].to(device)
            loss = F.binary_cross_entropy_with_logits(net(x), y, weight=mask.float(), reduction="sum")
            loss = loss / mask.sum().clamp(min=1)
            optim.zero_grad()
            loss.backward()
            optim.step()
            bar.set_postfix(bce=f"{loss.item():.3f}")
    net.eval()
    probs = predict(net, data.test.images, device, config.batch_size)
    test_acc = label_accuracy(probs, data.test)
    summary = {
        "epochs": config.epochs,
        "test_accuracy": dict(zip(data.label_names, test_acc)),
        "test_accuracy_mean": mean_of(test_acc),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save(out_dir / CONFIG)
    atomic_save({"state_dict": net.state_dict(), **config.info}, out_dir / WEIGHTS)
    atomic_write_text(out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


@torch.no_grad()
def predict(net: IndependentClassifier, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Probabilities ``[N, L]`` (CPU) for uint8 images ``[N, C, H, W]``."""
    out = [torch.sigmoid(net(as_float_images(images[i : i + batch_size], device))).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, len(net.label_names))


def load_classifier(path: Path, device: torch.device) -> IndependentClassifier:
    """The classifier saved in ``path`` by :func:`train_classifier`, in eval mode on ``device``."""
    path = Path(path)
    if not (path / WEIGHTS).exists():
        raise FileNotFoundError(
            f"{path} holds no {WEIGHTS}; train a classifier with `ccvae-pyro train-classifier --out {path}`"
        )
    try:
        state = torch.load(path / WEIGHTS, map_location=device, weights_only=True)
    except Exception as error:  # truncated, damaged, or objects a weights-only load refuses
        raise ValueError(
            f"{path / WEIGHTS} cannot be read ({' '.join(str(error).split()[:12])}); train it again with "
            f"`ccvae-pyro train-classifier --out {path}`"
        ) from None
    net = IndependentClassifier(state["label_names"], state["channels"], state["image_size"])
    try:
        net.load_state_dict(state["state_dict"])
    except RuntimeError:
        raise ValueError(
            f"the classifier in {path} was trained by an older version with another network; "
            f"train it again with `ccvae-pyro train-classifier --out {path}`"
        ) from None
    return net.to(device).eval()
