"""The independent classifier: a plain CNN trained fully supervised on the observed labels.

The paper judges edited and generated images with a classifier that shares nothing with the
CCVAE (appendix D). Ours is a small CNN (3x3 convolutions from full resolution, batch norm,
max-pooling; not the VAE's stride-2 encoder, which blurs a 4-pixel square into a circle) trained
on the labels that are seen (all of them, not just a run's labelled subset) by maximising
``sum_i log C(y_i | x)``. A binary label has one logit (sigmoid, binary cross-entropy; judges saved
before categorical labels existed are of this form and still load), a label of ``K_i > 2`` classes
``K_i`` logits (softmax, cross-entropy). Either way :meth:`~.judge.LabelReader.log_probs` answers class
log-probabilities ``[..., L, K]``. A judge is only as good as its accuracy: reports show it per
label, beside the chance level (the most frequent class's share). Its directory::

    DIR/config.json      the ClassifierConfig (data options, training options, label names)
    DIR/classifier.pt    the network's weights and its label spec (names, classes per label)
    DIR/summary.json     test accuracy and chance level per label, the validation hold-out, the epochs
    DIR/uncertainty.pt   the GP head that measures the judge's uncertainty (:mod:`.judge_uncertainty`)
    DIR/manifest.json    the sha256 of each of these, written last
    DIR/checkpoint.pt    training's state after each epoch (with its ``.prev`` copy and sha256
                         record, :mod:`pyro_ccvae.checkpoint`), for ``--resume``; not part of the judge

Training holds out a seeded share of the training split (``--validation-fraction``), measures the
NLL and accuracy there after every epoch, stops when that NLL has not fallen by ``--min-delta``
for ``--patience`` epochs (``--epochs`` is the most) and keeps the weights of its best epoch.
The checkpoint holds everything the rest of training depends on (weights, Adam's state, the best
weights, the RNG states; each epoch's batch order is keyed by the seed and the epoch), so a
resumed training ends where an uninterrupted one does. The judge files are written from the
checkpoint's state once training stops; a judge directory while it trains still holds the
previous judge, whole. Judges from before these files (no ``uncertainty.pt``, a summary without
the validation fields) still load.

A judge is several files written one by one, so a kill between two could leave weights, config and
summary that disagree. The manifest is removed before the first is written and written after the
last: a judge loads only when its files match their manifest (or when it predates manifests:
no ``judge_format`` in its config). One process writes a judge directory at a time (its
``.writer.lock``), and it removes the temporary files that a killed writer left.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..checkpoint import (
    CheckpointError, DirectoryLock, check_no_links, check_own_directory, checksums_path,
    file_errors, make_folder, previous_path, read_checkpoint, remove_stale_temporaries, rng_state,
    save_checkpoint, set_rng_state, shown,
)  # fmt: skip
from ..data import as_float_images, load_dataset
from ..data.base import ImageSet
from ..data.label_spec import check_num_classes
from ..devices import resolve_device
from ..errors import UserError
from ..prediction import chance_accuracy, label_accuracy, mean_of
from .classifier_config import ClassifierConfig
from .judge import CONFIG, JUDGE_FILES, MANIFEST, SUMMARY, UNCERTAINTY, WEIGHTS, judge_files, save_judge

#: training's state after the latest epoch, for ``train-classifier --resume``.
CHECKPOINT = "checkpoint.pt"
#: ``checkpoint.pt``'s mark, so that a foreign ``checkpoint.pt`` is not resumed.
CHECKPOINT_FORMAT = 1
#: held (flock) by the one process writing a judge directory.
LOCK = ".writer.lock"


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


def output_widths(num_classes: Sequence[int]) -> list[int]:
    """Logits per label: one for a binary label (its sigmoid is ``C(y_i = 1 | x)``), ``K_i`` for a
    label of ``K_i > 2`` classes (their softmax)."""
    return [1 if k == 2 else k for k in num_classes]


def class_log_probs(outputs: torch.Tensor, num_classes: Sequence[int]) -> torch.Tensor:
    """The judge's outputs ``[B, sum(output_widths)]`` -> class log-probabilities ``[B, L, K]``,
    ``K = max(num_classes)``; the classes a label lacks get ``-inf`` (probability 0)."""
    top = max(num_classes)
    out = outputs.new_full((outputs.shape[0], len(num_classes), top), float("-inf"))
    start = 0
    for i, (k, width) in enumerate(zip(num_classes, output_widths(num_classes))):
        block = outputs[:, start : start + width]
        if k == 2:
            out[:, i, :2] = torch.cat([F.logsigmoid(-block), F.logsigmoid(block)], dim=-1)
        else:
            out[:, i, :k] = F.log_softmax(block, dim=-1)
        start += width
    return out


def judge_loss(outputs: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, num_classes: Sequence[int]) -> torch.Tensor:
    """``-sum log C(y_i | x)`` over the seen labels, per seen label: binary cross-entropy for the
    binary labels (exactly the loss of judges trained before categorical labels), cross-entropy
    for the others. ``outputs [B, sum(output_widths)]``, ``y`` class indices and ``mask`` ``[B, L]``."""
    widths = output_widths(num_classes)
    starts = [sum(widths[:i]) for i in range(len(widths))]
    binary = [i for i, k in enumerate(num_classes) if k == 2]
    total = outputs.new_zeros(())
    if binary:
        logits = outputs if len(binary) == len(num_classes) else outputs[:, [starts[i] for i in binary]]
        total = total + F.binary_cross_entropy_with_logits(logits, y[:, binary], weight=mask[:, binary].float(), reduction="sum")
    for i, k in enumerate(num_classes):
        if k > 2:
            nll = F.cross_entropy(outputs[:, starts[i] : starts[i] + k], y[:, i].long(), reduction="none")
            total = total + (nll * mask[:, i]).sum()
    return total / mask.sum().clamp(min=1)


class IndependentClassifier(torch.nn.Module):
    """Images ``[B, C, S, S]`` in ``[0, 1]`` -> logits ``[B, sum(output_widths(num_classes))]``
    (see :func:`class_log_probs` for what they mean).

    :param num_classes: classes per label (default: 2 each, every label binary).
    """

    def __init__(self, label_names: Sequence[str], channels: int, image_size: int, num_classes: Optional[Sequence[int]] = None):
        super().__init__()
        self.label_names = list(label_names)
        self.num_classes = list(check_num_classes(num_classes, len(self.label_names)))
        self.channels, self.image_size = channels, image_size
        self.net = judge_network(channels, image_size, sum(output_widths(self.num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class log-probabilities ``[B, L, K]`` of every label the classifier knows."""
        return class_log_probs(self(x), self.num_classes)

    def columns(self, label_names: Sequence[str]) -> list[int]:
        """The output columns of ``label_names``; a :class:`ValueError` names any it lacks."""
        missing = [name for name in label_names if name not in self.label_names]
        if missing:
            raise UserError(
                f"the independent classifier has no label(s) {', '.join(missing)}; it knows "
                f"{', '.join(self.label_names)}; train one on the run's labels with `ccvae-pyro train-classifier`"
            )
        return [self.label_names.index(name) for name in label_names]

    def check_classes(self, label_names: Sequence[str], num_classes: Sequence[int]) -> None:
        """A one-line :class:`ValueError` if the classifier reads a label with another number of classes."""
        for name, k in zip(label_names, num_classes):
            mine = self.num_classes[self.label_names.index(name)]
            if mine != k:
                raise UserError(
                    f"the independent classifier reads label {name!r} as {mine} classes, the run has {k}; "
                    "train one on the run's data with `ccvae-pyro train-classifier`"
                )

    def check_images(self, channels: int, image_size: int) -> None:
        if (channels, image_size) != (self.channels, self.image_size):
            raise UserError(
                f"the independent classifier reads {self.channels}x{self.image_size}x{self.image_size} images, "
                f"the run makes {channels}x{image_size}x{image_size}; train it with the run's --image-size"
            )


