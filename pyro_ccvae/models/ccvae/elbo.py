"""The CCVAE objective: one Pyro ELBO for every label mask (docs/objective.md).

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

``log q(z|x)`` is the sum over every latent site of the guide but ``y_unobserved`` (so a guide
with an auxiliary base sample, or any further latent, is counted as Pyro's own ELBOs count it);
``q(z_c|x)`` for the ``K`` samples is the ``z_c`` site's distribution, which the guide contract
(:mod:`.guides.base`) makes the marginal.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Optional

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.elbo import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine import Trace
from pyro.poutine.util import site_is_subsample
from pyro.util import warn_if_nan

from ...choices import JENSEN_ESTIMATORS
from ..encode_once import repeat_rows
from . import sites
from .config import PAPER


class CCVAE_ELBO(ELBO):
    """The CCVAE evidence lower bound, usable with :class:`pyro.infer.SVI`.

    The defaults are the paper's objective (:meth:`~pyro_ccvae.models.ccvae.config.CCVAEConfig.paper`),
    the bound itself; a run builds its objective from its config (``CCVAEFamily.objective``).

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
    :param detach_weight: stop every gradient through ``w`` (numerator and denominator): ``w``
        is then an importance weight on the main term and no more. Its numerator's gradient is
        ``w * main * grad log q(y_o|z_c)``, a score-function-like term scaled by ``main`` (hundreds
        to thousands of nats, negative), which pushes the classifier *away* from the seen labels
        unless ``alpha * grad log q(y_o|x)`` outweighs it. With the classifier tied to the prior
        (``--label-classifier prior``) it also drives the prior's scales to collapse. Detached,
        classification is learnt from ``alpha * log q(y_o|x)`` and, for a tied classifier, from
        the class-conditional prior terms. Changes the gradient, not the value.
    :param classifier_weight: ``alpha``, the weight of ``log q(y_o|x)``; ``alpha = 1`` is the
        bound itself, ``alpha > 1`` adds ``(alpha - 1) log q(y_o|x)`` as an auxiliary
        classification term (as M2's alpha does). The loss is then the negative of this
        objective, not of the bound.
    :param max_log_weight: the cap on ``log w``. A draw whose ``z_c`` classifies the seen labels
        far better than the ``K`` samples of ``q(y_o|x)`` did gets ``w = exp(hundreds)``, which is
        ``inf`` in float32 (and ``w * main``, ``main`` being thousands of nats, overflows long
        before); such draws are rare but reachable with a sharp classifier and many labels.
        ``log w`` above the cap is set to it (with no gradient through ``w`` for that draw), and
        the capped draws are counted (:meth:`take_counts`). The default ``20`` (``w <= 4.9e8``)
        is far above the weights of ordinary draws (``E[w] = 1``); ``None`` removes the cap.
    :param num_particles: particles per data point; the loss averages them.
    :param vectorize_particles: draw the particles in one pass: the batch (every tensor
        argument) is repeated ``num_particles`` times along the data plate, so any guide works
        unchanged. A per-datum ``poutine.scale`` or ``poutine.mask`` outside the model cannot
        follow the repeated batch and is then a one-line error (use looped particles).

    **Scales and masks.** Each data point's term is multiplied by the scale of the model's ``x``
    site: the data plate's subsampling scale, or an outer ``poutine.scale`` (a number, or one per
    data point ``[B]``); scale the model and the guide alike (checked with validation on). An
    outer ``poutine.mask`` (a bool, or one per data point ``[B]``) drops the masked data points'
    whole terms, ``w * main + alpha log q(y_o|x) + log p(y_o)``: they add 0 to the loss and
    nothing to any gradient, as a masked site does in Pyro's ELBOs. The labels' own mask (which
    labels are seen) is the ``mask`` argument of the model and guide, not a ``poutine.mask``.
    """

    def __init__(
        self,
        k_samples: int = PAPER.k_samples,
        jensen: str = PAPER.jensen,
        detach_classifier_input: bool = PAPER.detach_classifier_input,
        detach_weight_denominator: bool = PAPER.detach_weight_denominator,
        detach_weight: bool = PAPER.detach_weight,
        classifier_weight: float = PAPER.classifier_weight,
        max_log_weight: Optional[float] = 20.0,
        num_particles: int = 1,
        vectorize_particles: bool = False,
        **kwargs,
    ):
        if jensen not in JENSEN_ESTIMATORS:
            raise ValueError(f"jensen must be one of {JENSEN_ESTIMATORS}, got {jensen!r}")
        if k_samples < 1:
            raise ValueError(f"k_samples must be at least 1, got {k_samples}")
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=sites.MAX_PLATE_NESTING,
            vectorize_particles=vectorize_particles,
            **kwargs,
        )
        # Pyro adds a plate dim for vectorised particles; ours repeat the batch instead, so the
        # plates (and the dim where y_unobserved is enumerated) stay where the model puts them.
        self.max_plate_nesting = sites.MAX_PLATE_NESTING
        self.k_samples = k_samples
        self.jensen = jensen
        self.detach_classifier_input = detach_classifier_input
        self.detach_weight_denominator = detach_weight_denominator
        self.detach_weight = detach_weight
        self.classifier_weight = classifier_weight
        self.max_log_weight = max_log_weight
        self._capped_draws = self._weighted_draws = 0

    def _get_trace(self, model, guide, args, kwargs):
        if self.jensen == "exact":
            guide = poutine.enum(guide, first_available_dim=-1 - self.max_plate_nesting)
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def _get_traces(self, model, guide, args, kwargs) -> Iterator[tuple[Trace, Trace]]:
        if not (self.vectorize_particles and self.num_particles > 1):
            for _ in range(self.num_particles):
                yield self._get_trace(model, guide, args, kwargs)
            return
        repeated_args, repeated_kwargs = repeat_batch(args, kwargs, self.num_particles)
        try:
            traces = self._get_trace(model, guide, repeated_args, repeated_kwargs)
        except (RuntimeError, ValueError) as error:
            self._get_trace(model, guide, args, kwargs)  # fails too if the cause is not the repetition
            raise ValueError(
                f"vectorize_particles repeats the batch {self.num_particles} times along the data plate, and a "
                "per-datum poutine.scale or poutine.mask around the model or guide cannot follow it; "
                "use vectorize_particles=False (looped particles)"
            ) from error
        yield traces

    def take_counts(self) -> dict[str, int]:
        """Since the last call: ``weighted_draws``, the data points with a seen label (each draw of
        each particle), and ``capped_weights``, those whose ``log w`` hit ``max_log_weight``.
        Reading them syncs a GPU once; training calls this once an epoch (``metrics.jsonl``)."""
        counts = {"capped_weights": int(self._capped_draws), "weighted_draws": int(self._weighted_draws)}
        self._capped_draws = self._weighted_draws = 0
        return counts

    def per_datum_elbo(self, model_trace, guide_trace) -> torch.Tensor:
        """The single-sample estimate of ``L(x_b, y_o)`` for every data point ``b``: shape ``[B]``
        (whatever scale or mask surrounds the model: see :meth:`_differentiable_loss_particle`)."""
        return self._per_datum(model_trace, guide_trace)[0]

    def _per_datum(self, model_trace, guide_trace) -> tuple[torch.Tensor, torch.Tensor]:
        """``L(x_b, y_o)`` ``[B]``, and where ``log w`` was capped ``[B]`` (bool)."""
        g_unseen, g_seen = guide_trace.nodes[sites.Y_UNOBSERVED], guide_trace.nodes[sites.Y_OBSERVED]
        classifier = g_unseen["infer"][sites.CLASSIFIER]
        y, seen = g_seen["value"], g_seen["mask"]  # [L, B]
        z_c_site = guide_trace.nodes[sites.Z_C]
        z_c = z_c_site["value"]  # [L, B, d_c]

        log_p_x = model_trace.nodes[sites.X]["unscaled_log_prob"]
        log_p_zs = model_trace.nodes[sites.Z_S]["unscaled_log_prob"]
        log_p_y_seen = model_trace.nodes[sites.Y_OBSERVED]["unscaled_log_prob"]
        log_q_z = log_q_latents(guide_trace, log_p_x.shape[-1])
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
        log_w = _masked_sum(log_q_y_seen, seen) - denominator
        capped = torch.zeros_like(log_w, dtype=torch.bool)
        if self.max_log_weight is not None:
            capped = log_w > self.max_log_weight
            log_w = log_w.clamp(max=self.max_log_weight)
        w = log_w.detach().exp() if self.detach_weight else log_w.exp()

        main = (
            log_p_x
            + log_p_zs
            - log_q_z
            + _masked_sum(log_p_zc[0] - log_q_y_seen, seen)
            + _masked_sum(jensen, ~seen)
        )
        elbo = w * main + self.classifier_weight * log_q_y_given_x + _masked_sum(log_p_y_seen, seen)
        return elbo, capped

    def _differentiable_loss_particle(self, model_trace, guide_trace) -> torch.Tensor:
        """``-sum_b s_b * L(x_b, y_o)`` over the data points ``b`` an outer mask keeps, with
        ``s_b`` the scale of the model's ``x`` site (see the class doc)."""
        elbo, capped = self._per_datum(model_trace, guide_trace)
        x_site = model_trace.nodes[sites.X]
        scale, keep = _per_datum_factor(x_site["scale"], elbo, "scale"), x_site["mask"]
        if is_validation_enabled():
            guide_scale = guide_trace.nodes[sites.Z_S]["scale"]
            if not torch.equal(torch.as_tensor(guide_scale, dtype=elbo.dtype, device=elbo.device).expand_as(scale), scale):
                raise ValueError(
                    "the model and the guide carry different poutine.scale factors; CCVAE_ELBO scales each data "
                    "point's whole term by the model's, so scale the model and the guide alike"
                )
        weighted = g_seen_any(guide_trace)
        if keep is not None:
            keep = _per_datum_factor(keep, elbo, "mask").bool()
            # where, not a product: a dropped point's term may be inf or NaN, and must not leak.
            elbo = torch.where(keep, elbo, torch.zeros_like(elbo))
            capped, weighted = capped & keep, weighted & keep
        self._capped_draws = self._capped_draws + capped.sum().detach()
        self._weighted_draws = self._weighted_draws + weighted.sum().detach()
        return -(scale * elbo).sum()

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
    if is_validation_enabled() and k_samples > 1 and seen.any() and (z_k == z_k[:1]).all():
        raise ValueError(
            f"the {k_samples} samples of the guide's z_c site are identical (a Delta?), so q(y|x) would be wrong; "
            "the z_c site must carry the marginal q(z_c|x) (see pyro_ccvae.models.ccvae.guides.check_guide)"
        )
    log_q_y_k = _masked_sum(dist.Categorical(logits=classifier(z_k)).log_prob(y), seen)  # [K, B]
    return log_q_y_k.logsumexp(0) - math.log(k_samples)


