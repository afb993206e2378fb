"""The CCVAE's site and plate names: the contract between model, guide and ELBO (docs/contracts.md).

Those of every family come from :mod:`pyro_ccvae.models.sites`. ``y`` is sampled with
``obs_mask``, so Pyro splits it into :data:`Y_OBSERVED` (the labels that are seen) and
:data:`Y_UNOBSERVED` (a latent, enumerated by the exact ELBO).
"""
from ..sites import *  # noqa: F403 (the names every family shares)
from ..sites import Y, observed, unobserved

Y_OBSERVED = observed(Y)
Y_UNOBSERVED = unobserved(Y)
Z_C = "z_c"
Z_S = "z_s"

#: key of the guide's ``y`` site ``infer`` dict that holds the classifier ``z_c -> logits``,
#: so the ELBO can evaluate q(y|z_c) on detached and extra samples without a second encoder pass.
CLASSIFIER = "classifier"
