"""A fast single-device path: bf16 autocast and ``torch.compile`` for the conv networks.

Every model family builds its image networks from :mod:`pyro_ccvae.nets` (the Higgins et al.
:class:`~pyro_ccvae.nets.ConvEncoder` and :class:`~pyro_ccvae.nets.ConvDecoder`), where nearly
all of a step's arithmetic is. :func:`accelerate` changes only those modules, in place:

- ``--precision bf16``: their ``forward`` runs under ``torch.autocast(dtype=torch.bfloat16)``
  (convolutions and linear layers in bf16) and returns fp32, so the distributions, the
  log-densities and the ELBO are computed in fp32 as before. bf16 keeps 8 bits of mantissa: a
  decoder mean near 0 or 1 is coarser, and that reaches ``log p(x | z)``. So bf16 is accepted
  only while it measurably agrees with fp32: :func:`precision_gap` evaluates the objective on a
  fixed batch with the same random numbers in both precisions, and training stops (with a
  one-line error; ``--resume --precision fp32`` continues) when the relative difference exceeds
  :data:`BF16_ELBO_TOLERANCE`. It runs before the first step and after every epoch, and its value
  is in ``metrics.jsonl`` (``bf16_elbo_gap``).
- ``--compile``: each network is compiled with ``torch.compile`` (``nn.Module.compile``, so the
  state dict and the checkpoints keep their names). The first steps pay the compilation.

Neither changes a module's parameters or buffers, so checkpoints are the same as fp32 eager
ones, and a run can be resumed with other settings.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from .choices import PRECISIONS
from .errors import UserError
from .nets import ConvDecoder, ConvEncoder

#: the largest accepted ``|ELBO_bf16 - ELBO_fp32| / |ELBO_fp32|`` on the check batch.
BF16_ELBO_TOLERANCE = 1e-3
#: the networks that :func:`accelerate` changes.
NETWORK_TYPES = (ConvEncoder, ConvDecoder)


class PrecisionError(UserError):
    """bf16 moved the objective too far from fp32; the message is one line."""


def networks(*modules: torch.nn.Module) -> list[torch.nn.Module]:
    """The shared conv networks inside ``modules`` (each once)."""
    found: dict[int, torch.nn.Module] = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, NETWORK_TYPES):
                found.setdefault(id(sub), sub)
    return list(found.values())


class _Autocast:
    """``forward`` under bf16 autocast with an fp32 result; ``enabled`` switches it (for :func:`precision_gap`)."""

    def __init__(self, forward: Callable, device_type: str):
        self.forward, self.device_type, self.enabled = forward, device_type, True
        functools.update_wrapper(self, forward)

    def __call__(self, *args, **kwargs):
        if not self.enabled:
            return self.forward(*args, **kwargs)
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.forward(*args, **kwargs)
        return out.float()


def accelerate(modules: tuple[torch.nn.Module, ...], device: torch.device, precision: str = "fp32", compile: bool = False) -> list[torch.nn.Module]:
    """Make the conv networks inside ``modules`` run in ``precision`` and/or compiled; returns them."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    nets = networks(*modules)
    for net in nets:
        if precision == "bf16" and not isinstance(net.forward, _Autocast):
            net.forward = _Autocast(net.forward, device.type)  # an instance attribute: nn.Module calls it
        if compile:
            net.compile()
    return nets


@contextmanager
def full_precision(nets: list[torch.nn.Module]) -> Iterator[None]:
    """Run ``nets`` (from :func:`accelerate`) in fp32 inside the block."""
    wrapped = [net.forward for net in nets if isinstance(net.forward, _Autocast)]
    for forward in wrapped:
        forward.enabled = False
    try:
        yield
    finally:
        for forward in wrapped:
            forward.enabled = True


def uses_bf16(nets: list[torch.nn.Module]) -> bool:
    return any(isinstance(net.forward, _Autocast) for net in nets)


@torch.no_grad()
def precision_gap(objective, model, guide, batch: tuple, nets: list[torch.nn.Module], seed: int) -> float:
    """``|L_bf16 - L_fp32| / |L_fp32|`` for the objective's loss on ``batch``, both evaluated
    with the same random numbers (the RNG is forked and seeded with ``seed`` for each)."""
    device = batch[0].device
    devices = [device] if device.type == "cuda" else []

    def loss() -> float:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return float(objective.loss(model, guide, *batch))

    low = loss()
    with full_precision(nets):
        full = loss()
    return abs(low - full) / max(abs(full), 1e-12)


def check_precision_gap(gap: float, when: str) -> None:
    """A one-line :class:`PrecisionError` when ``gap`` (from :func:`precision_gap`) is too large."""
    if not gap <= BF16_ELBO_TOLERANCE:  # also NaN
        raise PrecisionError(
            f"--precision bf16 moves the ELBO {100 * gap:.2g}% from fp32's on a fixed batch {when} "
            f"(at most {100 * BF16_ELBO_TOLERANCE:g}% is accepted); train (or --resume) with --precision fp32"
        )
