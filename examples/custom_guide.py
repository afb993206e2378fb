"""Write your own guide and train the CCVAE with it: nothing else changes.

The guide below replaces the paper's mean-field posterior with a Student-t posterior over the
style latent ``z_s`` (heavier tails), keeping a Normal over each characteristic block. It
subclasses :class:`pyro_ccvae.models.ccvae.guides.CCVAEGuide`, which supplies the plates, the diagonal
classifier and the ``y`` sites; a guide only samples ``z_s`` and ``z_c``.

Run it (tiny settings finish in seconds)::

    python examples/custom_guide.py --out runs/student --epochs 3 --num-train 2000

or train with it from the command line, naming it by import path::

    PYTHONPATH=examples ccvae-pyro train --guide custom_guide:StudentStyleGuide --out runs/student
"""
from __future__ import annotations

import argparse
import json
import logging

import pyro
import pyro.distributions as dist
from torch.nn import functional as F

from pyro_ccvae.models.ccvae import sites
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models.ccvae.guides import CCVAEGuide
from pyro_ccvae.nets import ConvEncoder
from pyro_ccvae.training import train


class StudentStyleGuide(CCVAEGuide):
    """``z_c^i ~ Normal(mu_c^i(x), sigma_c^i(x))``, ``z_s ~ StudentT(nu, mu_s(x), sigma_s(x))``."""

    def __init__(self, num_labels, z_char_dim, z_style_dim, channels, image_size, num_classes=None, df: float = 4.0):
        super().__init__(num_labels, z_char_dim, z_style_dim, num_classes)  # num_classes: K_i per label
        self.df = df
        self.z_dim = num_labels * z_char_dim + z_style_dim
        self.encoder = ConvEncoder(channels, image_size, 2 * self.z_dim)

    def _params(self, x):
        loc, raw_scale = self.encoder(x).split(self.z_dim, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        char = self.z_dim - self.z_style_dim
        shape = (x.shape[0], self.num_labels, self.z_char_dim)
        return loc[:, :char].reshape(shape), scale[:, :char].reshape(shape), loc[:, char:], scale[:, char:]

    def sample_latents(self, x, labels):
        loc_c, scale_c, loc_s, scale_s = self._params(x)
        pyro.sample(sites.Z_S, dist.StudentT(loc_s.new_tensor(self.df), loc_s, scale_s).to_event(1))
        with labels:  # the labels plate: z_c has batch shape (L, B)
            return pyro.sample(
                sites.Z_C, dist.Normal(loc_c.transpose(0, 1), scale_c.transpose(0, 1)).to_event(1)
            )

    def mean(self, x):
        loc_c, _, loc_s, _ = self._params(x)
        return loc_c, loc_s


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/custom-guide", help="the run directory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs to train (default: %(default)s)")
    parser.add_argument("--num-train", type=int, default=None, help="shapes training images (default: the data set's 10,000)")
    parser.add_argument("--k-samples", type=int, default=100, help="samples of z_c for q(y|x) (default: %(default)s)")
    parser.add_argument("--z-style-dim", type=int, default=8, help="d_s, the style latent's dims (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random draw (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training's line per epoch, as ccvae-pyro shows it
    config = TrainConfig.from_options(
        # By import path, so later commands (evaluate, traverse, ...) can rebuild the guide;
        # running this file puts examples/ on sys.path, elsewhere set PYTHONPATH=examples.
        # Those commands import it only with --trust-run.
        guide="custom_guide:StudentStyleGuide",
        epochs=args.epochs,
        num_train=args.num_train,
        k_samples=args.k_samples,
        z_style_dim=args.z_style_dim,
        seed=args.seed,
    )
    summary = train(config, args.out, progress=False)
    print(json.dumps(summary["test_accuracy"], indent=2))
    return summary


if __name__ == "__main__":
    main()
