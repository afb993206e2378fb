"""The CCVAE's settings: the ``model`` section of a run's config when ``model.name`` is ``ccvae``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...choices import JENSEN_ESTIMATORS  # the names only: this module imports no torch
from ...fields import check_positive, option
from ..config_base import CharacteristicConfig

#: ``q(y_i | z_c^i)``: the paper's per-label logistic classifier, or the Bayes classifier of the
#: conditional prior (:class:`~pyro_ccvae.models.ccvae.guides.base.PriorClassifier`).
LABEL_CLASSIFIERS = ("linear", "prior")


@dataclass
class CCVAEConfig(CharacteristicConfig):
    """The CCVAE's settings (docs/models.md). The defaults are this library's (measured per data
    set: :mod:`pyro_ccvae.models.dataset_defaults`); :meth:`paper` gives the paper's."""

    #: None (this and the two below): the data set's default (:mod:`pyro_ccvae.models.dataset_defaults`).
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
    #: see :class:`pyro_ccvae.elbo.CCVAE_ELBO`; the paper's objective: :meth:`paper`.
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

    def __post_init__(self) -> None:
        check_positive(self, "k_samples", "classifier_weight")
        super().__post_init__()

    @classmethod
    def paper(cls, **changes) -> "CCVAEConfig":
        """The paper's settings (Joy et al., 2021, appendix C), with ``changes`` on top.

        Its objective is the bound itself, which is what :class:`~pyro_ccvae.elbo.CCVAE_ELBO`
        computes when built without arguments: ``alpha = 1`` and every gradient through the weight
        ``w`` kept. Its model has one dim per label, a 27-dim ``z_s``, the per-label logistic
        classifier and the unit-scale Laplace likelihood, and everything learns at one rate. The
        library's defaults differ where training on real images measured better (docs/training.md, *Defaults
        per data set*): with the bound's gradients, ``|log p(x|z)|`` of thousands of nats scales
        the classification signal through ``w``'s denominator, so the encoder learns the labels at
        a strength that depends on the likelihood; the defaults detach it and weight
        ``log q(y_o|x)`` by 100 or 1000 instead. ``jensen`` stays ``exact``: the paper's eq. (5)
        is the expectation, which the authors' code estimates with one sample (``sampled``).
        """
        settings = dict(
            z_style_dim=27, z_char_dim=1, likelihood="laplace", label_classifier="linear",
            detach_weight_denominator=False, detach_weight=False, classifier_weight=1.0, prior_lr_factor=1.0,
        )  # fmt: skip
        return cls(**{**settings, **changes})


#: the paper's settings, for defaults that are the paper's (the objective's, the model's); read
#: it, never change it (:meth:`CCVAEConfig.paper` builds a config of one's own).
PAPER = CCVAEConfig.paper()
