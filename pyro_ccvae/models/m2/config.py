"""M2's settings: the ``model`` section of a run's config when ``model.name`` is ``m2``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...fields import check_positive, option
from ..config_base import FamilyConfig, family_name
from ...errors import UserError

#: how M2 sums out the labels it does not see (see :mod:`.elbo`); ``auto`` is resolved when the
#: model is built and the run's config records the choice.
LABEL_SUMS = ("auto", "enumerate", "sampled")


@dataclass
class M2Config(FamilyConfig):
    """M2 (Kingma, Rezende, Mohamed & Welling, "Semi-supervised learning with deep generative
    models", NeurIPS 2014), on the CCVAE's networks and likelihood.

    Defaults: ``m2_alpha = 0.1`` is the paper's ``alpha = 0.1 N`` (section 3.1.2). The latent
    ``z`` has 27 dims on every data set, the CCVAE paper's ``d_s``, so that it plays the part of
    ``z_s`` at that size (Kingma et al. used 50 on MNIST); the 4-dim ``z_s`` the digit sets give the
    CCVAE collapsed M2's decoder (see :meth:`M2Family.fill_defaults`). The likelihood is the data set's.
    """

    name: str = family_name("m2")
    #: None: the CCVAE paper's ``d_s`` (:meth:`M2Family.fill_defaults`).
    z_style_dim: Optional[int] = option(None, group="model", help="d_s, the style latent's dims; default: 27 on every data set (the CCVAE paper's d_s).")
    label_sum: str = option(
        "auto", choices=LABEL_SUMS,
        group="m2", help="M2: sum unseen labels out exactly (enumerate), by a score-function estimate (sampled), "
        "or auto: enumerate up to --max-enumerated joint label configurations.",
    )  # fmt: skip
    max_enumerated: int = option(64, group="m2", help="M2 with --label-sum auto: the most joint label configurations it enumerates.")
    m2_alpha: float = option(0.1, group="m2", help="M2's alpha / N, the weight of log q(y|x) on labelled points (Kingma et al.: 0.1).")

    def __post_init__(self) -> None:
        check_positive(self, "z_style_dim", "max_enumerated")
        super().__post_init__()
        if self.m2_alpha < 0:
            raise UserError(f"--m2-alpha must be at least 0, got {self.m2_alpha}")
