"""The modified DIVA's model and guide (the CCVAE paper's appendix C.4).

The generative model is the CCVAE's, with categorical labels::

    y_i     ~ Categorical(pi_i)                          pi_i: class frequencies among labelled points
    z_c^i   ~ Normal(mu_psi^{i,y_i}, sigma_psi^{i,y_i})   the conditional prior, d_c dims per label
    z_s     ~ Normal(0, I)
    x       ~ p(x | decoder(z_c, z_s))

and so is the guide, ``q(z | x)`` mean-field from the conv encoder and the diagonal classifier
``q(y_i | z_c^i)``; what differs is the objective (:mod:`.elbo`), which the ``beta`` scales and
the classification factor written here carry. Sites are named in :mod:`.sites`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule

from ...likelihoods import Likelihood
from ...nets import ConvEncoder
from ..ccvae.guides.meanfield import MeanFieldEncoding
from ..ccvae.model import merge_characteristic, site_decoder_input
from ..common import guess_label, observe_label
from ..labels import ConditionalPrior, DiagonalClassifier, class_frequencies, class_mask, fill_labels, padded_log_probs
from . import sites
from .config import DIVAConfig


class DIVAModel(PyroModule):
    """``p(y) p(z_c | y) p(z_s) p(x | z)``; ``beta`` scales every site but ``x`` (the KL and
    label-prior terms of DIVA's bound).

    :param num_classes: ``K_i`` per label; :param z_char_dim: ``d_c``; :param z_style_dim: ``d_s``.
    :param likelihood: the :class:`~pyro_ccvae.likelihoods.Likelihood` of ``x``.
    :param decoder: ``[..., L d_c + d_s] -> decoder output [..., C, S, S]``.
    :param beta: DIVA's ``beta``.
    """

    def __init__(
        self, num_classes: Sequence[int], z_char_dim: int, z_style_dim: int, likelihood: Likelihood,
        decoder: torch.nn.Module, beta: float = DIVAConfig.diva_beta,
    ):  # fmt: skip
        super().__init__(name="model")
        self.num_classes, self.max_classes = list(num_classes), max(num_classes)
        self.num_labels, self.z_char_dim, self.z_style_dim, self.beta = len(num_classes), z_char_dim, z_style_dim, beta
        self.likelihood, self.decoder = likelihood, decoder
        self.conditional_prior = ConditionalPrior(num_classes, z_char_dim)
        empty = torch.zeros(0, self.num_labels)
        self.register_buffer("label_probs", class_frequencies(empty, empty.bool(), self.num_classes).float())
        self.register_buffer("valid", class_mask(self.num_classes), persistent=False)

    def label_log_probs(self) -> torch.Tensor:
        """``log p(y_i = k)`` ``[L, K]``, a label's missing classes at the finite :data:`~..labels.PAD_LOGIT`
        (so an enumerated padded class weighs ``0 * finite``, not ``0 * -inf``)."""
        return padded_log_probs(self.label_probs.log(), self.valid)

    def set_label_prior(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """``pi_i``: the class frequencies of label ``i`` where it is seen."""
        self.label_probs.copy_(class_frequencies(labels, mask, self.num_classes).to(self.label_probs))

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        """The expected image for ``z_c [..., B, L, d_c]`` and ``z_s [..., B, d_s]``."""
        return self.likelihood.mean(self.decoder(merge_characteristic(z_c, z_s)))

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        """:param x: images ``[B, C, S, S]``; :param y: class indices ``[B, L]``; :param mask: ``[B, L]`` bool."""
        y, mask = fill_labels(x, y, mask, self.num_labels)
        batch, all_seen, any_seen = x.shape[0], bool(mask.all()), bool(mask.any())
        with pyro.plate(sites.DATA_PLATE, batch, dim=sites.DATA_DIM):
            with poutine.scale(scale=self.beta):
                # z_s before the labels block keeps Pyro's dependency check quiet (as in the CCVAE).
                z_s = pyro.sample(sites.Z_S, dist.Normal(x.new_zeros(()), x.new_ones(())).expand([batch, self.z_style_dim]).to_event(1))
                with pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM):
                    prior_y = dist.Categorical(logits=self.label_log_probs().unsqueeze(1).expand(self.num_labels, batch, self.max_classes))
                    y_all = observe_label(sites.Y, prior_y, y.T, mask.T, all_seen, any_seen)
                    loc, scale = self.conditional_prior(y_all)
                    z_c = pyro.sample(sites.Z_C, dist.Normal(loc, scale).to_event(1))
            out = self.decoder(site_decoder_input(z_c, z_s))
            pyro.sample(sites.X, self.likelihood.distribution(out), obs=x)


class DIVAGuide(MeanFieldEncoding, PyroModule):
    """``q(z | x) = Normal(mu(x), sigma(x))`` (the CCVAE's mean-field guide) and ``q(y_i | z_c^i)``,
    with DIVA's auxiliary classifier term as a factor.

    :param beta: scales the latent sites as the model's (so each KL carries ``beta``).
    :param alpha: ``alpha_y``: the factor ``-alpha sum_{i seen} log q(y_i | z_c^i)`` (a guide
        factor enters the ELBO with the opposite sign); ``z_c`` is the reparameterised sample, so
        the term trains the encoder too, as in DIVA.
    """

    def __init__(
        self, num_classes: Sequence[int], z_char_dim: int, z_style_dim: int, channels: int, image_size: int,
        beta: float = DIVAConfig.diva_beta, alpha: float = DIVAConfig.diva_alpha,
    ):  # fmt: skip
        super().__init__(name="guide")
        self.num_classes, self.num_labels = list(num_classes), len(num_classes)
        self.z_char_dim, self.z_style_dim, self.beta, self.alpha = z_char_dim, z_style_dim, beta, alpha
        self.z_dim = self.num_labels * z_char_dim + z_style_dim
        self.encoder = ConvEncoder(channels, image_size, 2 * self.z_dim)
        self.classifier = DiagonalClassifier(num_classes, z_char_dim)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        loc, scale = self._loc_scale(x)
        (loc_c, loc_s), (scale_c, scale_s) = self._split(loc), self._split(scale)
        with pyro.plate(sites.DATA_PLATE, x.shape[0], dim=sites.DATA_DIM):
            with poutine.scale(scale=self.beta):
                pyro.sample(sites.Z_S, dist.Normal(loc_s, scale_s).to_event(1))
            with pyro.plate(sites.LABELS_PLATE, self.num_labels, dim=sites.LABELS_DIM):
                with poutine.scale(scale=self.beta):
                    z_c = pyro.sample(sites.Z_C, dist.Normal(loc_c.transpose(0, 1), scale_c.transpose(0, 1)).to_event(1))
                log_q = self.classifier(z_c)  # [L, B, K]
                with poutine.scale(scale=self.beta):
                    guess_label(sites.Y, dist.Categorical(logits=log_q), y.T, mask.T, bool(mask.all()), {"enumerate": "parallel"})
                if self.alpha > 0:
                    with poutine.mask(mask=mask.T):
                        # expanded to log_q's dims, which include any plate outside the guide's (Predictive's)
                        seen_class = y.T.long().unsqueeze(-1).expand(log_q.shape[:-1] + (1,))
                        log_q_seen = log_q.gather(-1, seen_class).squeeze(-1)
                        pyro.factor(sites.CLASSIFICATION, -self.alpha * log_q_seen, has_rsample=True)
