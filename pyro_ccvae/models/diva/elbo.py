"""The modified DIVA's objective (the CCVAE paper's appendix C.4), for every label mask.

Per data point, with ``o`` its seen labels and ``u`` the others (``q(z|x)`` mean-field, so every
term is per block)::

    L(x, y_o) = E_q(z|x)[ log p(x|z) ]
                - beta KL(q(z_s|x) || p(z_s))
                - beta sum_{i in o} KL(q(z_c^i|x) || p(z_c^i|y_i))  + beta sum_{i in o} log p(y_i)
                + beta sum_{i in u} E_q(z_c^i|x)[ sum_k q(k|z_c^i) (log p(z_c^i|k) + log p(k) - log q(k|z_c^i))
                                                  - log q(z_c^i|x) ]
                + alpha sum_{i in o} E_q(z_c^i|x)[ log q(y_i | z_c^i) ]

All seen: the supervised bound (its ``log p(y_o)`` is a constant, kept so that at ``beta = 1``
the bound is one on ``log p(x, y_o)``); none seen: the unsupervised bound, ``y`` imputed from
``q(y | z_c)`` and summed over exactly. The KL terms are single-sample estimates
(``log p(z) - log q(z)`` at the sample), as Ilse et al.'s code computes them.

This is :class:`pyro.infer.TraceEnum_ELBO` (:class:`DIVA_ELBO`) on :class:`~.model.DIVAModel` and
:class:`~.model.DIVAGuide`: ``beta`` is a ``poutine.scale`` on the latent and label sites of
both, the sum over ``y_u`` the guide's parallel enumeration of ``y_unobserved`` inside the
labels plate (each ``z_c^i`` depends on ``y_i`` alone, so the plate's factorisation holds), and
the ``alpha`` term the guide's classification factor.
"""
from __future__ import annotations

import re
import warnings

from pyro.infer import TraceEnum_ELBO

from . import sites

#: Pyro's enumeration check flags ``x`` (outside the labels plate) for following the enumerated
#: ``y_unobserved`` (inside it). A false positive here: ``x`` reads ``z_c``, which the guide
#: samples before ``y``, so ``x``'s cost carries no enumeration dim (docs/objective.md, Pyro form).
FALSE_POSITIVE = re.escape(f'at model site "{sites.X}", possibly invalid dependency')


class DIVA_ELBO(TraceEnum_ELBO):
    """:class:`~pyro.infer.TraceEnum_ELBO` without the one false-positive dependency warning
    (:data:`FALSE_POSITIVE`, matched by its message); the objective is the stock one."""

    def _get_trace(self, model, guide, args, kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=FALSE_POSITIVE, category=RuntimeWarning)
            return super()._get_trace(model, guide, args, kwargs)


def diva_elbo(num_particles: int = 1) -> DIVA_ELBO:
    """DIVA's objective as a Pyro ELBO (``beta`` and ``alpha`` live in the model and guide)."""
    # A fully labelled batch has nothing to enumerate: that is expected, not a mistake.
    return DIVA_ELBO(num_particles=num_particles, max_plate_nesting=sites.MAX_PLATE_NESTING, strict_enumeration_warning=False)
