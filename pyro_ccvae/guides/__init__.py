"""Moved to :mod:`pyro_ccvae.models.ccvae.guides`; this name stays for existing imports
(and for guides given by import path, e.g. ``pyro_ccvae.guides:MeanFieldGuide``)."""
from ..models.ccvae.guides import *  # noqa: F401,F403
from ..models.ccvae.guides import GuideError, resolve_guide  # noqa: F401
from ..models.ccvae.guides import __all__  # noqa: F401
