"""DIVA's settings: the ``model`` section of a run's config when ``model.name`` is ``diva``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...fields import check_positive, option
from ...choices import LIKELIHOODS
from ..ccvae.config import model_names


@dataclass
class DIVAConfig:
    """The modified DIVA of the CCVAE paper's appendix C.4 (after Ilse, Tomczak, Louizos &
    Welling, "DIVA: Domain Invariant Variational Autoencoders", 2019), on the CCVAE's networks,
    likelihood and latent layout (``d_c`` per label, ``d_s`` style).

    Defaults from Ilse et al.'s rotated-MNIST experiments (their code,
    ``paper_experiments/rotated_mnist/supervised/experiment_only_sup_diva.py``): ``beta = 1`` and
    the class classifier's weight ``alpha_y = 3500`` (their semi-supervised script uses 7000).
    Their linear warm-up of ``beta`` from 0 over 100 epochs is not implemented.
    """

    name: str = option("diva", flag="--model", group="model", help="The model family.", choices=model_names)
    #: None: the data set's default (:mod:`pyro_ccvae.dataset_defaults`).
    z_style_dim: Optional[int] = option(None, group="model", help="d_s, the style latent's dims; default: the data set's (27 for CelebA and CheXpert as in the paper, 4 for the digit sets).")
    z_char_dim: Optional[int] = option(None, group="model", help="d_c, latent dims per label; default: the data set's (1 as in the paper, 4 for the digit sets).")
    #: None: the data set's default (:mod:`pyro_ccvae.dataset_defaults`).
    likelihood: Optional[str] = option(None, group="model", help="p(x|z); default: the data set's.", choices=tuple(LIKELIHOODS))
    diva_beta: float = option(1.0, group="diva", help="DIVA's beta, the weight of its KL and label-prior terms (Ilse et al.: 1).")
    diva_alpha: float = option(3500.0, group="diva", help="DIVA's alpha_y, the weight of log q(y|z_c) on labelled points (Ilse et al.: 3500).")
    prior_lr_factor: float = option(10.0, group="optimisation", help="The conditional prior and a learned likelihood scale learn at lr times this.")

    def __post_init__(self) -> None:
        check_positive(self, "z_style_dim", "z_char_dim", "diva_beta", "prior_lr_factor")
        if self.diva_alpha < 0:
            raise ValueError(f"--diva-alpha must be at least 0, got {self.diva_alpha}")
