"""Conditional generation from the model's prior (the paper's Fig. 4)::

    y_i ~ p(y_i)  unless fixed,   z_c ~ p(z_c | y),   z_s ~ Normal(0, I),   x = decoder(z_c, z_s)

The judged measures ask an independent classifier (:class:`~.judge.LabelReader`) which class
it reads on each generated image: :func:`generation_accuracy` (Table 5, every label),
:func:`requested_class_accuracy` (each class of a label of ``K_i > 2`` classes in turn) and
:func:`class_generation_accuracy` (one class spread over binary one-hot labels).
"""
from __future__ import annotations

from typing import Optional

import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..models.base import DECODE, SAMPLE, Representation
from .context import Analysis


#: the capabilities generation asks of a model.
NEEDS = (SAMPLE, DECODE)


def sample_labels(representation: Representation, num: int, fixed: Optional[dict[int, int]] = None) -> torch.Tensor:
    """``[num, L]`` label vectors: ``fixed`` columns (label -> class) set, the others drawn from ``p(y)``."""
    return representation.sample_labels(num, fixed)


@torch.no_grad()
def generate(representation: Representation, y: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Decode ``z_c ~ p(z_c | y)`` with the given ``z_s``; ``y [..., B, L]``, ``z_s [..., B, d_s]``."""
    return representation.decode(representation.sample_characteristic(y), z_s)


@torch.no_grad()
def generation_accuracy(analysis: Analysis, num_samples: int = 1000) -> dict:
    """Table 5: draw ``y ~ p(y)`` and an image from ``p(x | z) p(z | y)``; report how often the
    independent classifier's most probable class is ``y_i``. ``chance`` is the accuracy of always
    guessing the likeliest class under ``p(y_i)``, for comparison."""
    reader = analysis.require_classifier("conditional-generation accuracy")
    if num_samples < 1:
        raise UserError(f"--gen-samples must be at least 1, got {num_samples}")
    rep = analysis.representation
    correct = torch.zeros(analysis.num_labels, dtype=torch.float64)
    sizes = torch.arange(num_samples).split(analysis.batch_size)
    for chunk in tqdm(sizes, desc="generation accuracy", disable=not analysis.progress, leave=False):
        y = rep.sample_labels(len(chunk))
        x = generate(rep, y, rep.sample_style((len(chunk),)))
        correct += (reader.decisions(x) == y.long()).sum(0).double().cpu()
    accuracy = correct / num_samples
    return {
        "accuracy": dict(zip(analysis.label_names, accuracy.tolist())),
        "accuracy_mean": float(accuracy.mean()),
        "chance": dict(zip(analysis.label_names, rep.label_prior().max(-1).values.cpu().double().tolist())),
        "num_samples": num_samples,
    }


@torch.no_grad()
def requested_class_accuracy(analysis: Analysis, samples_per_class: int = 100) -> Optional[dict]:
    """For each label of ``K_i > 2`` classes and each class ``k``: generate ``samples_per_class``
    images with ``y_i = k`` (the other labels from ``p(y)``) and report how often the judge reads
    ``k`` on label ``i`` (``requested_class_rate[label][k]``, and its mean over the classes).
    ``chance`` is ``1/K_i``: what that mean is when the judge's reading ignores the request.
    ``None`` when every label is binary (:func:`generation_accuracy` covers them)."""
    reader = analysis.require_classifier("requested-class generation accuracy")
    if samples_per_class < 1:
        raise UserError(f"samples per class must be at least 1, got {samples_per_class}")
    rep, names = analysis.representation, analysis.label_names
    categorical = [i for i, k in enumerate(analysis.num_classes) if k > 2]
    if not categorical:
        return None
    rates = {}
    for i in categorical:
        hits = []
        for k in range(analysis.num_classes[i]):
            y = rep.sample_labels(samples_per_class, {i: k})
            x = generate(rep, y, rep.sample_style((samples_per_class,)))
            hits.append(float((reader.decisions(x)[:, i] == k).double().mean()))
        rates[names[i]] = hits
    return {
        "requested_class_rate": rates,
        "requested_class_rate_mean": {name: sum(r) / len(r) for name, r in rates.items()},
        "chance": {names[i]: 1.0 / analysis.num_classes[i] for i in categorical},
        "samples_per_class": samples_per_class,
    }


def is_one_hot(labels: torch.Tensor, mask: torch.Tensor) -> bool:
    """Whether the labels are one class spread over binary columns (MNIST, digits as one-hot
    labels): every fully observed row has exactly one label on, and every label is 0/1."""
    complete = mask.all(-1)
    rows = labels[complete]
    return bool(complete.any()) and bool(((rows == 0) | (rows == 1)).all()) and bool((rows.sum(-1) == 1).all())


@torch.no_grad()
def class_generation_accuracy(analysis: Analysis, samples_per_class: int = 100) -> dict:
    """For one-hot labels: generate from ``y = e_k`` (label ``k`` on, every other off) and report
    how often the judge's most probable label is ``k``, the requested class. Per-label accuracy
    under ``y ~ p(y)`` says little here: independent Bernoullis rarely draw a one-hot vector, and
    always answering "off" scores ``1 - 1/L``. Chance is ``1/L``."""
    reader = analysis.require_classifier("class-conditional generation accuracy")
    rep, num = analysis.representation, analysis.num_labels
    hits = []
    for k in range(num):
        y = torch.zeros(samples_per_class, num, device=analysis.device)
        y[:, k] = 1.0
        x = generate(rep, y, rep.sample_style((samples_per_class,)))
        # the label the judge finds likeliest to be on (the largest log C(y_j = 1 | x))
        hits.append(float((reader.log_probs(x)[..., 1].argmax(-1) == k).float().mean()))
    return {
        "requested_class_rate": dict(zip(analysis.label_names, hits)),
        "requested_class_rate_mean": sum(hits) / num,
        "chance": 1.0 / num,
        "samples_per_class": samples_per_class,
    }
