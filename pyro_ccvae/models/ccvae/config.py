"""The CCVAE's settings: the ``model`` section of a run's config when ``model.name`` is ``ccvae``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...choices import JENSEN_ESTIMATORS, LIKELIHOODS  # the names only: this module imports no torch
from ...fields import check_positive, option

#: ``q(y_i | z_c^i)``: the paper's per-label logistic classifier, or the Bayes classifier of the
#: conditional prior (:class:`~pyro_ccvae.models.ccvae.guides.base.PriorClassifier`).
LABEL_CLASSIFIERS = ("linear", "prior")


def model_names() -> tuple[str, ...]:
    """The registered model families (for ``--model``; read when the CLI is built)."""
    from .. import MODELS

    return tuple(MODELS)


@dataclass
class CCVAEConfig:
    """The CCVAE's settings (DESIGN.md §1-2)."""

    name: str = option("ccvae", flag="--model", group="model", help="The model family.", choices=model_names)
    #: None: the data set's default (:mod:`pyro_ccvae.dataset_defaults`).
    z_style_dim: Optional[int] = option(None, group="model", help="d_s, the style latent's dims; default: the data set's (27 for CelebA and CheXpert as in the paper, 4 for the digit sets).")
    z_char_dim: Optional[int] = option(None, group="model", help="d_c, latent dims per label; default: the data set's (1 as in the paper, 4 for the digit sets).")
    #: None: the data set's default (:mod:`pyro_ccvae.dataset_defaults`).
    likelihood: Optional[str] = option(None, group="model", help="p(x|z); default: the data set's (see the README). The paper: laplace.", choices=tuple(LIKELIHOODS))
    #: None (this and the two below): the data set's default (:mod:`pyro_ccvae.dataset_defaults`).
    label_classifier: Optional[str] = option(
        None, choices=LABEL_CLASSIFIERS,
        group="objective", help="q(y|z_c): linear, the paper's per-label logistic classifier; prior, the Bayes classifier of p(z_c|y) p(y) "
        "(classifier and conditional prior one object). Default: the data set's (prior for the digit sets, linear otherwise).",
    )  # fmt: skip
    k_samples: int = option(100, group="objective", help="Samples of z_c for q(y|x).")
    jensen: str = option("exact", group="objective", help="Unsupervised term: exact sum over y, or the authors' one-sample estimate.", choices=JENSEN_ESTIMATORS)
    detach_classifier_input: bool = option(
        True, flag="--detach-classifier-input/--reparameterised-classifier",
        group="objective", help="Stop the gradient of z_c into the main term's q(y|z_c) as the paper does; the other is the ablation.",
    )  # fmt: skip
    #: see :class:`pyro_ccvae.elbo.CCVAE_ELBO`; the paper's objective is ``False`` and ``1.0``.
    detach_weight_denominator: bool = option(
        True, flag="--detach-weight-denominator/--weight-denominator-gradient",
        group="objective", help="Stop the gradient through q(y_o|x) in w's denominator; the paper keeps it.",
    )  # fmt: skip
    detach_weight: Optional[bool] = option(
        None, flag="--detach-weight/--weight-gradient",
        group="objective", help="Stop every gradient through the supervised weight w = q(y_o|z_c) / q(y_o|x) (the paper keeps them). "
        "Default: the data set's (detached for the digit sets, gradient otherwise).",
    )  # fmt: skip
    classifier_weight: Optional[float] = option(
        None, group="objective", help="alpha, the weight of log q(y_o|x); the paper: 1. Default: the data set's (100 for the digit sets, 1000 otherwise)."
    )
    #: the conditional prior and a learned likelihood scale learn at ``lr * prior_lr_factor`` (the paper: 1).
    prior_lr_factor: float = option(
        10.0, group="optimisation", help="The conditional prior and a learned likelihood scale learn at lr times this; the paper: 1."
    )

    def __post_init__(self) -> None:
        check_positive(self, "k_samples", "z_style_dim", "z_char_dim", "classifier_weight", "prior_lr_factor")
