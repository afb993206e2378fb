"""MVAE's site and plate names: the contract between its model, guide and objective.

The sub-sampled objective is a sum of ELBOs, each with its own latent: ``z_image`` for
``ELBO(x)``, ``z_joint`` for ``ELBO(x, y_o)`` and, inside the labels plate, ``z_label`` (one per
label, batch shape ``(L, B)``) for each ``ELBO(y_i)``. Each reconstructs what it was given.
The plates are those of every family (:mod:`pyro_ccvae.models.sites`).
"""
from ..sites import DATA_DIM, DATA_PLATE, LABELS_DIM, LABELS_PLATE, MAX_PLATE_NESTING  # noqa: F401 (the shared plates)

Z_IMAGE = "z_image"
Z_JOINT = "z_joint"
Z_LABEL = "z_label"
X_IMAGE = "x_image"
X_JOINT = "x_joint"
Y_JOINT = "y_joint"
Y_LABEL = "y_label"
