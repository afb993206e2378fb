"""The ``ccvae-pyro`` command: parses, calls the library, prints. No maths here."""
from __future__ import annotations

import logging

import click

from .analysis import evaluate, generate, intervene, swap, train_classifier, traverse
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
@click.version_option(package_name="pyro-ccvae")
def main(verbose: bool) -> None:
    """CCVAE (Joy et al., ICLR 2021) in Pyro: train, then evaluate and explore a run directory."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")


main.add_command(train)
main.add_command(evaluate)
main.add_command(traverse)
main.add_command(generate)
main.add_command(intervene)
main.add_command(swap)
main.add_command(train_classifier)


if __name__ == "__main__":
    main()
