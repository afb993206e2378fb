"""Start-up: ``ccvae-pyro --help``, ``--version``, each command's ``--help`` and the one-line
errors of parsing answer without importing torch or Pyro (which take seconds; docs/benchmarks.md, Start-up
time). Timings are measured, not tested: this checks what is imported.

The command line is built from light tables (:mod:`pyro_ccvae.choices`, the families'
``config.py``, :data:`pyro_ccvae_cli.main.COMMANDS`) that stand for heavy registries; the tests
below also check that each table names what its registry holds.
"""
from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

#: runs the command line in a fresh interpreter, then reports which heavy packages it imported.
DRIVER = """
import sys
from pyro_ccvae_cli.main import main
try:
    main(sys.argv[1:], prog_name="ccvae-pyro")
    code = 0
except SystemExit as stop:
    code = stop.code
print("imported:" + ",".join(name for name in ("torch", "pyro", "numpy", "matplotlib") if name in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, timeout=120)


def imported(result: subprocess.CompletedProcess) -> list[str]:
    line = [line for line in result.stderr.splitlines() if line.startswith("imported:")][-1]
    return [name for name in line[len("imported:") :].split(",") if name]


@pytest.mark.parametrize(
    "args, status, fragment",
    [
        (["--help"], 0, "train-classifier"),
        (["--version"], 0, "version"),
        (["train", "--help"], 0, "--guide-option"),
        (["evaluate", "--help"], 0, "--iw-samples"),
        (["traverse", "--help"], 0, "--steps"),
        (["generate", "--help"], 0, "--samples"),
        (["intervene", "--help"], 0, "--draws"),
        (["swap", "--help"], 0, "--images"),
        (["train-classifier", "--help"], 0, "--gp-steps"),
        (["train-classifier", "--lr", "abc"], 2, "'abc' is not a valid float"),
        (["no-such-command"], 2, "No such command"),
        (["train", "--lr", "abc"], 2, "'abc' is not a valid float"),
        (["train", "--dataset", "nosuchdata"], 2, "nosuchdata"),
        (["train", "--epochs", "0"], 1, "error: --epochs must be positive"),
        (["train", "--model", "mvae", "--k-samples", "3"], 1, "error: --k-samples is not an option of --model mvae"),
        (["evaluate", "/nonexistent/run"], 1, "error: run directory /nonexistent/run does not exist"),
        (["swap", "/nonexistent/run", "--images", "x"], 2, "'x' is not a valid integer"),
    ],
)
def test_help_and_parse_errors_do_not_import_torch(args, status, fragment):
    result = run_cli(*args)
    assert result.returncode == status, result.stdout + result.stderr
    assert fragment in result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert imported(result) == [], f"{' '.join(args)} imported {imported(result)}"


def test_a_one_line_error_is_one_line_without_torch():
    result = run_cli("evaluate", "/nonexistent/run")
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("imported:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_the_help_lists_every_command_from_the_table():
    from pyro_ccvae_cli.main import COMMANDS, main

    listed = run_cli("--help").stdout
    assert list(main.list_commands(None)) == list(COMMANDS)
    for name, (module, attribute, description) in COMMANDS.items():
        command = getattr(importlib.import_module(f"pyro_ccvae_cli.{module}"), attribute)
        assert isinstance(command, click.Command) and command.name == name
        assert "\n" not in description and f"{name}  " in listed


def test_light_name_tables_match_their_registries():
    from pyro_ccvae import choices
    from pyro_ccvae.data import DATASETS
    from pyro_ccvae.likelihoods import LIKELIHOODS
    from pyro_ccvae.models.ccvae.elbo import JENSEN_ESTIMATORS

    assert choices.DATASETS == tuple(sorted(DATASETS))
    assert choices.LIKELIHOODS == tuple(LIKELIHOODS)
    assert choices.JENSEN_ESTIMATORS == tuple(JENSEN_ESTIMATORS)


def test_the_light_label_table_matches_the_loaders():
    from pyro_ccvae import choices
    from pyro_ccvae.data import celeba, chexpert, mnist, shapes

    assert set(choices.LABELS) == set(choices.DATASETS)
    assert choices.LABELS["shapes"][:2] == (shapes.LABEL_NAMES, tuple(shapes.CATEGORICAL_LABELS))
    for name in ("digits", "mnist"):
        assert choices.LABELS[name][:2] == ((mnist.MNIST_LABEL,), mnist.MNIST_CLASSES)
    assert choices.LABELS["fashion-mnist"][:2] == ((mnist.FASHION_LABEL,), mnist.FASHION_CLASSES)
    default, others, _ = choices.LABELS["chexpert"]
    assert default == chexpert.PAPER_LABELS and sorted(default + others) == sorted(chexpert.CHEXPERT_LABELS)
    assert choices.LABELS["celeba"][:2] == (celeba.PAPER_LABELS, ())


def test_labels_help_names_each_data_set_s_labels():
    from pyro_ccvae import choices
    from pyro_ccvae_cli.train import train

    text = next(param.help for param in train.params if param.name == "labels")
    paragraphs = text.split("\n\n")[1:]
    for dataset, (default, others, _) in choices.LABELS.items():
        paragraph = next(p for p in paragraphs if dataset in p.split(":")[0].split(", "))
        assert all(name in paragraph for name in default + others), (dataset, paragraph)


def test_each_family_s_settings_are_found_without_its_model_code():
    from pyro_ccvae.models import BUILT_IN, MODELS, config_class

    assert list(MODELS)[0] == "ccvae" and set(MODELS) == set(BUILT_IN)
    for name in MODELS:
        assert config_class(name) is MODELS[name].config_class and MODELS[name].name == name
    with pytest.raises(ValueError, match="unknown model 'nosuch'; choose one of ccvae, m2, diva, mvae"):
        config_class("nosuch")


@pytest.mark.parametrize(
    "package", ["pyro_ccvae", "pyro_ccvae.models", "pyro_ccvae.models.ccvae", "pyro_ccvae.models.m2", "pyro_ccvae.models.diva", "pyro_ccvae.models.mvae"]
)
def test_every_lazily_exported_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
