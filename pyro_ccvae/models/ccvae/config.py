"""The CCVAE's settings: the ``model`` section of a run's config when ``model.name`` is ``ccvae``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...choices import JENSEN_ESTIMATORS, LIKELIHOODS  # the names only: this module imports no torch
from ...fields import check_positive, option


def model_names() -> tuple[str, ...]:
    """The registered model families (for ``--model``; read when the CLI is built)."""
    from .. import MODELS

    return tuple(MODELS)


@dataclass
class CCVAEConfig:
    """The CCVAE's settings (DESIGN.md §1-2)."""

    name: str = option("ccvae", flag="--model", help="The model family.", choices=model_names)
    z_style_dim: int = option(27, help="d_s, the style latent's dims.")
    z_char_dim: int = option(1, help="d_c, latent dims per label.")
    #: None: the data set's default (:data:`pyro_ccvae.likelihoods.DEFAULT_LIKELIHOODS`).
    likelihood: Optional[str] = option(None, help="p(x|z); default: the data set's (see the README). The paper: laplace.", choices=tuple(LIKELIHOODS))
    k_samples: int = option(100, help="Samples of z_c for q(y|x).")
    jensen: str = option("exact", help="Unsupervised term: exact sum over y, or the authors' one-sample estimate.", choices=JENSEN_ESTIMATORS)
    detach_classifier_input: bool = option(
        True, flag="--detach-classifier-input/--reparameterised-classifier",
        help="Stop the gradient of z_c into the main term's q(y|z_c) as the paper does; the other is the ablation.",
    )  # fmt: skip
    #: see :class:`pyro_ccvae.elbo.CCVAE_ELBO`; the paper's objective is ``False`` and ``1.0``.
    detach_weight_denominator: bool = option(
        True, flag="--detach-weight-denominator/--weight-denominator-gradient",
        help="Stop the gradient through q(y_o|x) in w's denominator; the paper keeps it.",
    )  # fmt: skip
    classifier_weight: float = option(1000.0, help="alpha, the weight of log q(y_o|x); the paper: 1.")
    #: the conditional prior and a learned likelihood scale learn at ``lr * prior_lr_factor`` (the paper: 1).
    prior_lr_factor: float = option(
        10.0, help="The conditional prior and a learned likelihood scale learn at lr times this; the paper: 1."
    )

    def __post_init__(self) -> None:
        check_positive(self, "k_samples", "z_style_dim", "z_char_dim", "classifier_weight", "prior_lr_factor")
