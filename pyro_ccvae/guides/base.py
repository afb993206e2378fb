"""Moved to :mod:`pyro_ccvae.models.ccvae.guides.base`; this name stays for existing imports."""
from ..models.ccvae.guides.base import CCVAEGuide, DiagonalClassifier, label_probs, labels_plate, sample_labels  # noqa: F401
