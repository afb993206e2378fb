"""The names the configuration offers as choices, as plain data that imports neither torch nor Pyro.

``ccvae-pyro --help``, ``train --help`` and every error found while parsing options build the
command line from the config dataclasses (:mod:`pyro_ccvae.config`), whose choices are these
names. The registries that hold what the names stand for (the likelihoods, the data set loaders,
the estimators) import torch, which costs seconds at start-up (README: Start-up time); a test
(tests/test_startup.py) checks that each table here names exactly what its registry holds.

The model families' names are :data:`pyro_ccvae.models.MODELS`'s keys, which it knows without
importing a family's model code.
"""
from __future__ import annotations

#: ``--dataset``: the data sets :data:`pyro_ccvae.data.DATASETS` registers.
DATASETS = ("celeba", "chexpert", "digits", "fashion-mnist", "mnist", "shapes")
#: ``--likelihood``: the keys of :data:`pyro_ccvae.likelihoods.LIKELIHOODS`, in its order.
LIKELIHOODS = (
    "laplace", "normal", "laplace-learned", "laplace-learned-channel", "normal-learned", "normal-learned-channel",
    "bernoulli", "continuous-bernoulli",
)  # fmt: skip
#: ``--jensen``: the CCVAE objective's estimators of the unsupervised term (:mod:`pyro_ccvae.models.ccvae.elbo`).
JENSEN_ESTIMATORS = ("exact", "sampled")
#: ``--precision`` (:mod:`pyro_ccvae.acceleration`).
PRECISIONS = ("fp32", "bf16")
#: ``--noise`` (:mod:`pyro_ccvae.noise`).
NOISE_CHOICES = ("global", "keyed")
