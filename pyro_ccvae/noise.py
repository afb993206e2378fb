"""Keyed noise (``--noise keyed``): latent noise that does not depend on how many processes share a batch.

With the default ``--noise global``, each process draws from its own torch RNG stream, so the
noise a data point gets depends on which process computes it, and a run with N processes is a
different (equally valid) random trajectory from a run with one. With ``--noise keyed``, every
**standard-normal draw of a reparameterised sample site inside the data plate** — the guide's
latents, such as the CCVAE's ``z_c`` and ``z_s`` — and of **every later** ``rsample`` **of that
site's distribution** — such as the CCVAE objective's K extra samples of ``z_c`` for
``q(y_o | x)`` — comes from generators keyed by ``(seed, epoch, batch number, draw number)``:

- the draw is made at the shape of the *whole* batch (the data plate's dimension at its global
  size) and each process keeps the slice of its shard, so the point at position ``j`` of batch
  ``b`` of epoch ``e`` gets the same noise whether one process computes its loss or N do. Since
  an epoch's order and batches are fixed by the seed, this is noise keyed by (seed, epoch,
  point). With it, the gradient that N processes sum equals one process's gradient on the same
  batch up to floating-point summation order (``tests/test_distributed.py`` checks both the
  gradient and the parameters after several steps);
- the draws are counted in the order the model, guide and objective make them, which is the
  same in every process;
- a resumed run draws the same noise again, whatever the RNG state.

Not covered, and drawn from each process's own stream: non-Gaussian draws (a sampled discrete
label, as in the CCVAE's ``--jensen sampled`` or M2's score-function estimator) and sites
outside the data plate. Noise is located by the data plate's dimension, so a site whose
distribution is expanded over the data plate after sampling (``ExpandedDistribution``) cannot
be keyed: it stops with a one-line :class:`NoiseError`.

Cost: each process draws the noise of the whole batch and keeps 1/N of it (a few million
normals per step at batch 1024 with K = 100, on the device), and each draw is the sum of two
32-bit-seeded streams over sqrt(2), because a CPU generator takes only 32 bits of its seed.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Iterator, Optional

import torch
from pyro.poutine.messenger import Messenger
from torch.overrides import TorchFunctionMode

from .choices import NOISE_CHOICES
from .errors import UserError

#: every family's data plate (docs/contracts.md, Sites and plates: ``pyro.plate("data")``).
DATA_PLATE = "data"

_MASK64 = (1 << 64) - 1


class NoiseError(UserError):
    """A draw that keyed noise cannot place; the message is one line."""


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def mix_key(*parts: int) -> int:
    """A 64-bit key from integers (splitmix64 over each in turn): nearby inputs give unrelated keys."""
    key = 0
    for part in parts:
        key = _splitmix64(key ^ (part & _MASK64))
    return key


class KeyedNoise:
    """The noise streams of a run with ``--noise keyed`` (see the module doc).

    ``with noise.batch(epoch, number, offset, count, size): svi.step(...)`` keys the step's
    draws; the process's shard holds the ``count`` points from ``offset`` of a batch of ``size``.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[torch.device, tuple[torch.Generator, torch.Generator]] = {}

    def generators(self, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
        if device not in self._generators:
            self._generators[device] = (torch.Generator(device=device), torch.Generator(device=device))
        return self._generators[device]

    @contextmanager
    def batch(self, epoch: int, number: int, offset: int, count: int, size: int) -> Iterator[None]:
        with _KeyedBatch(self, mix_key(self.seed, epoch, number), offset, count, size):
            yield


def noise_for(name: str, seed: int) -> Optional[KeyedNoise]:
    """The :class:`KeyedNoise` of ``--noise keyed``; ``None`` for ``global`` (each process's RNG)."""
    if name not in NOISE_CHOICES:
        raise UserError(f"--noise must be one of {', '.join(NOISE_CHOICES)}, got {name!r}")
    return KeyedNoise(seed) if name == "keyed" else None


def batch_noise(noise: Optional[KeyedNoise], epoch: int, number: int, offset: int, count: int, size: int):
    """``noise.batch(...)``, or nothing to do for global noise."""
    return nullcontext() if noise is None else noise.batch(epoch, number, offset, count, size)


class _KeyedBatch(Messenger):
    """Gives every reparameterised site in the data plate an ``rsample`` whose standard normals
    are keyed (the distribution object keeps it, so the objective's later draws are keyed too)."""

    def __init__(self, noise: KeyedNoise, key: int, offset: int, count: int, size: int):
        super().__init__()
        self.noise, self.key, self.offset, self.count, self.size = noise, key, offset, count, size
        self.draws = 0

    def _pyro_sample(self, msg) -> None:
        fn = msg["fn"]
        if msg["is_observed"] or msg["value"] is not None or not getattr(fn, "has_rsample", False):
            return
        frame = next((f for f in msg["cond_indep_stack"] if f.name == DATA_PLATE and f.dim is not None), None)
        if frame is None or getattr(fn.rsample, "_keyed", False):
            return
        # The data plate's dim counts batch dims from the right; a draw of the site's
        # distribution has its event dims after them (also for sample shapes in front).
        dim_from_right = frame.dim - fn.event_dim
        original, batch, site = fn.rsample, self, msg["name"]

        def rsample(sample_shape=torch.Size()):
            with _KeyedNormals(batch, site, dim_from_right):
                return original(sample_shape)

        rsample._keyed = True
        fn.rsample = rsample

    def normals(self, site: str, shape: torch.Size, dim_from_right: int, dtype, device) -> torch.Tensor:
        """Keyed standard normals of ``shape`` (this process's shard along the data dim)."""
        dim = len(shape) + dim_from_right
        if dim < 0 or shape[dim] != self.count:
            raise NoiseError(
                f"--noise keyed: site {site!r} draws normals of shape {tuple(shape)}, which do not have the data "
                f"plate's {self.count} points at dim {dim_from_right}; this guide cannot use keyed noise, train with --noise global"
            )
        whole = (*shape[:dim], self.size, *shape[dim + 1 :])
        first, second = self.noise.generators(torch.device(device))
        key = mix_key(self.key, self.draws)
        self.draws += 1
        # A CPU generator keeps 32 bits of its seed: two streams seeded by the key's halves,
        # summed and scaled back to unit variance, stay distinct across 2^64 keys.
        first.manual_seed(key & 0xFFFFFFFF)
        second.manual_seed(key >> 32)
        noise = torch.randn(whole, generator=first, dtype=dtype, device=device)
        noise.add_(torch.randn(whole, generator=second, dtype=dtype, device=device)).div_(math.sqrt(2.0))
        return noise.narrow(dim, self.offset, shape[dim])


class _KeyedNormals(TorchFunctionMode):
    """While a keyed ``rsample`` runs: ``Tensor.normal_()`` (how torch.distributions draws its
    standard normals) fills from the keyed streams."""

    def __init__(self, batch: _KeyedBatch, site: str, dim_from_right: int):
        super().__init__()
        self.batch, self.site, self.dim_from_right = batch, site, dim_from_right

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.normal_ and _is_standard(args, kwargs):
            out = args[0]
            with torch.no_grad():
                out.copy_(self.batch.normals(self.site, out.shape, self.dim_from_right, out.dtype, out.device))
            return out
        return func(*args, **kwargs)


def _is_standard(args, kwargs) -> bool:
    mean = args[1] if len(args) > 1 else kwargs.get("mean", 0.0)
    std = args[2] if len(args) > 2 else kwargs.get("std", 1.0)
    return mean == 0 and std == 1 and kwargs.get("generator") is None
