"""The CCVAE's :class:`~pyro_ccvae.models.base.ModelFamily`: how training builds, checks and
optimises it, and its representation for analysis; registered as ``--model ccvae``."""
from __future__ import annotations

from typing import Optional

import torch

from ...data.label_spec import info_num_classes
from ...likelihoods import build_likelihood
from ...nets import ConvDecoder
from ..registry import register_model
from ..base import ModelFamily
from .config import CCVAEConfig
from .elbo import CCVAE_ELBO
from .guides import GUIDES, build_guide, check_guide, guide_options, tie_classifier
from .model import CCVAEModel
from .representation import CCVAERepresentation


#: parameters of distributions (not of networks) that learn at ``lr * prior_lr_factor``.
FAST_PARAMETERS = ("model.conditional_prior.", "model.likelihood.")


class CCVAEFamily(ModelFamily):
    """The CCVAE: a conditional prior ``p(z_c | y)``, the diagonal classifier ``q(y | z_c)`` and
    the one ELBO for every label mask."""

    name = "ccvae"
    config_class = CCVAEConfig

    def builtin_guides(self):
        return tuple(GUIDES)

    def guide_options(self, guide: str, options: dict) -> dict:
        return guide_options(guide, options)

    def build(self, config: CCVAEConfig, guide: str, info: dict, guide_options: Optional[dict] = None):
        dims = dict(
            num_labels=len(info["label_names"]),
            num_classes=info_num_classes(info),
            z_char_dim=config.z_char_dim,
            z_style_dim=config.z_style_dim,
            channels=info["channels"],
            image_size=info["image_size"],
        )
        # Built in this order (likelihood, decoder, model, guide), the networks start from the
        # same random numbers as before the families existed: seeded runs stay the same.
        likelihood = build_likelihood(config.likelihood, dims["channels"])
        decoder = ConvDecoder(dims["num_labels"] * config.z_char_dim + config.z_style_dim, dims["channels"], dims["image_size"])
        model = CCVAEModel(
            dims["num_labels"], dims["channels"], dims["image_size"], config.z_style_dim, config.z_char_dim,
            likelihood=likelihood, decoder=decoder, num_classes=dims["num_classes"],
        )  # fmt: skip
        guide = build_guide(guide, guide_options, **dims)
        if config.label_classifier == "prior":
            tie_classifier(guide, model)
        return model, guide

    def prepare(self, model: CCVAEModel, labels: torch.Tensor, mask: torch.Tensor) -> None:
        model.set_label_prior(labels, mask)

    def check(self, model, guide, x, y, mask) -> None:
        check_guide(model, guide, x, y, mask)

    def objective(self, config: CCVAEConfig) -> CCVAE_ELBO:
        return CCVAE_ELBO(
            k_samples=config.k_samples,
            jensen=config.jensen,
            detach_classifier_input=config.detach_classifier_input,
            detach_weight_denominator=config.detach_weight_denominator,
            detach_weight=config.detach_weight,
            classifier_weight=config.classifier_weight,
        )

    def learning_rate_factor(self, config: CCVAEConfig, param_name: str) -> float:
        # Adam moves a parameter by about lr per step, whatever its gradient: at lr 1e-3 the
        # prior's locations travel ~3 units in 3000 steps while the posterior means of z_c move
        # ten, and a learned likelihood scale needs hundreds of steps to leave its start at 1.
        return config.prior_lr_factor if param_name.startswith(FAST_PARAMETERS) else 1.0

    def representation(self, model, guide, info: dict, device: torch.device, config: CCVAEConfig = None) -> CCVAERepresentation:
        return CCVAERepresentation(model, guide, info["label_names"], device, k_samples=(config or CCVAEConfig()).k_samples)


register_model(CCVAEFamily())
