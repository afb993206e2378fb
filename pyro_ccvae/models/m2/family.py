"""M2's :class:`~pyro_ccvae.models.base.ModelFamily`, registered as ``--model m2``."""
from __future__ import annotations

import torch

from ...likelihoods import build_likelihood
from ...nets import ConvDecoder
from ..registry import register_model
from ..common import BaselineFamily
from ...data.label_spec import info_num_classes
from ..dataset_defaults import PAPER as PAPER_DEFAULTS
from ...errors import UserError
from .config import M2Config
from .elbo import joint_configurations, m2_elbo, resolve_label_sum
from .model import M2Guide, M2Model
from .representation import M2Representation


class M2Family(BaselineFamily):
    """M2: the labels as latent variables beside ``z``, summed out where unseen."""

    name = "m2"
    config_class = M2Config

    def build(self, config: M2Config, guide: str, info: dict):
        """The model and guide for the data's label spec. ``label_sum = "auto"`` is resolved here
        and written back into ``config``, so the run's ``config.json`` records the estimator."""
        self.check_guide_name(guide)
        num_classes = info_num_classes(info)
        config.label_sum = resolve_label_sum(config.label_sum, num_classes, config.max_enumerated)
        if config.label_sum == "enumerate" and joint_configurations(num_classes) > 4096:
            raise UserError(
                f"--label-sum enumerate would decode {joint_configurations(num_classes)} label configurations per image; "
                "use --label-sum sampled"
            )
        likelihood = build_likelihood(config.likelihood, info["channels"])
        decoder = ConvDecoder(len(num_classes) * max(num_classes) + config.z_style_dim, info["channels"], info["image_size"])
        model = M2Model(num_classes, config.z_style_dim, likelihood, decoder, enumerate=config.label_sum == "enumerate")
        return model, M2Guide(
            num_classes, config.z_style_dim, info["channels"], info["image_size"],
            enumerate=config.label_sum == "enumerate", alpha=config.m2_alpha,
        )  # fmt: skip

    def fill_defaults(self, config: M2Config, dataset: str) -> None:
        """The data set's defaults, but M2's ``z`` keeps the paper's 27 dims everywhere: it is
        M2's only continuous latent, and the 4-dim ``z_s`` the digit sets give the CCVAE (to keep
        the class out of it) collapsed M2's decoder on ``digits`` (10 epochs, full supervision:
        reconstruction ratio 0.91, accuracy 0.25; with 27 dims 0.68 and 0.65)."""
        style_left = config.z_style_dim is None
        super().fill_defaults(config, dataset)
        if style_left:
            config.z_style_dim = PAPER_DEFAULTS.z_style_dim

    def prepare(self, model: M2Model, labels: torch.Tensor, mask: torch.Tensor) -> None:
        model.set_label_prior(labels, mask)

    def objective(self, config: M2Config):
        return m2_elbo(config.label_sum)  # resolved by :meth:`build`

    def representation(self, model, guide, info: dict, device: torch.device, config: M2Config = None) -> M2Representation:
        return M2Representation(model, guide, info["label_names"], info_num_classes(info), device)


register_model(M2Family())
