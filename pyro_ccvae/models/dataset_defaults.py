"""What a model uses, per data set, for the options the user does not give: the
likelihood ``p(x | z)``, the latent sizes and the CCVAE's classifier and classification weight.
Importing this module imports neither torch nor Pyro.

Each entry was chosen on real images of that kind and says why (docs/training.md, *Defaults per data set*
has the measurements and the commands that give them):

- ``mnist``, ``fashion-mnist``, ``digits``: near-binary strokes on a black background. A
  Laplace or Gaussian likelihood, fixed or learned, rewards the median pixel (black) almost as much
  as the digit, and decoders learn black images; the Bernoulli cross-entropy does not. One label
  of ten classes needs room to place ten class clusters apart: ``d_c = 4``. A small ``z_s`` keeps
  the class out of the style latent (a 27-dim ``z_s`` carries the digit as well as ``z_c``).
  The classifier is tied to the conditional prior (``--label-classifier prior``), so that a draw of
  ``p(z_c | y)`` is read as ``y`` and lies where the posteriors of class ``y`` lie; with the
  paper's linear classifier the class clusters of the posterior drift away from the prior's and
  generation from ``p(z_c | y)`` draws the requested digit a third of the time. The tied
  classifier needs the weight ``w`` detached (its gradient collapses the prior's scales) and
  ``alpha = 100`` (10 and 1000 generate worse).
- ``shapes``: flat colours on a plain background, binary labels; the learned Laplace scale
  sharpens to the small reconstruction error. One dim per label as in the paper, and a ``z_s``
  large enough for the factors no label names (position, hue, stripes' phase). The objective of
  the earlier measurements (the linear classifier, ``alpha = 1000``): the tied classifier with one
  dim per binary label reads the labels less well there.
- ``celeba``, ``chexpert``: the paper's settings (appendix C): one dim per label, a 27-dim
  ``z_s``, and a Laplace likelihood, here with a learned scale (the unit scale of the paper is
  weak on ``[0, 1]`` pixels: see :mod:`pyro_ccvae.likelihoods`).

The paper's settings are read from :meth:`~pyro_ccvae.models.ccvae.config.CCVAEConfig.paper`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ccvae.config import PAPER as PAPER_SETTINGS


@dataclass(frozen=True)
class DatasetDefaults:
    """The defaults of one data set (see the module doc for the reasons)."""

    likelihood: str
    #: ``d_c``, latent dims per label (the CCVAE's and DIVA's ``--z-char-dim``).
    z_char_dim: int
    #: ``d_s`` (the CCVAE's, DIVA's and M2's ``--z-style-dim``).
    z_style_dim: int
    #: the CCVAE's ``q(y | z_c)``, ``--label-classifier``.
    label_classifier: str
    #: the CCVAE's ``--detach-weight``.
    detach_weight: bool
    #: the CCVAE's ``--classifier-weight``.
    classifier_weight: float


#: the settings of a family's config that ``None`` leaves to the data set.
DATASET_SETTINGS = ("likelihood", "z_char_dim", "z_style_dim", "label_classifier", "detach_weight", "classifier_weight")

_DIGITS = DatasetDefaults(
    likelihood="bernoulli", z_char_dim=4, z_style_dim=4,
    label_classifier="prior", detach_weight=True, classifier_weight=100.0,
)  # fmt: skip
#: the paper's networks, latent sizes and classifier with the objective measured best on ``shapes``.
PAPER = DatasetDefaults(
    likelihood="laplace-learned", classifier_weight=1000.0,
    **{name: getattr(PAPER_SETTINGS, name) for name in ("z_char_dim", "z_style_dim", "label_classifier", "detach_weight")},
)  # fmt: skip

DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "mnist": _DIGITS,
    "fashion-mnist": _DIGITS,
    "digits": _DIGITS,
    "shapes": PAPER,
    "celeba": PAPER,
    "chexpert": PAPER,
}


def dataset_defaults(name: str) -> DatasetDefaults:
    """The defaults of data set ``name`` (the paper's for a data set not listed)."""
    return DATASET_DEFAULTS.get(name, PAPER)
