"""Print one Markdown row per evaluated run: the research figures the README's tables quote.

    python benchmarks/research_table.py RUN [RUN ...]

Each RUN must have been trained (``summary.json``) and evaluated (``metrics.json``, with a judge:
``ccvae-pyro evaluate RUN --classifier JUDGE``, or on ``shapes`` without one). Missing figures
print as ``-``; every row also goes to stdout as one JSON line at the end.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("test accuracy (mean / min)", lambda s, m: _mean_min(s["test_accuracy"])),
    ("exact-flip (mean / min)", lambda s, m: _mean_min(m["single_interventions"]["exact_rate"])),
    ("generation accuracy (mean / min)", lambda s, m: _mean_min(m["generation_accuracy"]["accuracy"])),
    ("swap metric", lambda s, m: _fmt(m["characteristic_swap"]["log_prob_change_mean"])),
    ("nuisance follow rate", lambda s, m: _fmt(m["nuisance_transfer"]["follow_rate"])),
    ("recon MAE / mean-image MAE", lambda s, m: _ratio(m["health"]["reconstruction"])),
    ("health warnings", lambda s, m: str(len(m["health"]["warnings"]))),
]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mean_min(values: dict) -> str:
    seen = [v for v in values.values() if v is not None]
    return f"{sum(seen) / len(seen):.3f} / {min(seen):.3f}" if seen else "-"


def _ratio(reconstruction: dict) -> str:
    return f"{reconstruction['model_mae']:.3f} / {reconstruction['mean_image_mae']:.3f}"


def row(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    out = {}
    for name, get in COLUMNS:
        try:
            out[name] = get(summary, metrics)
        except (KeyError, TypeError):
            out[name] = "-"
    return out


def main(paths: list[str]) -> None:
    rows = {path: row(Path(path)) for path in paths}
    print("| run | " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for path, values in rows.items():
        print(f"| `{Path(path).name}` | " + " | ".join(values.values()) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
