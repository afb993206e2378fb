"""A judge's directory as analysis reads it, and :class:`LabelReader`, what reads a run's labels
off images with a judge. The judge's training (:mod:`.classifier`) and its GP head
(:mod:`.judge_uncertainty`) both read and write these files; this module imports neither, so
that analysis modules that only read a judge stay below both. The files (see :mod:`.classifier`
for what each holds) are written one by one between removing the manifest and writing it again:
a judge loads only when its files match their manifest.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..checkpoint import atomic_write_bytes, atomic_write_text, file_errors, read_file, read_json_object, sha256_of, shown
from ..errors import UserError
from ..prediction import predicted_classes

CONFIG, WEIGHTS, SUMMARY, MANIFEST = "config.json", "classifier.pt", "summary.json", "manifest.json"
#: the GP head of :mod:`.judge_uncertainty` (a judge may lack it: trained before it, or --gp-steps 0).
UNCERTAINTY = "uncertainty.pt"
#: the files of a judge, in the order they are written (the manifest after them).
JUDGE_FILES = (CONFIG, WEIGHTS, SUMMARY, UNCERTAINTY)


class LabelReader:
    """An :class:`~.classifier.IndependentClassifier` restricted to a run's labels, in the run's order: per
    label class log-probabilities, probabilities and decisions (the most probable class).

    :param num_classes: the run's classes per label (default: the classifier's); a classifier that
        reads a label with another number of classes is refused in one line.
    """

    def __init__(
        self, classifier: torch.nn.Module, label_names: Sequence[str], channels: int, image_size: int,
        num_classes: Optional[Sequence[int]] = None,
    ):  # fmt: skip
        classifier.check_images(channels, image_size)
        self.classifier = classifier
        self.index = classifier.columns(label_names)
        if num_classes is not None:
            classifier.check_classes(label_names, num_classes)
        self.num_classes = [classifier.num_classes[i] for i in self.index]

    @torch.no_grad()
    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W]`` -> class log-probabilities ``[..., L, K]`` of the run's labels
        (``K`` the most classes among them; ``-inf`` for classes a label lacks)."""
        batch_shape = x.shape[:-3]
        out = self.classifier.log_probs(x.reshape(-1, *x.shape[-3:]))[:, self.index, : max(self.num_classes)]
        return out.reshape(*batch_shape, *out.shape[1:])

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[..., L, K]`` of the run's labels."""
        return self.log_probs(x).exp()

    def decisions(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class of each label ``[..., L]`` (long; binary: logit > 0)."""
        return predicted_classes(self.log_probs(x))


def save_judge(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write a judge's files (name -> bytes) into ``out_dir``, each atomically, between removing
    its old manifest and writing the new one (see the module's notes)."""
    hint = "there, or choose another --out"
    with file_errors(out_dir / MANIFEST, "remove"):
        (out_dir / MANIFEST).unlink(missing_ok=True)
    for name, data in files.items():
        atomic_write_bytes(out_dir / name, data, hint)
    manifest = {"sha256": {name: sha256_of(data) for name, data in files.items()}}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n", hint)


def judge_files(path: Path) -> dict[str, bytes]:
    """The files of the judge in ``path`` that its manifest lists, checked against it; a one-line
    ``ValueError`` when they do not match (a write that was interrupted, or files of two judges)."""
    again = f"train it again with `ccvae-pyro train-classifier --out {shown(path)}`"
    manifest = read_json_object(path / MANIFEST)
    if manifest is None:
        config = read_json_object(path / CONFIG)
        if os.path.lexists(path / MANIFEST) or (config is not None and "judge_format" in config):
            raise UserError(f"the classifier in {shown(path)} is incomplete ({MANIFEST} is missing or damaged: its writing was interrupted); {again}")
        return {WEIGHTS: read_file(path / WEIGHTS)}  # a judge from before manifests
    digests = manifest.get("sha256")
    if not isinstance(digests, dict) or WEIGHTS not in digests:
        raise UserError(f"{shown(path / MANIFEST)} is damaged; {again}")
    files = {}
    for name, digest in digests.items():
        try:
            data = read_file(path / str(name))
        except FileNotFoundError:
            raise UserError(f"the classifier in {shown(path)} lacks {name}, which its {MANIFEST} lists; {again}") from None
        if sha256_of(data) != digest:
            raise UserError(
                f"{shown(path / str(name))} does not match {MANIFEST} (a write interrupted, or files of two classifiers mixed); {again}"
            )
        files[name] = data
    return files
