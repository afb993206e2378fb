"""DIVA's site and plate names: the contract between its model, guide and objective.

As in the CCVAE (:mod:`pyro_ccvae.models.ccvae.sites`): ``y`` and ``z_c`` live in the labels
plate, inside the data plate, so per-label sites have batch shape ``(L, B)``; ``y`` splits into
:data:`Y_OBSERVED` and the latent :data:`Y_UNOBSERVED` as ``obs_mask`` would
(:func:`~pyro_ccvae.models.common.observe_label`).
"""

DATA_PLATE = "data"
LABELS_PLATE = "labels"
DATA_DIM = -1
LABELS_DIM = -2
MAX_PLATE_NESTING = 2

Y = "y"
Y_OBSERVED = "y_observed"
Y_UNOBSERVED = "y_unobserved"
Z_C = "z_c"
Z_S = "z_s"
X = "x"
#: the guide's factor carrying the alpha-weighted auxiliary classifier term.
CLASSIFICATION = "classification"