#: a judge directory's files that do not make it someone else's (training's checkpoint has no config.json beside it yet).
_TRAINING_FILES = (LOCK, CHECKPOINT, previous_path(Path(CHECKPOINT)).name, checksums_path(Path(CHECKPOINT)).name)


def train_classifier(
    config: ClassifierConfig, out_dir: Path, progress: bool = True, resume: bool = False, explicit: Sequence[str] = (),
) -> dict:  # fmt: skip
    """Train an :class:`IndependentClassifier` with Adam into ``out_dir``; returns the summary.

    :param resume: go on from ``out_dir``'s checkpoint with its config (``config`` gives the new
        ``epochs`` and ``device``).
    :param explicit: the option names the user gave (on resume, one that differs from the
        checkpoint's config, and cannot change, is a one-line error).
    """
    out_dir = Path(out_dir)
    check_own_directory(out_dir, CONFIG, is_classifier_config, "pyro-ccvae classifier", ignore=_TRAINING_FILES)
    # --out may be a link (where a user keeps a judge is theirs to choose); a folder that becomes
    # one while the judge trains (RUN/attribute_classifier swapped for a link) is refused before writing.
    out_is_link = out_dir.is_symlink()
    if not out_is_link:
        make_folder(out_dir)
    check_no_links(out_dir, "classifier directory")
    lock = DirectoryLock(out_dir, LOCK)
    if not lock.acquire():
        holder = lock.holder()
        raise UserError(
            f"{shown(out_dir)} is in use by another train-classifier{f' ({holder})' if holder else ''}; "
            "wait for it to finish, or choose another --out"
        )
    try:
        for name in (*JUDGE_FILES, MANIFEST, CHECKPOINT, previous_path(Path(CHECKPOINT)).name, checksums_path(Path(CHECKPOINT)).name):
            remove_stale_temporaries(out_dir, name)
        return _JudgeTraining(config, out_dir, progress, out_is_link, resume, explicit).run()
    finally:
        lock.release()


