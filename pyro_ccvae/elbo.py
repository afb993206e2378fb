"""Moved to :mod:`pyro_ccvae.models.ccvae.elbo`; this name stays for existing imports."""
from .models.ccvae.elbo import CCVAE_ELBO, JENSEN_ESTIMATORS, log_q_labels  # noqa: F401

__all__ = ["CCVAE_ELBO", "JENSEN_ESTIMATORS", "log_q_labels"]
