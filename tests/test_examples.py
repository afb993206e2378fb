"""Every example runs once with options that make it tiny."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {
    "custom_guide.py": ["--epochs", "1", "--num-train", "64", "--k-samples", "4", "--z-style-dim", "3"],
}


def test_every_example_has_tiny_options():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_runs(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--out", str(tmp_path / "run"), *TINY[name]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint.pt").exists()
