"""MVAE's sub-sampled objective (Wu & Goodman, 2018, section 3.2), for every label mask.

With ``o`` the labels a point has (``lambda_x``, ``lambda_y`` the likelihood weights)::

    ELBO(x, y_o) = E_q(z|x,y_o)[ lambda_x log p(x|z) + lambda_y sum_{i in o} log p(y_i|z) ] - beta KL(q(z|x,y_o) || p(z))
    ELBO(x)      = E_q(z|x)[ lambda_x log p(x|z) ] - beta KL(q(z|x) || p(z))
    ELBO(y_i)    = E_q(z|y_i)[ log p(y_i|z) ] - beta KL(q(z|y_i) || p(z))

    L(x, y_o) = ELBO(x, y_o) + ELBO(x) + sum_{i in o} ELBO(y_i)   if o is not empty, else ELBO(x)

Each ``q`` is the product of experts of :class:`~.model.MVAEGuide`. The KL terms are between
Gaussians, so :class:`pyro.infer.TraceMeanField_ELBO` computes them in closed form; the
expectations are single-sample.
"""
from __future__ import annotations

from pyro.infer import TraceMeanField_ELBO

from . import sites


def mvae_elbo(num_particles: int = 1) -> TraceMeanField_ELBO:
    """MVAE's objective as a Pyro ELBO (the weights live in the model and guide)."""
    return TraceMeanField_ELBO(num_particles=num_particles, max_plate_nesting=sites.MAX_PLATE_NESTING)