def _resumed_config(out_dir: Path, saved: dict, config: ClassifierConfig, explicit: Sequence[str]) -> ClassifierConfig:
    """The checkpoint's config with ``config``'s epochs and device, and the other options that may
    change on resume (where the data lie) when they were given."""
    try:
        old = ClassifierConfig(**{k: v for k, v in json.loads(saved["config"]).items() if k in {f.name for f in fields(ClassifierConfig)}})
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"cannot resume: the checkpoint in {shown(out_dir)} holds no readable config ({error})") from None
    old.epochs, old.device = config.epochs, config.device
    for name in explicit:
        f = next((f for f in fields(ClassifierConfig) if f.name == name), None)
        if f is None:
            continue
        new, was = getattr(config, name), getattr(old, name)
        if f.metadata.get("resume"):
            setattr(old, name, new)
        elif new != was:
            raise UserError(
                f"--{name.replace('_', '-')} cannot change when resuming: the judge in {shown(out_dir)} trains with {was!r}; "
                "resume without it, or train a new judge (without --resume)"
            )
    return old


def split_validation(train: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet, int]:
    """The training split without and with its held-out validation part (a seeded permutation's
    first ``round(fraction * N)`` images, at least one), and that part's size."""
    count = len(train)
    held = min(max(1, round(fraction * count)), count - 1)
    if held < 1:
        raise UserError(f"the training split has {count} image(s); holding out a validation part needs at least 2")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return train.subset(order[held:].sort().values), train.subset(order[:held].sort().values), held


