"""The packages to install, found rather than listed: every package under ``pyro_ccvae/`` (a new
model family's folder cannot be left out) and the command line's ``cli/`` folder, installed as
``pyro_ccvae_cli`` (``package-dir`` in pyproject.toml, which holds everything else)."""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pyro_ccvae", "pyro_ccvae.*"]), "pyro_ccvae_cli"])
