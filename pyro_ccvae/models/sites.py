"""The site and plate names every family shares (docs/contracts.md); each family's ``sites``
module takes these and adds its own.

Every family puts its data points in the data plate and its per-label sites in the labels plate
inside it, so per-label sites have batch shape ``(L, B)``. A label site seen for some data points
and not others splits, as Pyro's ``obs_mask`` splits a site, into :func:`observed` (the labels
that are seen) and :func:`unobserved` (a latent, enumerated or sampled).
"""

DATA_PLATE = "data"
LABELS_PLATE = "labels"
#: plate dims: labels inside data.
DATA_DIM = -1
LABELS_DIM = -2
MAX_PLATE_NESTING = 2

#: the images.
X = "x"
#: the labels, one site for all (before the split into :func:`observed` and :func:`unobserved`).
Y = "y"


def observed(name: str) -> str:
    """The seen part of the label site ``name``, as Pyro's ``obs_mask`` names it."""
    return f"{name}_observed"


def unobserved(name: str) -> str:
    """The latent, unseen part of the label site ``name``, as Pyro's ``obs_mask`` names it."""
    return f"{name}_unobserved"


__all__ = ["DATA_DIM", "DATA_PLATE", "LABELS_DIM", "LABELS_PLATE", "MAX_PLATE_NESTING", "X", "Y", "observed", "unobserved"]