def validation_nll(probs: torch.Tensor, split: ImageSet) -> float:
    """``-log C(y_i | x)`` per seen label, averaged (the training loss on held-out images);
    ``probs [N, L, K]`` from :func:`predict`."""
    picked = probs.gather(-1, split.labels.long().clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = -picked.clamp(min=torch.finfo(probs.dtype).tiny).log()
    return float((nll * split.mask).sum() / split.mask.sum().clamp(min=1))


class _JudgeTraining:
    """One ``train-classifier``: fresh or resumed, epoch by epoch with a checkpoint after each,
    then the judge's files from the best epoch's weights."""

    def __init__(self, config: ClassifierConfig, out_dir: Path, progress: bool, out_is_link: bool, resume: bool, explicit: Sequence[str]):
        self.out_dir, self.progress, self.out_is_link = out_dir, progress, out_is_link
        saved = None
        if resume:
            if not any(os.path.lexists(out_dir / name) for name in (CHECKPOINT, previous_path(Path(CHECKPOINT)).name)):
                raise UserError(f"cannot resume: {shown(out_dir)} holds no {CHECKPOINT} of an earlier train-classifier; train without --resume")
            try:
                saved = read_checkpoint(out_dir / CHECKPOINT, map_location="cpu").state
            except CheckpointError as error:
                raise UserError(f"cannot resume: {error}") from None
            if saved.get("judge_checkpoint") != CHECKPOINT_FORMAT:
                raise UserError(f"cannot resume: {shown(out_dir / CHECKPOINT)} is not a train-classifier checkpoint; train without --resume")
            config = _resumed_config(out_dir, saved, config, explicit)
        self.config = config
        config.make_paths_absolute()
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        data = load_dataset(config.dataset, config.data_options(config.seed))
        self.data = data
        self.num_classes = list(data.num_classes)
        config.info = {
            "label_names": list(data.label_names), "num_classes": self.num_classes, "channels": data.channels, "image_size": data.image_size,
        }  # fmt: skip
        self.train, self.validation, self.held = split_validation(data.train, config.validation_fraction, config.seed)
        self.net = IndependentClassifier(data.label_names, data.channels, data.image_size, self.num_classes).to(self.device)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.epoch, self.since_best, self.stopped_early, self.history = 0, 0, False, []
        self.best = {"epoch": 0, "validation_nll": float("inf"), "state_dict": None}
        if saved is not None:
            self._restore(saved)

    def _restore(self, saved: dict) -> None:
        try:
            self.net.load_state_dict(saved["net"])
            self.optim.load_state_dict(saved["optimizer"])
            self.epoch, self.since_best, self.stopped_early = int(saved["epoch"]), int(saved["since_best"]), bool(saved["stopped_early"])
            self.history, self.best = list(saved["history"]), dict(saved["best"])
            set_rng_state(saved["rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise UserError(
                f"cannot resume: the checkpoint in {shown(self.out_dir)} does not fit this judge ({' '.join(str(error).split()[:12])}); "
                "train without --resume"
            ) from None

    def _state(self) -> dict:
        return {
            "judge_checkpoint": CHECKPOINT_FORMAT, "config": self.config.to_json(), "epoch": self.epoch, "net": self.net.state_dict(),
            "optimizer": self.optim.state_dict(), "best": self.best, "since_best": self.since_best, "stopped_early": self.stopped_early,
            "history": self.history, "rng": rng_state(),
        }  # fmt: skip

    def _check_folder(self) -> None:
        if not self.out_is_link:
            make_folder(self.out_dir)  # still a folder of its own, not a link
        check_no_links(self.out_dir, "classifier directory")

    def _epoch(self) -> float:
        """One pass over the training images (minus the validation part); the mean loss of its steps."""
        config, net = self.config, self.net
        # Keyed by epoch, so a resumed training visits the same batches in the same order.
        order = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(config.seed * 100003 + self.epoch))
        bar = tqdm(order.split(config.batch_size), desc=f"epoch {self.epoch + 1}", disable=not self.progress, leave=False)
        net.train()
        total, steps = 0.0, 0
        for index in bar:
            x = as_float_images(self.train.images[index], self.device)
            y, mask = self.train.labels[index].to(self.device), self.train.mask[index].to(self.device)
            loss = judge_loss(net(x), y, mask, self.num_classes)
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            total, steps = total + loss.item(), steps + 1
            bar.set_postfix(nll=f"{loss.item():.3f}")
        net.eval()
        return total / max(steps, 1)

    def run(self) -> dict:
        config = self.config
        bar = tqdm(total=config.epochs, initial=min(self.epoch, config.epochs), desc="classifier", unit="epoch", disable=not self.progress)
        with bar:
            while self.epoch < config.epochs and not self.stopped_early:
                train_nll = self._epoch()
                probs = predict(self.net, self.validation.images, self.device, config.batch_size)
                nll, accuracy = validation_nll(probs, self.validation), mean_of(label_accuracy(probs, self.validation))
                self.epoch += 1
                self.history.append({"epoch": self.epoch, "train_nll": train_nll, "validation_nll": nll, "validation_accuracy": accuracy})
                if nll < self.best["validation_nll"] - config.min_delta:
                    state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                    self.best, self.since_best = {"epoch": self.epoch, "validation_nll": nll, "state_dict": state}, 0
                else:
                    self.since_best += 1
                    self.stopped_early = self.since_best >= config.patience
                self._check_folder()
                save_checkpoint(self._state(), self.out_dir / CHECKPOINT, hint="there, or choose another --out")
                bar.update(1)
                bar.set_postfix(nll=f"{train_nll:.3f}", val_nll=f"{nll:.3f}", val_acc="-" if accuracy is None else f"{accuracy:.3f}", best=self.best["epoch"])
        return self._write_judge()

    def _write_judge(self) -> dict:
        from . import judge_uncertainty  # the GP head imports pyro.contrib.gp

        config, data, net = self.config, self.data, self.net
        if self.best["state_dict"] is not None:
            net.load_state_dict(self.best["state_dict"])
        net.eval()
        probs = predict(net, data.test.images, self.device, config.batch_size)
        test_acc = label_accuracy(probs, data.test)
        last = self.history[-1] if self.history else {}
        summary = {
            "epochs": self.epoch,
            "max_epochs": config.epochs,
            "best_epoch": self.best["epoch"],
            "stopped_early": self.stopped_early,
            "validation": {
                "source": "training split", "fraction": config.validation_fraction, "images": self.held, "seed": config.seed,
                "monitor": "validation NLL per seen label", "patience": config.patience, "min_delta": config.min_delta,
                "best_nll": self.best["validation_nll"] if self.best["state_dict"] is not None else None,
                "best_accuracy": next((h["validation_accuracy"] for h in self.history if h["epoch"] == self.best["epoch"]), None),
                "last_nll": last.get("validation_nll"),
            },
            "history": self.history,
            "test_accuracy": dict(zip(data.label_names, test_acc)),
            "test_accuracy_mean": mean_of(test_acc),
            "test_chance": dict(zip(data.label_names, chance_accuracy(data.test.labels, data.test.mask))),
        }
        files = {}
        if config.gp_steps > 0:
            head = judge_uncertainty.fit_uncertainty(net, self.train, config, self.device, self.progress)
            summary["uncertainty"] = head.describe(data.test, config.batch_size)
            files[UNCERTAINTY] = head.to_bytes()
        self._check_folder()
        weights = io.BytesIO()
        torch.save({"state_dict": net.state_dict(), **config.info}, weights)
        save_judge(self.out_dir, {
            CONFIG: config.to_json().encode(), WEIGHTS: weights.getvalue(), SUMMARY: (json.dumps(summary, indent=2) + "\n").encode(),
            **files,
        })  # fmt: skip
        if UNCERTAINTY not in files:  # a GP head of an earlier judge would not match these weights
            with file_errors(self.out_dir / UNCERTAINTY, "remove"):
                (self.out_dir / UNCERTAINTY).unlink(missing_ok=True)
        return summary


@torch.no_grad()
def predict(net: IndependentClassifier, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities ``[N, L, K]`` (CPU) for uint8 images ``[N, C, H, W]``."""
    out = [net.log_probs(as_float_images(images[i : i + batch_size], device)).exp().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, len(net.label_names), max(net.num_classes))


def load_classifier(path: Path, device: torch.device) -> IndependentClassifier:
    """The classifier saved in ``path`` by :func:`train_classifier`, in eval mode on ``device``."""
    path = Path(path)
    with file_errors(path / WEIGHTS, "read"):  # a name too long, or a file where a folder belongs, is said as such
        try:
            os.lstat(path / WEIGHTS)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{shown(path)} holds no {WEIGHTS}; train a classifier with `ccvae-pyro train-classifier --out {shown(path)}`"
            ) from None
    check_no_links(path, "classifier directory")
    weights = judge_files(path)[WEIGHTS]
    try:
        state = torch.load(io.BytesIO(weights), map_location=device, weights_only=True)
    except Exception as error:  # truncated, damaged, or objects a weights-only load refuses
        raise UserError(
            f"{path / WEIGHTS} cannot be read ({' '.join(str(error).split()[:12])}); train it again with "
            f"`ccvae-pyro train-classifier --out {path}`"
        ) from None
    # judges saved before categorical labels carry no label spec: every label binary, one logit each
    try:
        net = IndependentClassifier(state["label_names"], state["channels"], state["image_size"], state.get("num_classes"))
        net.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError):
        raise UserError(
            f"the classifier in {path} was trained by an older version with another network; "
            f"train it again with `ccvae-pyro train-classifier --out {path}`"
        ) from None
    return net.to(device).eval()
