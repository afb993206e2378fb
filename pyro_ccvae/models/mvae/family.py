"""MVAE's :class:`~pyro_ccvae.models.base.ModelFamily`, registered as ``--model mvae``."""
from __future__ import annotations

import torch

from ...likelihoods import build_likelihood
from ...nets import ConvDecoder
from ..registry import register_model
from ..common import BaselineFamily
from ...data.label_spec import info_num_classes
from ..ccvae.config import PAPER as CCVAE_PAPER
from .config import MVAEConfig
from .elbo import mvae_elbo
from .model import MVAEGuide, MVAEModel
from .representation import MVAERepresentation


class MVAEFamily(BaselineFamily):
    """MVAE: one latent, a product of experts over the observed modalities."""

    name = "mvae"
    config_class = MVAEConfig

    def build(self, config: MVAEConfig, guide: str, info: dict):
        """The model and guide; ``z_dim = None`` is resolved here (``L + 27``) and written back
        into ``config``, so the run's ``config.json`` records it."""
        self.check_guide_name(guide)
        num_classes = info_num_classes(info)
        if config.z_dim is None:
            # the CCVAE paper's total latent size, L * d_c + d_s
            config.z_dim = len(num_classes) * CCVAE_PAPER.z_char_dim + CCVAE_PAPER.z_style_dim
        likelihood = build_likelihood(config.likelihood, info["channels"])
        decoder = ConvDecoder(config.z_dim, info["channels"], info["image_size"])
        model = MVAEModel(
            num_classes, config.z_dim, likelihood, decoder,
            beta=config.mvae_beta, image_weight=config.mvae_image_weight, label_weight=config.mvae_label_weight,
        )  # fmt: skip
        return model, MVAEGuide(num_classes, config.z_dim, info["channels"], info["image_size"], beta=config.mvae_beta)

    def prepare(self, model: MVAEModel, labels: torch.Tensor, mask: torch.Tensor) -> None:
        model.set_label_prior(labels, mask)

    def before_step(self, model: MVAEModel, guide: MVAEGuide, config: MVAEConfig, step: int, steps_per_epoch: int) -> None:
        """The KL warm-up: ``beta`` times ``min(1, step / (warm-up epochs x steps per epoch))``."""
        steps = config.mvae_kl_warmup_epochs * steps_per_epoch
        model.kl_annealing = guide.kl_annealing = min(1.0, step / steps) if steps > 0 else 1.0

    def objective(self, config: MVAEConfig):
        return mvae_elbo()

    def representation(self, model, guide, info: dict, device: torch.device, config: MVAEConfig = None) -> MVAERepresentation:
        return MVAERepresentation(model, guide, info["label_names"], info_num_classes(info), device)


register_model(MVAEFamily())
