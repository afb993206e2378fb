"""The research targets of docs/results.md, measured: train, judge and evaluate on the built-in data.

    python benchmarks/research_targets.py --out runs/targets

For ``shapes`` and ``digits`` in turn it runs the documented commands (``ccvae-pyro train``,
``train-classifier`` for the judge, ``evaluate RUN --classifier JUDGE``), then prints one Markdown
row per data set with the figures docs/results.md quotes and ends with one JSON line of them. Extra
``train`` options (``--train-option=--likelihood=laplace``) reproduce its other rows.
The ``digits`` figures there are of its ten one-vs-rest binary labels, so ``digits`` runs (model
and judge) pass them explicitly: the data set's default is now one 10-class label.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

COLUMNS = [
    ("test accuracy (mean / min)", lambda s, m: _mean_min(s["test_accuracy"])),
    ("exact-flip (mean / min)", lambda s, m: _mean_min(m["single_interventions"]["exact_rate"])),
    ("generation accuracy (mean / min)", lambda s, m: _mean_min(m["generation_accuracy"]["accuracy"])),
    ("requested digit generated", lambda s, m: _fmt(_requested_class_rate(m["generation_accuracy"]))),
    ("swap metric", lambda s, m: _fmt(m["characteristic_swap"]["log_prob_change_mean"])),
    ("nuisance follow rate", lambda s, m: _fmt(m["nuisance_transfer"]["follow_rate"])),
    ("recon MAE / mean-image MAE", lambda s, m: _ratio(m["health"]["reconstruction"])),
    ("z_s leakage (mean / max)", lambda s, m: _mean_max(m["style_leakage"]["leakage"])),
    ("health warnings", lambda s, m: str(len(m["health"]["warnings"]))),
]


#: labels passed to ``train`` and ``train-classifier`` per data set (default: the data set's own).
LABELS = {"digits": ["--labels", ",".join("0123456789")]}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mean_min(values: dict) -> str:
    seen = [v for v in values.values() if v is not None]
    return f"{sum(seen) / len(seen):.3f} / {min(seen):.3f}" if seen else "-"


def _mean_max(values: dict) -> str:
    seen = [v for v in values.values() if v is not None]
    return f"{sum(seen) / len(seen):.3f} / {max(seen):.3f}" if seen else "-"


def _requested_class_rate(generation: dict) -> float:
    """How often the judge reads the requested class: digits as one-hot binary labels, or as one
    label of ten classes (the mean over such labels)."""
    if "one_hot" in generation:
        return generation["one_hot"]["requested_class_rate_mean"]
    means = list(generation["categorical"]["requested_class_rate_mean"].values())
    return sum(means) / len(means)


def _ratio(reconstruction: dict) -> str:
    return f"{reconstruction['model_mae']:.3f} / {reconstruction['mean_image_mae']:.3f}"


def figures(run: Path) -> dict:
    """The columns of docs/results.md for an evaluated run (``-`` where a figure does not apply)."""
    summary = json.loads((run / "summary.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    out = {}
    for name, get in COLUMNS:
        try:
            out[name] = get(summary, metrics)
        except (KeyError, TypeError):
            out[name] = "-"
    return out


def ccvae(*args) -> None:
    command = [sys.executable, "-m", "pyro_ccvae_cli.main", *map(str, args)]
    print("$ ccvae-pyro " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/targets"))
    parser.add_argument("--datasets", default="shapes,digits")
    parser.add_argument("--shapes-epochs", type=int, default=20)
    parser.add_argument("--digits-epochs", type=int, default=100)
    parser.add_argument("--judge-epochs", type=int, default=10)
    parser.add_argument("--num-train", type=int, help="fewer training images (for a quick check)")
    parser.add_argument("--image-size", type=int, choices=(32, 64), help="for the model and its judge (default: the data set's)")
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-option", action="append", default=[], help="extra train option, e.g. --train-option=--likelihood=laplace")
    args = parser.parse_args()
    common = ["--threads", args.threads, "--no-progress"]
    data = ["--num-train", args.num_train] if args.num_train else []
    data += ["--image-size", args.image_size] if args.image_size else []
    rows = {}
    for dataset in args.datasets.split(","):
        run, judge = args.out / dataset, args.out / f"{dataset}-judge"
        epochs = args.shapes_epochs if dataset == "shapes" else args.digits_epochs
        labels = LABELS.get(dataset, [])
        ccvae("train", "--dataset", dataset, "--out", run, "--epochs", epochs, *labels, *data, *args.train_option, *common)
        ccvae("train-classifier", "--dataset", dataset, "--out", judge, "--epochs", args.judge_epochs, *labels, *data, *common)
        ccvae("evaluate", run, "--classifier", judge, "--iw-samples", args.iw_samples, *common)
        rows[dataset] = figures(run)
    print("| data set | " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for dataset, values in rows.items():
        print(f"| `{dataset}` | " + " | ".join(values.values()) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
