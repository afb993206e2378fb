"""Compare the CCVAE with M2, DIVA and MVAE as the paper does, on one data set and one judge.

For every model and supervision rate it trains a run (or reuses a finished one), then scores it
on the test split with the same independent classifier (the judge) for every model:

- **Table 1**, classification: the mean per-label accuracy of the model's own ``q(y|x)``;
- **Table 2**, characteristic swaps: the mean absolute change of the judge's log-probabilities
  when an image's ``z_s`` is replaced by another's (lower is better; for M2 and MVAE ``z_c`` is
  the label vector, see their representations);
- **Table 5**, conditional generation: how often the judge reads back each label of ``y ~ p(y)``.

It writes ``OUT/tables.md``, ``OUT/tables.json`` and one page ``OUT/tables.html`` (runs in
``OUT/runs``, the judge in ``OUT/judge``), each with the health warnings of every run beside the
tables (a collapsed decoder or an unused latent makes its row a measure of a broken run)::

    python examples/compare_baselines.py --dataset shapes --sup-fracs 0.06,0.2,1.0 --epochs 20 --out runs/compare

``--set NAME=VALUE`` sets an option of every model that has it (``--set z_style_dim=8``). M2
sums unseen labels out exactly where the joint label space is small, at one decoder pass per
joint value (64 on ``shapes``: an epoch about 55 times the CCVAE's); ``--set label_sum=sampled``
trades that for its score-function estimator.
"""
from __future__ import annotations

import argparse
import html
import json
from dataclasses import fields
from pathlib import Path

import pyro
import torch

from pyro_ccvae.analysis import metrics
from pyro_ccvae.analysis.classifier import ClassifierConfig, LabelReader, load_classifier, train_classifier
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.generation import generation_accuracy
from pyro_ccvae.analysis.swap import swap_metric
from pyro_ccvae.config import TrainConfig, option_name
from pyro_ccvae.models import MODELS
from pyro_ccvae.run import has_run, load_run, read_summary
from pyro_ccvae.training import train

#: table -> (title, what a cell holds, how to read it from one scored run)
TABLES = {
    "table1_classification": ("Table 1: classification accuracy of q(y|x) (mean over labels; higher is better)", "accuracy"),
    "table2_swap": ("Table 2: characteristic swap, mean |change| of the judge's log-probability (lower is better)", "swap"),
    "table5_generation": ("Table 5: conditional generation accuracy read by the judge (mean over labels; higher is better)", "generation"),
}


def parse_sets(pairs: list[str]) -> dict:
    """``["z_style_dim=8", ...]`` -> ``{"z_style_dim": 8, ...}`` (values read as JSON where they parse)."""
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            out[name.strip()] = json.loads(value)
        except ValueError:
            out[name.strip()] = value
    return out


def model_options(model: str, sets: dict) -> dict:
    """The ``--set`` options that the family ``model`` declares."""
    names = {option_name(f) for f in fields(MODELS[model].config_class)}
    return {k: v for k, v in sets.items() if k in names}


def train_judge(args, out: Path) -> Path:
    """The independent classifier, trained on every training label of the data (once)."""
    if not (out / "classifier.pt").exists():
        config = ClassifierConfig(dataset=args.dataset, num_train=args.num_train, epochs=args.judge_epochs, seed=args.seed, device=args.device)
        train_classifier(config, out, progress=False)
    return out


def train_run(args, model: str, sup_frac: float, out: Path, sets: dict) -> Path:
    """A finished run of ``model`` at ``sup_frac`` in ``out`` (trained, or resumed up to ``--epochs``)."""
    options = dict(
        model=model, dataset=args.dataset, sup_frac=sup_frac, epochs=args.epochs, num_train=args.num_train,
        seed=args.seed, device=args.device, **model_options(model, sets),
    )  # fmt: skip
    done = has_run(out) and read_summary(out).get("epochs") == args.epochs
    if not done:
        train(TrainConfig.from_options(**options), out, resume=has_run(out), progress=False)
    return out


@torch.no_grad()
def score(run_dir: Path, judge: Path, args) -> dict:
    """Tables 1, 2 and 5 for one run, judged by ``judge``."""
    run = load_run(run_dir, args.device)
    pyro.set_rng_seed(args.seed)  # generation draws y, z_c and z_s: the same numbers on a rerun
    with run.scope():
        analysis = Analysis.from_run(run, "test", max_images=args.max_images, progress=False)
        info = run.config.data.info
        analysis.classifier = LabelReader(
            load_classifier(judge, run.device), run.label_names, info["channels"], info["image_size"], run.num_classes
        )
        return {
            "accuracy": metrics.classification(analysis)["accuracy_mean"],
            "swap": swap_metric(analysis)["log_prob_change_mean"],
            "generation": generation_accuracy(analysis, args.gen_samples)["accuracy_mean"],
        }


