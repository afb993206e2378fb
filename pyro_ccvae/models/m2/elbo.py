"""M2's objective (Kingma et al., 2014, eqs. 6-9), for every label mask.

With ``o`` the labels a point has and ``u`` those it lacks::

    L(x, y_o) = sum_{y_u} q(y_u | x) [ E_q(z|x,y)[ log p(x|y,z) + log p(z) - log q(z|x,y) ]
                                       + log p(y) - log q(y_u | x) ]
              + alpha N E_labelled[ log q(y_o | x) ]            (the classification term)

All labels seen: the labelled bound plus the classification term; none seen: the unlabelled
bound ``U(x)`` (the sum over ``y`` plus the entropy of ``q(y|x)``). The classification term is
the guide's :data:`~.sites.CLASSIFICATION` factor (see :class:`~.model.M2Guide`), so stock Pyro
ELBOs compute all of it and their ``loss``, ``differentiable_loss`` and ``loss_and_grads`` agree.

The sum over ``y_u`` runs over ``prod_{i in u} K_i`` joint configurations, one decoder pass each
(the decoder reads every label):

- ``enumerate``: exact, by :class:`pyro.infer.TraceEnum_ELBO` with the guide's unseen labels
  enumerated in parallel (each label its own enumeration dim, so they broadcast to the joint);
- ``sampled``: one ``y_u ~ q(y_u|x)`` per point, by :class:`pyro.infer.TraceGraph_ELBO`: the value
  is unbiased, the gradient of ``q(y|x)`` a score-function estimate (each label's with only the
  costs downstream of it) with a learned per-point, per-label baseline
  (:class:`~.model.CostBaseline`) to reduce its variance.

``auto`` (the default) enumerates when the data's joint label space has at most
``max_enumerated`` configurations (one 10-class digit label: 10; six binary labels: 64) and
samples otherwise (CelebA's 18 binary labels: 2^18).
"""
from __future__ import annotations

import math
from typing import Sequence

from pyro.infer import ELBO, TraceEnum_ELBO, TraceGraph_ELBO

from . import sites


def joint_configurations(num_classes: Sequence[int]) -> int:
    """``prod_i K_i``: the decoder passes of an exact sum over every label."""
    return math.prod(num_classes)


def resolve_label_sum(label_sum: str, num_classes: Sequence[int], max_enumerated: int) -> str:
    """``auto`` -> ``enumerate`` when ``prod K_i <= max_enumerated``, else ``sampled``; others as given."""
    if label_sum != "auto":
        return label_sum
    return "enumerate" if joint_configurations(num_classes) <= max_enumerated else "sampled"


def m2_elbo(label_sum: str, num_particles: int = 1) -> ELBO:
    """The Pyro ELBO of M2 for a resolved ``label_sum`` (``enumerate`` or ``sampled``)."""
    if label_sum == "enumerate":
        # A fully labelled batch has nothing to enumerate: that is expected, not a mistake.
        # No labels plate here (see :mod:`.sites`): the enumeration dims start right left of the data plate.
        return TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=1, strict_enumeration_warning=False)
    if label_sum == "sampled":
        return TraceGraph_ELBO(num_particles=num_particles, max_plate_nesting=sites.MAX_PLATE_NESTING)
    raise ValueError(f"label_sum must be 'enumerate' or 'sampled' (build the model first: it resolves 'auto'), got {label_sum!r}")
