"""The CCVAE objective: one Pyro ELBO for every label mask (DESIGN.md §2).

For a data point with seen labels ``o`` and unseen labels ``u``::

    L(x, y_o) = E_q(z|x)[ w(z) * ( log p(x|z) + log p(z_s) - log q(z|x)
                                   + sum_{i in o} (log p(z_c^i|y_i) - log q(y_i|z_c^i))
                                   + sum_{i in u} J_i(z_c^i) ) ]
                + log q(y_o|x) + sum_{i in o} log p(y_i)

    w(z) = q(y_o|z_c) / q(y_o|x),   q(y_o|x) ~= logmeanexp over K samples of z_c ~ q(z_c|x)
    J_i(z) = E_q(y_i|z)[ log p(z|y_i) + log p(y_i) - log q(y_i|z) ]

All labels seen gives the paper's eq. (4); none seen gives ``w = 1`` and eq. (5).

Two training options change the gradient of the supervised part, not the bound at
``classifier_weight = 1`` (see :class:`CCVAE_ELBO`): ``detach_weight_denominator`` and
``classifier_weight``, which trains ``L + (alpha - 1) log q(y_o|x)``.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.util import warn_if_nan

from . import sites

JENSEN_ESTIMATORS = ("exact", "sampled")


class CCVAE_ELBO(ELBO):
    """The CCVAE evidence lower bound, usable with :class:`pyro.infer.SVI`.

    ``loss``, ``differentiable_loss``, ``loss_and_grads`` and ``CCVAE_ELBO()(model, guide)`` all
    evaluate :meth:`per_datum_elbo`, so they agree.

    :param k_samples: ``K``, samples of ``z_c ~ q(z_c|x)`` for ``q(y_o|x)``. They come from the
        guide trace's ``z_c`` distribution, so the encoder runs once. The log-mean-exp estimate
        is biased low by ``O(1/K)``.
    :param jensen: ``"exact"`` sums each ``J_i`` over the ``K_i`` classes of ``y_i`` by
        enumerating the guide's ``y_unobserved`` (classes a label lacks have ``q = 0`` and drop out); ``"sampled"`` is the authors' estimator: one ``y ~ q(y|z_c)``,
        unbiased in value, with no score-function term in its gradient.
    :param detach_classifier_input: per the paper's eq. (8), ``q(y|z_c)`` in the main term (the
        weight's numerator and ``-log q(y_o|z_c)``) sees ``z_c`` with gradients stopped, so the
        encoder learns ``z_c`` from the generative terms and from ``log q(y_o|x)``. ``False``
        gives the reparameterised variant, for the ablation. With the stop, the weight's
        denominator still carries gradients, so the main term adds about
        ``-E[main] * grad log q(y_o|x)`` (``main`` being thousands of nats for images): the
        classifier term is amplified as in the authors' code, where the reparameterised variant
        would cancel it.
    :param detach_weight_denominator: stop the gradient through ``q(y_o|x)`` in ``w``'s
        denominator. That gradient is the encoder's main classification signal in the paper's
        objective, and it grows with ``|main|``: with a sharp likelihood (a learned scale) it
        explodes, with a weak one it is what keeps ``z_c`` predictive. Detached, the encoder
        learns to classify from ``classifier_weight * log q(y_o|x)`` alone, at a strength that
        does not depend on the likelihood.
    :param classifier_weight: ``alpha``, the weight of ``log q(y_o|x)``; ``alpha = 1`` is the
        bound itself, ``alpha > 1`` adds ``(alpha - 1) log q(y_o|x)`` as an auxiliary
        classification term (as M2's alpha does). The loss is then the negative of this
        objective, not of the bound.
    """

    def __init__(
        self,
        k_samples: int = 100,
        jensen: str = "exact",
        detach_classifier_input: bool = True,
        detach_weight_denominator: bool = False,
        classifier_weight: float = 1.0,
        num_particles: int = 1,
        **kwargs,
    ):
        if jensen not in JENSEN_ESTIMATORS:
            raise ValueError(f"jensen must be one of {JENSEN_ESTIMATORS}, got {jensen!r}")
        if k_samples < 1:
            raise ValueError(f"k_samples must be at least 1, got {k_samples}")
        super().__init__(num_particles=num_particles, max_plate_nesting=sites.MAX_PLATE_NESTING, **kwargs)
        self.k_samples = k_samples
        self.jensen = jensen
        self.detach_classifier_input = detach_classifier_input
        self.detach_weight_denominator = detach_weight_denominator
        self.classifier_weight = classifier_weight

    def _get_trace(self, model, guide, args, kwargs):
        if self.jensen == "exact":
            guide = poutine.enum(guide, first_available_dim=-1 - self.max_plate_nesting)
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def per_datum_elbo(self, model_trace, guide_trace) -> torch.Tensor:
        """The single-sample estimate of ``L(x_b, y_o)`` for every data point ``b``: shape ``[B]``."""
        g_unseen, g_seen = guide_trace.nodes[sites.Y_UNOBSERVED], guide_trace.nodes[sites.Y_OBSERVED]
        classifier = g_unseen["infer"][sites.CLASSIFIER]
        y, seen = g_seen["value"], g_seen["mask"]  # [L, B]
        z_c_site = guide_trace.nodes[sites.Z_C]
        z_c = z_c_site["value"]  # [L, B, d_c]

        log_p_x = model_trace.nodes[sites.X]["unscaled_log_prob"]
        log_p_zs = model_trace.nodes[sites.Z_S]["unscaled_log_prob"]
        log_p_y_seen = model_trace.nodes[sites.Y_OBSERVED]["unscaled_log_prob"]
        log_q_z = z_c_site["unscaled_log_prob"].sum(0) + guide_trace.nodes[sites.Z_S]["unscaled_log_prob"]
        # Over the guide's values of y_unobserved: [K, L, B] when enumerated, else one sample.
        log_p_zc = model_trace.nodes[sites.Z_C]["unscaled_log_prob"]
        log_p_y = model_trace.nodes[sites.Y_UNOBSERVED]["unscaled_log_prob"]
        log_q_y = g_unseen["unscaled_log_prob"]
        enumerated = g_unseen["infer"].get("_enumerate_dim") is not None
        if not enumerated:
            log_p_zc, log_p_y, log_q_y = log_p_zc.unsqueeze(0), log_p_y.unsqueeze(0), log_q_y.unsqueeze(0)
        weight = log_q_y.exp() if enumerated else torch.ones_like(log_q_y)
        # A class a label lacks has q = p(y) = 0: its term is 0, not 0 * (-inf + inf).
        terms = torch.where(torch.isfinite(log_q_y), log_p_zc + log_p_y - log_q_y, torch.zeros_like(log_q_y))
        jensen = (weight * terms).sum(0)  # [L, B]

        # Supervised part: the classifier on this sample (eq. 8: detached) and on K fresh ones.
        z_main = z_c.detach() if self.detach_classifier_input else z_c
        log_q_y_seen = dist.Categorical(logits=classifier(z_main)).log_prob(y)
        log_q_y_given_x = log_q_labels(classifier, z_c_site["fn"], y, seen, self.k_samples)
        denominator = log_q_y_given_x.detach() if self.detach_weight_denominator else log_q_y_given_x
        w = (_masked_sum(log_q_y_seen, seen) - denominator).exp()

        main = (
            log_p_x
            + log_p_zs
            - log_q_z
            + _masked_sum(log_p_zc[0] - log_q_y_seen, seen)
            + _masked_sum(jensen, ~seen)
        )
        return w * main + self.classifier_weight * log_q_y_given_x + _masked_sum(log_p_y_seen, seen)

    def _differentiable_loss_particle(self, model_trace, guide_trace) -> torch.Tensor:
        scale = model_trace.nodes[sites.X]["scale"]  # the data plate's subsampling scale
        return -scale * self.per_datum_elbo(model_trace, guide_trace).sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss + self._differentiable_loss_particle(model_trace, guide_trace) / self.num_particles
        if is_validation_enabled():  # reading the value syncs a GPU; training turns validation off
            warn_if_nan(loss, "loss")
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)


def log_q_labels(classifier, q_z_c, y: torch.Tensor, seen: torch.Tensor, k_samples: int) -> torch.Tensor:
    """``log q(y_o | x) = log E_{q(z_c|x)}[ prod_{i in o} q(y_i | z_c^i) ]`` by log-mean-exp over
    ``K`` reparameterised samples of ``q_z_c`` (no second encoder pass). ``y`` (class indices),
    ``seen``: ``[L, B]``.

    Returns ``[B]``; exactly 0 for a point with no seen label.
    """
    z_k = q_z_c.rsample((k_samples,))  # [K, L, B, d_c]
    log_q_y_k = _masked_sum(dist.Categorical(logits=classifier(z_k)).log_prob(y), seen)  # [K, B]
    return log_q_y_k.logsumexp(0) - math.log(k_samples)


def _masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the labels dim (-2) of ``values`` where ``mask``; ``where`` keeps -inf out."""
    return torch.where(mask, values, torch.zeros_like(values)).sum(-2)