def health_warnings(run_dir: Path) -> list[str]:
    """The health warnings training wrote in the run's summary."""
    return list(read_summary(run_dir).get("health", {}).get("warnings", []))


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(tables: dict, models: list[str], fracs: list[float], judge_accuracy, warnings: dict) -> str:
    lines = [f"Judge: an independent classifier, test accuracy {judge_accuracy:.3f} (mean over labels).", ""]
    for key, (title, _) in TABLES.items():
        lines += [f"**{title}**", "", "| model | " + " | ".join(f"f = {f:g}" for f in fracs) + " |", "|---" * (len(fracs) + 1) + "|"]
        for model in models:
            lines.append(f"| {model} | " + " | ".join(_cell(tables[key][model][str(f)]) for f in fracs) + " |")
        lines.append("")
    lines += ["**Health warnings of the runs** (training's checks; a warned run's cells measure that run's failure):", ""]
    for model in models:
        for f in fracs:
            for warning in warnings[model][str(f)]:
                lines.append(f"- {model}, f = {f:g}: {warning}")
    if not any(warnings[m][str(f)] for m in models for f in fracs):
        lines.append("- none")
    return "\n".join(lines)


def html_page(tables: dict, models: list[str], fracs: list[float], judge_accuracy, warnings: dict, dataset: str) -> str:
    """The tables and warnings of :func:`markdown` as one HTML page."""
    esc = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>CCVAE and baselines on {esc(dataset)}</title></head><body>",
        f"<h1>CCVAE and baselines on {esc(dataset)}</h1>",
        f"<p>Judge: an independent classifier, test accuracy {judge_accuracy:.3f} (mean over labels).</p>",
    ]
    for key, (title, _) in TABLES.items():
        head = "".join(f"<th>f = {f:g}</th>" for f in fracs)
        rows = "".join(
            f"<tr><th>{esc(model)}</th>" + "".join(f"<td>{_cell(tables[key][model][str(f)])}</td>" for f in fracs) + "</tr>"
            for model in models
        )
        parts.append(f"<h2>{esc(title)}</h2><table border='1'><tr><th>model</th>{head}</tr>{rows}</table>")
    items = [f"<li>{esc(m)}, f = {f:g}: {esc(w)}</li>" for m in models for f in fracs for w in warnings[m][str(f)]]
    parts.append("<h2>Health warnings of the runs</h2><ul>" + ("".join(items) or "<li>none</li>") + "</ul></body></html>")
    return "\n".join(parts)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--models", default="ccvae,m2,diva,mvae")
    parser.add_argument("--sup-fracs", default="0.06,0.2,1.0")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num-train", type=int, help="fewer training images (for a quick check)")
    parser.add_argument("--judge-epochs", type=int, default=10)
    parser.add_argument("--gen-samples", type=int, default=1000)
    parser.add_argument("--max-images", type=int, help="score on the first test images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an option of every model that has it")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models, fracs, sets = args.models.split(","), [float(f) for f in args.sup_fracs.split(",")], parse_sets(args.set)
    for model in models:
        if model not in MODELS:
            raise SystemExit(f"error: unknown model {model!r}; choose from {', '.join(MODELS)}")

    judge = train_judge(args, args.out / "judge")
    judge_accuracy = read_summary(judge)["test_accuracy_mean"]
    tables = {key: {model: {} for model in models} for key in TABLES}
    warnings = {model: {} for model in models}
    for model in models:
        for frac in fracs:
            run = train_run(args, model, frac, args.out / "runs" / f"{model}-{frac:g}", sets)
            scores = score(run, judge, args)
            warnings[model][str(frac)] = health_warnings(run)
            for key, (_, field) in TABLES.items():
                tables[key][model][str(frac)] = scores[field]
            print(f"{model} f={frac:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)

    result = {
        "dataset": args.dataset, "epochs": args.epochs, "num_train": args.num_train, "judge_test_accuracy": judge_accuracy,
        **tables, "health_warnings": warnings,
    }  # fmt: skip
    (args.out / "tables.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "tables.md").write_text(markdown(tables, models, fracs, judge_accuracy, warnings) + "\n")
    (args.out / "tables.html").write_text(html_page(tables, models, fracs, judge_accuracy, warnings, args.dataset) + "\n")
    print((args.out / "tables.md").read_text())
    return result


if __name__ == "__main__":
    main()
