"""DIVA's settings: the ``model`` section of a run's config when ``model.name`` is ``diva``."""
from __future__ import annotations

from dataclasses import dataclass

from ...fields import check_positive, option
from ..config_base import CharacteristicConfig, family_name
from ...errors import UserError


@dataclass
class DIVAConfig(CharacteristicConfig):
    """The modified DIVA of the CCVAE paper's appendix C.4 (after Ilse, Tomczak, Louizos &
    Welling, "DIVA: Domain Invariant Variational Autoencoders", 2019), on the CCVAE's networks,
    likelihood and latent layout (``d_c`` per label, ``d_s`` style).

    Defaults from Ilse et al.'s rotated-MNIST experiments (their code,
    ``paper_experiments/rotated_mnist/supervised/experiment_only_sup_diva.py``): ``beta = 1`` and
    the class classifier's weight ``alpha_y = 3500`` (their semi-supervised script uses 7000).
    Their linear warm-up of ``beta`` from 0 over 100 epochs is not implemented.
    """

    name: str = family_name("diva")
    diva_beta: float = option(1.0, group="diva", help="DIVA's beta, the weight of its KL and label-prior terms (Ilse et al.: 1).")
    diva_alpha: float = option(3500.0, group="diva", help="DIVA's alpha_y, the weight of log q(y|z_c) on labelled points (Ilse et al.: 3500).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "diva_beta")
        if self.diva_alpha < 0:
            raise UserError(f"--diva-alpha must be at least 0, got {self.diva_alpha}")
