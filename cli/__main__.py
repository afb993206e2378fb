"""``python -m pyro_ccvae_cli`` (and ``torchrun --nproc_per_node N -m pyro_ccvae_cli train ...``): the ``ccvae-pyro`` command."""
from .main import run

if __name__ == "__main__":
    run()
