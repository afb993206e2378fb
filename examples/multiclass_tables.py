"""The paper's multi-class tables (Tables 6 and 7, appendix D.6) for one 10-class label: test
accuracy of the model's classifier and how often a judge reads the requested class in images
generated from ``p(x | y)``, at several supervision rates, beside the paper's figures.

It drives the ``ccvae-pyro`` commands, as a user would::

    python examples/multiclass_tables.py --out runs/tables67                       # built-in digits
    python examples/multiclass_tables.py --out runs/tables67-mnist --dataset mnist --data-dir DATA

``DATA`` holds MNIST (or Fashion-MNIST) in torchvision's raw layout (``MNIST/raw/*-ubyte.gz``).
For every rate and model it runs ``train`` into ``OUT/<model>-sup-<rate>/`` (a finished run is
reused), ``train-classifier`` once into ``OUT/judge/``, and ``evaluate RUN --classifier OUT/judge``;
then ``OUT/tables.md`` and ``OUT/tables.json`` hold, per rate: the labelled points, test accuracy,
requested-class generation (the judge's reading of generated images, mean over the ten classes),
the judge's mutual information on those images beside its MI on real test images (Table 7),
and the paper's figures for the same model and rate on the full MNIST / Fashion-MNIST (MNIST's
beside ``digits``, with the difference in data stated). Extra
``train`` options go through ``--train-option=--epochs=20`` (repeatable).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pyro_ccvae.choices import DATASETS

from paper_figures import DATA_DIFFERENCES, RATES as PAPER_RATES, SOURCE, STAND_INS, paper_figure


def ccvae(*args) -> None:
    """Run one ``ccvae-pyro`` command (as ``python -m pyro_ccvae_cli``); stop on failure."""
    command = [sys.executable, "-m", "pyro_ccvae_cli", *map(str, args)]
    print("$ ccvae-pyro " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def finished(run: Path) -> bool:
    """Whether ``run`` holds a finished training run (its summary is written after the last epoch)."""
    return (run / "summary.json").is_file()


def requested_class_rate(metrics: dict) -> float:
    """The judge's mean reading of the requested class over the classes of the (one) label."""
    rates = metrics["generation_accuracy"]["categorical"]["requested_class_rate_mean"]
    return sum(rates.values()) / len(rates)


