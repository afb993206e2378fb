"""What every family's settings share: the base dataclasses of the ``model`` section of a run's
config. Each family's ``config.py`` subclasses one and adds only its own fields.

Like those modules this one imports neither torch nor Pyro (the command line is built from the
config dataclasses before anything heavy is imported: docs/benchmarks.md, Start-up time).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..choices import LIKELIHOODS
from ..fields import check_positive, option


def model_names() -> tuple[str, ...]:
    """The registered model families (for ``--model``; read when the command line is built)."""
    from . import MODELS

    return tuple(MODELS)


def family_name(name: str):
    """The ``name`` field of a family's settings: ``--model``, defaulting to that family."""
    return option(name, flag="--model", group="model", help="The model family.", choices=model_names)


@dataclass
class FamilyConfig:
    """The settings every family has: its name, the likelihood ``p(x | z)`` and the learning-rate
    factor of its distribution parameters (so that every family trains them alike)."""

    name: str = family_name("ccvae")
    #: None: the data set's default (:mod:`pyro_ccvae.models.dataset_defaults`).
    likelihood: Optional[str] = option(None, group="model", help="p(x|z); default: the data set's (docs/objective.md, Likelihoods). The CCVAE paper: laplace.", choices=tuple(LIKELIHOODS))
    #: the distributions' parameters (the CCVAE's and DIVA's conditional prior, a learned
    #: likelihood scale) learn at ``lr * prior_lr_factor``.
    prior_lr_factor: float = option(
        10.0, group="optimisation", help="The conditional prior and a learned likelihood scale learn at lr times this; the CCVAE paper: 1."
    )

    def __post_init__(self) -> None:
        check_positive(self, "prior_lr_factor")


@dataclass
class CharacteristicConfig(FamilyConfig):
    """The settings of a family with the CCVAE's latent layout: ``d_c`` dims per label (``z_c``)
    and ``d_s`` style dims (``z_s``); the CCVAE and DIVA."""

    #: None (this and the next): the data set's default (:mod:`pyro_ccvae.models.dataset_defaults`).
    z_style_dim: Optional[int] = option(None, group="model", help="d_s, the style latent's dims; default: the data set's (27 for CelebA and CheXpert as in the paper, 4 for the digit sets).")
    z_char_dim: Optional[int] = option(None, group="model", help="d_c, latent dims per label; default: the data set's (1 as in the paper, 4 for the digit sets).")

    def __post_init__(self) -> None:
        check_positive(self, "z_style_dim", "z_char_dim")
        super().__post_init__()
