"""What a run uses, per data set, for the options the user does not give: the image size, the
likelihood ``p(x | z)`` and the latent sizes. Importing this module imports neither torch nor Pyro.

Each entry was chosen on real images of that kind and says why (README, *Defaults per data set*
has the measurements and the commands that give them):

- ``mnist``, ``fashion-mnist``, ``digits``: near-binary strokes on a black background. A
  Laplace or Gaussian likelihood, fixed or learned, rewards the median pixel (black) almost as much
  as the digit, and decoders learn black images; the Bernoulli cross-entropy does not. One label
  of ten classes needs room to place ten class clusters apart: ``d_c = 4``. A small ``z_s`` keeps
  the class out of the style latent (a 27-dim ``z_s`` carries the digit as well as ``z_c``).
- ``shapes``: flat colours on a plain background, binary labels; the learned Laplace scale
  sharpens to the small reconstruction error. One dim per label as in the paper, and a ``z_s``
  large enough for the factors no label names (position, hue, stripes' phase).
- ``celeba``, ``chexpert``: the paper's settings (appendix C): 64 px, one dim per label, a 27-dim
  ``z_s``, and a Laplace likelihood, here with a learned scale (the unit scale of the paper is
  weak on ``[0, 1]`` pixels: see :mod:`pyro_ccvae.likelihoods`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetDefaults:
    """The defaults of one data set (see the module doc for the reasons)."""

    image_size: int
    likelihood: str
    #: ``d_c``, latent dims per label (the CCVAE's and DIVA's ``--z-char-dim``).
    z_char_dim: int
    #: ``d_s`` (every family's ``--z-style-dim``; MVAE's ``z`` is ``L * d_c + d_s``).
    z_style_dim: int


#: the settings of a family's config that ``None`` leaves to the data set.
DATASET_SETTINGS = ("likelihood", "z_char_dim", "z_style_dim")

_DIGITS = DatasetDefaults(image_size=32, likelihood="bernoulli", z_char_dim=4, z_style_dim=4)
#: the paper's settings, for data sets not listed.
PAPER = DatasetDefaults(image_size=64, likelihood="laplace-learned", z_char_dim=1, z_style_dim=27)

DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "mnist": _DIGITS,
    "fashion-mnist": _DIGITS,
    "digits": _DIGITS,
    "shapes": DatasetDefaults(image_size=32, likelihood="laplace-learned", z_char_dim=1, z_style_dim=27),
    "celeba": PAPER,
    "chexpert": PAPER,
}


def dataset_defaults(name: str) -> DatasetDefaults:
    """The defaults of data set ``name`` (the paper's for a data set not listed)."""
    return DATASET_DEFAULTS.get(name, PAPER)
