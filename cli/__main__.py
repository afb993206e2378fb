"""``python -m pyro_ccvae_cli`` (and ``torchrun --nproc_per_node N -m pyro_ccvae_cli train ...``): the ``ccvae-pyro`` command."""
from .main import main

if __name__ == "__main__":
    main(prog_name="ccvae-pyro")
