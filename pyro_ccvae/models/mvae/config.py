"""MVAE's settings: the ``model`` section of a run's config when ``model.name`` is ``mvae``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...fields import check_positive, option
from ..config_base import FamilyConfig, family_name
from ...errors import UserError


@dataclass
class MVAEConfig(FamilyConfig):
    """The MVAE (Wu & Goodman, "Multimodal Generative Models for Scalable Weakly-Supervised
    Learning", NeurIPS 2018) with the image and each label as a modality, on the CCVAE's
    networks and likelihood.

    Defaults from the authors' CelebA script with one expert per attribute
    (``celeba19/train.py`` of github.com/mhw32/multimodal-vae-public): ``lambda_image = 1`` and
    ``lambda_attrs = 10``, which that script applies in the joint ``ELBO(x, y)`` only (its
    single-label ELBOs are unweighted), ``beta = 1``, and its KL warm-up: every KL term weighted
    by ``min(1, t / T)`` at optimiser step ``t`` (counted from 1) of ``T`` = 20 epochs' steps.
    ``z_dim = None`` takes the CCVAE's total latent size ``L + 27``.
    """

    name: str = family_name("mvae")
    #: None: L + 27, resolved when the model is built (the run's config records the number).
    z_dim: Optional[int] = option(None, group="mvae", help="MVAE's latent dims (default: the number of labels + 27, the CCVAE's total).")
    mvae_image_weight: float = option(1.0, group="mvae", help="MVAE's lambda for log p(x|z) (Wu & Goodman: 1).")
    mvae_label_weight: float = option(10.0, group="mvae", help="MVAE's lambda for log p(y|z) in ELBO(x, y) (Wu & Goodman's CelebA: 10).")
    mvae_beta: float = option(1.0, group="mvae", help="MVAE's weight of every KL term (Wu & Goodman: 1 after warm-up).")
    mvae_kl_warmup_epochs: float = option(20.0, group="mvae", help="Epochs over which MVAE's KL weight rises linearly from 0 to beta (Wu & Goodman's CelebA: 20; 0: none).")

    def __post_init__(self) -> None:
        check_positive(self, "mvae_image_weight", "mvae_label_weight", "mvae_beta")
        super().__post_init__()
        if self.mvae_kl_warmup_epochs < 0:
            raise UserError(f"--mvae-kl-warmup-epochs must be at least 0, got {self.mvae_kl_warmup_epochs}")
        if self.z_dim is not None and self.z_dim <= 0:
            raise UserError(f"--z-dim must be positive, got {self.z_dim}")
