"""The ``ccvae-pyro`` command: parses, calls the library, prints. No maths here.

Each subcommand's module is imported when that subcommand runs (or ``--help`` lists them):
``ccvae-pyro train`` does not import the analysis modules, matplotlib or torchvision, which
cost seconds at start-up (docs/benchmarks.md, Start-up time).
"""
from __future__ import annotations

import atexit
import ctypes
import importlib
import logging
import os
import sys
import threading

import click

#: subcommand -> (module in this package, attribute, the one line ``ccvae-pyro --help`` shows):
#: a subcommand's module is imported when it runs or shows its own help, not to list it.
COMMANDS = {
    "train": ("train", "train", "Train a model with SVI into the run directory --out."),
    "evaluate": ("analysis", "evaluate", "Metrics and figures of a run on its test split."),
    "traverse": ("analysis", "traverse", "Latent traversals of each z_c^i (Figs. 3, 21)."),
    "generate": ("analysis", "generate", "Conditional generation from p(z_c | y) (Fig. 4)."),
    "intervene": ("analysis", "intervene", "Change labels of test images (Figs. 5, 11, 22)."),
    "swap": ("analysis", "swap", "Swap z_c between test images (Figs. 6-7)."),
    "train-classifier": ("classifier", "train_classifier", "Train the CNN that judges edited and generated images."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when asked for (:data:`COMMANDS`); its help
    lists them from the table, so ``ccvae-pyro --help`` imports none of them (nor torch)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(f".{module}", __package__), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, description) for name, (_, _, description) in COMMANDS.items()])


def _keep_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse instead of returning each one over 128 KB to the
    system: on the CPU a training step of the 64-px networks otherwise maps its activations anew
    every step (16,000-19,000 page faults a step, about a fifth of its time). The 32 MB mmap and
    128 MB trim thresholds cost 20-70 MB of resident memory. Nothing happens without glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 128 << 20)


def _is_main_process() -> bool:
    """Rank 0 under torchrun (or the only process): the one that logs progress."""
    return os.environ.get("RANK", "0") == "0"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
@click.version_option(package_name="pyro-ccvae")
def main(verbose: bool) -> None:
    """CCVAE (Joy et al., ICLR 2021) in Pyro: train, then evaluate and explore a run directory."""
    _keep_freed_memory()
    level = logging.DEBUG if verbose else logging.INFO if _is_main_process() else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")


def run() -> None:
    """The console entry point: the CLI, then exit without the interpreter's teardown.

    Tearing down an interpreter that imported torch (and ``torch._dynamo``, which every
    ``torch.optim`` step imports) takes 0.7-0.9 s of a CPU and does nothing the process still
    needs: by then every file is closed, the run lock released and the process group left. So the
    ``atexit`` handlers run (logging's flush among them), the standard streams are flushed and
    the process ends with its exit status. If a thread that is not a daemon is still running, the
    interpreter's own shutdown waits for it as usual."""
    try:
        main(prog_name="ccvae-pyro")
        code = 0
    except SystemExit as stop:  # click's standalone mode ends every command this way
        code = stop.code
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.exit(code)
    if not isinstance(code, int):  # SystemExit("message") prints the message and exits with 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to deliver
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
