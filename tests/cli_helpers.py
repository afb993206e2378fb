"""The command line as the tests run it (tests/ is on the path of its top-level test modules)."""
from __future__ import annotations

from click.testing import CliRunner

from pyro_ccvae_cli.main import main


def cli(*args):
    """Run ``ccvae-pyro args``; the result, after checking that no exception escaped the command
    (click's runner would hide a traceback in ``result.exception``) and none was printed."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    return result
