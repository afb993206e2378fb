"""The benchmarks still run (tiny settings) and end with one JSON line; no timing is asserted."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = {
    "throughput.py": ["--batch-sizes", "2", "--repeats", "1", "--warmup", "0", "--k-samples", "2"],
    "data_cache.py": ["--n", "8", "--batch", "4", "--read-batches", "2", "--decode-batches", "1"],
    "end_to_end.py": ["--n", "40", "--repeats", "1"],
    "evaluation.py": ["--max-images", "16", "--iw-samples", "3", "--repeats", "1", "--num-train", "64"],
    "research_targets.py": [
        "--datasets", "digits", "--digits-epochs", "1", "--judge-epochs", "1", "--num-train", "64", "--iw-samples", "2",
        "--train-option=--k-samples=4",
    ],
}


def test_every_benchmark_has_tiny_options():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(set(TINY) - {"end_to_end.py"}))  # end_to_end.py: its own test below
def test_benchmark_ends_with_a_json_line(name, tmp_path):
    out = ["--out", str(tmp_path / "out")] if name == "research_targets.py" else []
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *TINY[name], *out], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures and all(v is not None for v in figures.values())


def test_end_to_end_reports_every_pipeline(tmp_path):
    """Whole-process figures of ours (cold and warm) and the authors' pipeline, all positive."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "end_to_end.py"), *TINY["end_to_end.py"]],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["n_train"] == 36
    for name in ("ours_cold", "ours_warm", "authors"):
        for figure in ("wall_s", "images_per_s", "epoch_s", "peak_rss_mb", "cpu_s"):
            assert figures[f"{name}_{figure}"] > 0, (name, figure)
    assert figures["authors_over_ours_warm"] > 0 and figures["authors_over_ours_cold"] > 0
    assert "| authors |" in result.stdout
