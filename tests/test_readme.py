"""The README's set-up commands are the ones CI runs and the ones that work."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks():
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(b.strip() for b in bash_blocks() if "pytest" in b)
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_command in ci_lines


def test_readme_main_command_trains_the_built_in_data_set():
    main_command = bash_blocks()[0]
    assert "pip install" in main_command and "ccvae-pyro train" in main_command
