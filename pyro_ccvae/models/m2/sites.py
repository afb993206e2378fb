"""M2's site and plate names: the contract between its model, guide and objective.

Each label is its own site, outside any labels plate: M2's decoder reads the whole label vector,
so the labels are not independent given the rest, and a labels plate would let enumeration
treat them as if they were. A label ``i`` splits into ``y_<i>_observed`` and the latent
``y_<i>_unobserved`` as ``obs_mask`` would (:func:`~pyro_ccvae.models.common.observe_label`).
"""

DATA_PLATE = "data"
DATA_DIM = -1
MAX_PLATE_NESTING = 1

Z = "z"
X = "x"
#: the guide's factor carrying the alpha-weighted classification term.
CLASSIFICATION = "classification"


def label(i: int) -> str:
    """The site name of label ``i`` (before Pyro's ``_observed``/``_unobserved`` split)."""
    return f"y_{i}"
