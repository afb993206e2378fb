"""M2's site and plate names: the contract between its model, guide and objective.

Those of every family come from :mod:`pyro_ccvae.models.sites`. For the exact sum each label is
its own site, :func:`label` ``(i)``, outside any labels plate: M2's decoder reads the whole label
vector, so the labels are not independent given the rest, and a labels plate would let
enumeration treat them as if they were (each label gets its own enumeration dim instead, and they
broadcast to the joint). The sampled estimator needs no such care and samples all labels as one
site :data:`Y` in the labels plate (batch shape ``(L, B)``). A label site splits into
``<name>_observed`` and the latent ``<name>_unobserved`` as ``obs_mask`` would
(:func:`~pyro_ccvae.models.common.observe_label`).
"""
from ..sites import *  # noqa: F403 (the names every family shares)

Z = "z"
#: the guide's factor carrying the alpha-weighted classification term.
CLASSIFICATION = "classification"


def label(i: int) -> str:
    """The site name of label ``i`` (before Pyro's ``_observed``/``_unobserved`` split)."""
    return f"y_{i}"
