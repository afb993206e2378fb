"""DIVA's :class:`~pyro_ccvae.models.base.ModelFamily`, registered as ``--model diva``."""
from __future__ import annotations

import torch

from ...likelihoods import build_likelihood
from ...nets import ConvDecoder
from ..registry import register_model
from ..common import BaselineFamily
from ...data.label_spec import info_num_classes
from .config import DIVAConfig
from .elbo import diva_elbo
from .model import DIVAGuide, DIVAModel
from .representation import DIVARepresentation


class DIVAFamily(BaselineFamily):
    """DIVA: the CCVAE's latent layout, trained with DIVA's beta-weighted bounds and auxiliary classifier."""

    name = "diva"
    config_class = DIVAConfig
    fast_parameters = ("model.conditional_prior.", "model.likelihood.")

    def build(self, config: DIVAConfig, guide: str, info: dict):
        self.check_guide_name(guide)
        num_classes = info_num_classes(info)
        likelihood = build_likelihood(config.likelihood, info["channels"])
        decoder = ConvDecoder(len(num_classes) * config.z_char_dim + config.z_style_dim, info["channels"], info["image_size"])
        model = DIVAModel(num_classes, config.z_char_dim, config.z_style_dim, likelihood, decoder, beta=config.diva_beta)
        return model, DIVAGuide(
            num_classes, config.z_char_dim, config.z_style_dim, info["channels"], info["image_size"],
            beta=config.diva_beta, alpha=config.diva_alpha,
        )  # fmt: skip

    def prepare(self, model: DIVAModel, labels: torch.Tensor, mask: torch.Tensor) -> None:
        model.set_label_prior(labels, mask)

    def objective(self, config: DIVAConfig):
        return diva_elbo()

    def representation(self, model, guide, info: dict, device: torch.device, config: DIVAConfig = None) -> DIVARepresentation:
        return DIVARepresentation(model, guide, info["label_names"], device)


register_model(DIVAFamily())