def judge_information(metrics: dict) -> tuple:
    """The judge's mean mutual information on generated images and on real test images (Table 7;
    None when the judge has no GP head: ``evaluation.skipped`` says why)."""
    section = metrics.get("judge_uncertainty")
    if section is None:
        return None, None
    generated, test = section["mutual_information_generated_mean"], section["mutual_information_test"]
    return sum(generated.values()) / len(generated), sum(test.values()) / len(test)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown(rows: list[dict], dataset: str, judge_accuracy: float, chance: float) -> str:
    lines = [
        f"One 10-class label on `{dataset}`: test accuracy of the model's q(y|x), and the share of images generated "
        f"for a requested class that the judge reads as that class (judge test accuracy {judge_accuracy:.3f}; "
        f"chance {chance:.3f}). Paper: {SOURCE}, Tables 6 and 7, on the full {STAND_INS.get(dataset, dataset)} "
        f"({DATA_DIFFERENCES.get(dataset, 'a different data set')}).",
        "",
        "MI: the judge's mutual information (nats) between its prediction and its parameters on the generated images "
        "(from its GP head; lower: the images look like the data it knows), beside its MI on real test images, the "
        "in-distribution reference.",
        "",
        "| model | supervision rate | labelled points | accuracy | paper | generation | paper | MI (test images) | paper MI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['sup_frac']:g} | {r['labelled']} | {_fmt(r['accuracy'])} | {_fmt(r['paper_accuracy'])} "
            f"| {_fmt(r['generation'])} | {_fmt(r['paper_generation'])} "
            f"| {_fmt(r['mutual_information'])} ({_fmt(r['mutual_information_test'])}) | {_fmt(r['paper_mutual_information'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tables67"), help="where the runs, the judge and the tables go (default: %(default)s)")
    parser.add_argument("--dataset", default="digits", choices=DATASETS, help="a data set of one 10-class label: digits (built in), mnist or fashion-mnist (default: %(default)s)")
    parser.add_argument("--data-dir", help="where MNIST / Fashion-MNIST lie (not for digits)")
    parser.add_argument("--models", default="ccvae", help="comma-separated families, e.g. ccvae,m2 (default: %(default)s)")
    parser.add_argument("--sup-fracs", default=",".join(f"{r:g}" for r in PAPER_RATES), help="comma-separated supervision rates, a run each (default: the paper's, %(default)s)")
    parser.add_argument("--judge-epochs", type=int, default=10, help="the most epochs the judge trains (it stops on a validation plateau; default: %(default)s)")
    parser.add_argument("--gen-samples", type=int, default=1000, help="generated images per run for the requested-class rate (default: %(default)s)")
    parser.add_argument("--max-images", type=int, help="evaluate on the first N test images only (a quick check)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each ccvae-pyro command (default: %(default)s)")
    parser.add_argument("--train-option", action="append", default=[], help="extra train option, e.g. --train-option=--epochs=20 (repeatable)")
    parser.add_argument("--judge-option", action="append", default=[], help="extra train-classifier option, e.g. --judge-option=--gp-steps=100 (repeatable)")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.sup_fracs.split(",") if r.strip()]
    except ValueError:
        raise SystemExit(f"bad --sup-fracs {args.sup_fracs!r}: expected comma-separated numbers, e.g. 0.06,1") from None
    data = ["--dataset", args.dataset] + (["--data-dir", args.data_dir] if args.data_dir else [])
    common = ["--threads", args.threads, "--no-progress"]
    judge = args.out / "judge"
    if not (judge / "summary.json").is_file():
        ccvae("train-classifier", "--out", judge, "--epochs", args.judge_epochs, *data, *args.judge_option, *common)
    judge_summary = json.loads((judge / "summary.json").read_text())
    rows = []
    for model in args.models.split(","):
        for rate in rates:
            run = args.out / f"{model}-sup-{rate:g}"
            if not finished(run):
                ccvae("train", "--model", model, "--sup-frac", rate, "--out", run, *data, *args.train_option, *common)
            limit = ["--max-images", args.max_images] if args.max_images else []
            ccvae("evaluate", run, "--classifier", judge, "--gen-samples", args.gen_samples, "--iw-samples", 10, *limit, *common)
            summary = json.loads((run / "summary.json").read_text())
            metrics = json.loads((run / "metrics.json").read_text())
            information, test_information = judge_information(metrics)
            paper_table7 = paper_figure("table7", args.dataset, model, rate) or (None, None)
            rows.append({
                "model": model, "sup_frac": rate, "labelled": summary["labelled"],
                "accuracy": summary["test_accuracy_mean"], "generation": requested_class_rate(metrics),
                "paper_accuracy": paper_figure("table6", args.dataset, model, rate),
                "paper_generation": paper_table7[0],
                "mutual_information": information, "mutual_information_test": test_information,
                "paper_mutual_information": paper_table7[1],
            })  # fmt: skip
    chance = next(iter(judge_summary["test_chance"].values()))
    judge_accuracy = judge_summary["test_accuracy_mean"]
    tables = {"dataset": args.dataset, "train_options": args.train_option, "judge_accuracy": judge_accuracy, "chance": chance, "rows": rows}
    (args.out / "tables.json").write_text(json.dumps(tables, indent=2) + "\n")
    text = markdown(rows, args.dataset, judge_accuracy, chance)
    (args.out / "tables.md").write_text(text)
    print(text, end="")
    return tables


if __name__ == "__main__":
    main()
