"""Moved to :mod:`pyro_ccvae.models.ccvae.sites`; this name stays for existing imports."""
from .models.ccvae.sites import *  # noqa: F401,F403
from .models.ccvae.sites import CLASSIFIER, DATA_DIM, DATA_PLATE, LABELS_DIM, LABELS_PLATE, MAX_PLATE_NESTING, X, Y, Y_OBSERVED, Y_UNOBSERVED, Z_C, Z_S  # noqa: F401
