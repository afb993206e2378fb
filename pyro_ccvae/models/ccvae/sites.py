"""Site and plate names: the contract between model, guide and ELBO (DESIGN.md §2).

``y`` is sampled with ``obs_mask``, so Pyro splits it into :data:`Y_OBSERVED` (the labels
that are seen) and :data:`Y_UNOBSERVED` (a latent, enumerated by the exact ELBO).
"""

DATA_PLATE = "data"
LABELS_PLATE = "labels"
#: plate dims: labels inside data, so per-label sites have batch shape (L, B).
DATA_DIM = -1
LABELS_DIM = -2
MAX_PLATE_NESTING = 2

Y = "y"
Y_OBSERVED = "y_observed"
Y_UNOBSERVED = "y_unobserved"
Z_C = "z_c"
Z_S = "z_s"
X = "x"

#: key of the guide's ``y`` site ``infer`` dict that holds the classifier ``z_c -> logits``,
#: so the ELBO can evaluate q(y|z_c) on detached and extra samples without a second encoder pass.
CLASSIFIER = "classifier"