def log_q_latents(guide_trace: Trace, batch: int, log_prob: Optional[Callable[[dict], torch.Tensor]] = None) -> torch.Tensor:
    """``log q(z | x)`` per data point ``[batch]``: the sum over every latent sample site of the
    guide but the enumerated ``y_unobserved`` (sites in the labels plate summed over labels).

    :param log_prob: site -> its log-density (default: the trace's ``unscaled_log_prob``, which
        the ELBO reads because the classifier's sites carry the labels' own masks).
    """
    total = 0.0
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or name == sites.Y_UNOBSERVED or site_is_subsample(site):
            continue
        value = site["unscaled_log_prob"] if log_prob is None else log_prob(site)
        total = total + value.sum_to_size(batch)
    return total


def repeat_batch(args: tuple, kwargs: dict, times: int) -> tuple[tuple, dict]:
    """Every tensor argument repeated ``times`` times along its first (data) dim, sample-major:
    row ``p * B + b`` is data point ``b`` of particle ``p``."""

    def repeat(value):
        return repeat_rows(value, times) if isinstance(value, torch.Tensor) and value.dim() > 0 else value

    return tuple(repeat(a) for a in args), {k: repeat(v) for k, v in kwargs.items()}


def g_seen_any(guide_trace: Trace) -> torch.Tensor:
    """``[B]``: data points with at least one seen label (those that carry the weight ``w``)."""
    return guide_trace.nodes[sites.Y_OBSERVED]["mask"].any(-2)


def _per_datum_factor(value, elbo: torch.Tensor, what: str) -> torch.Tensor:
    """An outer scale or mask as a tensor ``[B]`` (one number broadcast); a one-line error for
    any other shape (a factor per label has no meaning for the weighted per-datum term)."""
    value = torch.as_tensor(value, device=elbo.device)
    if value.numel() == 1:
        return value.reshape(()).expand_as(elbo) if what == "mask" else value.reshape(()).to(elbo.dtype).expand_as(elbo)
    if tuple(value.shape) != tuple(elbo.shape):
        raise ValueError(
            f"an outer poutine.{what} around the CCVAE must be one number or one per data point {tuple(elbo.shape)}, "
            f"got shape {tuple(value.shape)}; to choose which labels are seen, pass the mask argument"
        )
    return value.to(elbo.dtype) if what == "scale" else value


def _masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the labels dim (-2) of ``values`` where ``mask``; ``where`` keeps -inf out."""
    return torch.where(mask, values, torch.zeros_like(values)).sum(-2)
