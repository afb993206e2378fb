"""DIVA's site and plate names: the contract between its model, guide and objective.

DIVA's latent layout is the CCVAE's (:mod:`pyro_ccvae.models.ccvae.sites`), and so are its
names: ``y`` and ``z_c`` live in the labels plate, inside the data plate, so per-label sites have
batch shape ``(L, B)``; ``y`` splits into :data:`Y_OBSERVED` and the latent :data:`Y_UNOBSERVED`
as ``obs_mask`` would (:func:`~pyro_ccvae.models.common.observe_label`).
"""
from ..ccvae.sites import Y_OBSERVED, Y_UNOBSERVED, Z_C, Z_S  # noqa: F401 (the CCVAE's layout)
from ..sites import *  # noqa: F403 (the names every family shares)

#: the guide's factor carrying the alpha-weighted auxiliary classifier term.
CLASSIFICATION = "classification"
