"""Class-conditional generation for one-hot labels, on a model and judge that are exact by construction."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from pyro_ccvae.analysis.classifier import class_log_probs
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.generation import class_generation_accuracy, is_one_hot
from pyro_ccvae.data import ImageSet

L = 4


def test_is_one_hot():
    eye = torch.eye(L)
    full = torch.ones(L, L, dtype=torch.bool)
    assert is_one_hot(eye, full)
    assert not is_one_hot(torch.ones(L, L), full)
    two_on = eye.clone()
    two_on[0, 1] = 1
    assert not is_one_hot(two_on, full)


def _analysis(separation: float):
    """Prior means at +/- separation; the decoded "image" is z_c itself and the judge reads it as
    one logit per (binary) label."""

    def sample_characteristic(y):  # y [B, L] -> z_c [B, L, 1]
        loc = (2 * y - 1).unsqueeze(-1) * separation
        return loc + 0.1 * torch.randn_like(loc)

    representation = SimpleNamespace(
        sample_characteristic=sample_characteristic,
        sample_style=lambda shape: torch.zeros(*shape, 2),
        decode=lambda z_c, z_s: z_c[..., 0],
        num_classes=[2] * L,
    )
    reader = SimpleNamespace(log_probs=lambda x: class_log_probs(x, [2] * L))
    split = ImageSet(torch.zeros(L, 1, 2, 2, dtype=torch.uint8), torch.eye(L), torch.ones(L, L, dtype=torch.bool), tuple("abcd"))
    run = SimpleNamespace(representation=representation, device=torch.device("cpu"), label_names=list("abcd"))
    return Analysis(run, split, progress=False, classifier=reader)


def test_separated_priors_generate_the_requested_class():
    result = class_generation_accuracy(_analysis(3.0), samples_per_class=50)
    assert result["requested_class_rate"] == dict.fromkeys("abcd", 1.0)
    assert result["chance"] == 1 / L


def test_identical_priors_generate_at_chance():
    torch.manual_seed(0)
    result = class_generation_accuracy(_analysis(0.0), samples_per_class=2000)
    assert abs(result["requested_class_rate_mean"] - 1 / L) < 0.03
