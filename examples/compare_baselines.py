"""Compare the CCVAE with M2, DIVA and MVAE as the paper does: on each data set, one judge for every model.

For every data set, model and supervision rate it trains a run (or reuses a finished one), then
scores it on the test split with the same independent classifier (the judge) for every model:

- **Table 1**, classification: the mean per-label accuracy of the model's own ``q(y|x)`` (on data
  with a multi-class label, such as ``digits``, this is the paper's Table 6);
- **Table 2**, characteristic swaps: the mean absolute change of the judge's log-probabilities
  when an image's ``z_s`` is replaced by another's (lower is better; for M2 and MVAE ``z_c`` is
  the label vector, see their representations);
- **Table 5**, conditional generation: how often the judge reads back each label of ``y ~ p(y)``.

Each cell holds our figure with the paper's for the same model and rate in brackets
(:mod:`paper_figures`: CelebA's figures beside ``shapes``, MNIST's beside ``digits``, with the
data-set difference stated), and each column says how many pairs of models ours ranks the
paper's way. It writes ``OUT/tables.md``, ``OUT/tables.json`` and one page ``OUT/tables.html`` (runs in
``OUT/DATASET/runs``, the judge in ``OUT/DATASET/judge``), each with the health warnings of every
run beside the tables (a collapsed decoder or an unused latent makes its row a measure of a broken
run). The default, ``shapes`` and ``digits`` at 0.06, 0.2 and 1, took about 20 minutes on one
thread of a 2-core VM::

    python examples/compare_baselines.py --out runs/compare

Each data set has its own defaults (:data:`DATASET_DEFAULTS`): ``shapes`` trains on 4,000 images
for 10 epochs with M2's score-function estimator (``label_sum=sampled``; the exact sum over its
64 joint label values costs 64 decoder passes per unlabelled image); ``digits`` trains 20 epochs
(``train``'s default; at 10 the CCVAE's decoder collapsed at f = 0.06) on all 1,258 training
images with the data set's defaults, M2 summing its ten classes exactly. ``--epochs`` and
``--num-train`` override them for every data set; ``--set NAME=VALUE`` sets an option of every
model that has it (``--set z_style_dim=8``), over the data set's own.
"""
from __future__ import annotations

import argparse
import html
import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Optional

import pyro
import torch

from pyro_ccvae.analysis import metrics
from pyro_ccvae.analysis.classifier import ClassifierConfig, load_classifier, train_classifier
from pyro_ccvae.analysis.judge import LabelReader
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.fid import fid_scores, load_inception
from pyro_ccvae.analysis.generation import generation_accuracy
from pyro_ccvae.analysis.judge_uncertainty import judge_uncertainty
from pyro_ccvae.analysis.swap import swap_metric
from pyro_ccvae.config import TrainConfig, option_name
from pyro_ccvae.models import MODELS
from pyro_ccvae.run_directory import has_run, load_run, read_summary
from pyro_ccvae.training import train

from paper_figures import DATA_DIFFERENCES, SOURCE, STAND_INS, pairs_agreeing, paper_figure

#: table -> (title, the score a cell holds); Table 4 needs --fid-weights, Table 7 a judge with a GP head.
TABLES = {
    "table1_classification": ("Table 1: classification accuracy of q(y|x) (mean over labels; higher is better)", "accuracy"),
    "table2_swap": ("Table 2: characteristic swap, mean |change| of the judge's log-probability (lower is better)", "swap"),
    "table4_fid": ("Table 4: FID of generated images against as many test images (lower is better)", "fid"),
    "table5_generation": ("Table 5: conditional generation accuracy read by the judge (mean over labels; higher is better)", "generation"),
    "table7_information": (
        "Table 7: the judge's mutual information on generated images, nats (mean over labels and requested classes; "
        "lower is better; the real test images' MI in the last row)", "information",
    ),
}  # fmt: skip
#: why a table has no figures.
SKIP_REASONS = {
    "table4_fid": "FID needs Inception weights: give --fid-weights FILE (docs/analysis.md, FID, says where the official file is published)",
    "table7_information": "the judge has no GP head (trained with --gp-steps 0, or before the head existed): train it again",
}
#: tables where a lower figure is better.
LOWER_IS_BETTER = {"table2_swap", "table4_fid", "table7_information"}


#: per data set: training images (None: all), epochs and model options (``--set``) of the default comparison.
DATASET_DEFAULTS = {
    "shapes": {"num_train": 4000, "epochs": 10, "sets": {"label_sum": "sampled"}},
    "digits": {"num_train": None, "epochs": 20, "sets": {}},
}
FALLBACK_DEFAULTS = {"num_train": None, "epochs": 20, "sets": {}}


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


def settings(args, dataset: str) -> argparse.Namespace:
    """``args`` for one data set: its defaults, where ``--epochs``, ``--num-train`` and ``--set`` leave them."""
    defaults = DATASET_DEFAULTS.get(dataset, FALLBACK_DEFAULTS)
    return argparse.Namespace(**{
        **vars(args), "dataset": dataset,
        "epochs": args.epochs if args.epochs is not None else defaults["epochs"],
        "num_train": args.num_train if args.num_train is not None else defaults["num_train"],
        "sets": {**defaults["sets"], **parse_sets(args.set)},
    })  # fmt: skip


def train_judge(args, out: Path) -> Path:
    """The independent classifier, trained on every training label of the data (once)."""
    if not (out / "classifier.pt").exists():
        config = ClassifierConfig(
            dataset=args.dataset, num_train=args.num_train, epochs=args.judge_epochs, gp_steps=args.judge_gp_steps, seed=args.seed, device=args.device
        )  # fmt: skip
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


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def information_scores(analysis: Analysis, judge: Path) -> tuple:
    """Table 7 for one run: the judge's mean MI on generated images and on real test images (None, None without a GP head)."""
    section, _ = judge_uncertainty(analysis, judge)
    if section is None:
        return None, None
    return mean(section["mutual_information_generated_mean"].values()), mean(section["mutual_information_test"].values())


@torch.no_grad()
def score(run_dir: Path, judge: Path, args, inception=None) -> dict:
    """Tables 1, 2, 4 (with ``inception``), 5 and 7 for one run, judged by ``judge``, and whether it has a multi-class label."""
    run = load_run(run_dir, args.device)
    pyro.set_rng_seed(args.seed)  # generation draws y, z_c and z_s: the same numbers on a rerun
    with run.scope():
        analysis = Analysis.from_run(run, "test", max_images=args.max_images, progress=False)
        info = run.config.data.info
        analysis.classifier = LabelReader(
            load_classifier(judge, run.device), run.label_names, info["channels"], info["image_size"], run.num_classes
        )
        scores = {
            "accuracy": metrics.classification(analysis)["accuracy_mean"],
            "swap": swap_metric(analysis)["log_prob_change_mean"],
            "generation": generation_accuracy(analysis, args.gen_samples)["accuracy_mean"],
            "multiclass": max(run.num_classes) > 2,
        }
        scores["information"], scores["information_test"] = information_scores(analysis, judge)
        scores["fid"] = None if inception is None else fid_scores(analysis, inception, args.fid_images)["generated"]
        return scores


def health_warnings(run_dir: Path) -> list[str]:
    """The health warnings training wrote in the run's summary."""
    return list(read_summary(run_dir).get("health", {}).get("warnings", []))


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def titles(result: dict) -> dict:
    """The title of each table ``result`` holds; on multi-class data Table 1 is the paper's Table 6, Table 5 its Table 7."""
    multiclass = result["multiclass"]
    out = {key: title for key, (title, _) in TABLES.items() if key in result}
    if multiclass:
        out["table1_classification"] += " = the paper's Table 6 (multi-class accuracy)"
        out["table5_generation"] += " = the paper's Table 7 (requested-class accuracy)"
    return out


def reference_row(result: dict, key: str) -> Optional[str]:
    """Table 7's reference: the judge's MI on real test images (the same for every run)."""
    if key != "table7_information" or result["judge_test_information"] is None:
        return None
    return f"real test images: {result['judge_test_information']:.3f}"


def paper_table(key: str, multiclass: bool) -> str:
    """The paper's table printed beside our table ``key``."""
    if multiclass and key in ("table1_classification", "table5_generation"):
        return "table6" if key == "table1_classification" else "table7"
    return key.split("_")[0]


def _paper_value(key: str, value):
    """Table 7 holds (accuracy, MI): the part that our table ``key`` shows."""
    if isinstance(value, tuple):
        return value[1] if key == "table7_information" else value[0]
    return value


def paper_cells(result: dict, key: str, models: list[str], fracs: list[float]) -> dict:
    """``{model: {frac: the paper's figure or None}}`` for our table ``key`` of one data set."""
    table = paper_table(key, result["multiclass"])
    out = {}
    for model in models:
        out[model] = {}
        for f in fracs:
            value = paper_figure(table, result["dataset"], model, f)
            out[model][str(f)] = _paper_value(key, value)
    return out


def agreement(result: dict, key: str, models: list[str], fracs: list[float]) -> dict:
    """Per rate, ``(agreeing, compared)`` pairs of models ranked the paper's way (lower-is-better tables negated)."""
    sign = -1 if key in LOWER_IS_BETTER else 1
    paper = paper_cells(result, key, models, fracs)
    out = {}
    for f in fracs:
        ours = {m: None if result[key][m][str(f)] is None else sign * result[key][m][str(f)] for m in models}
        theirs = {m: None if paper[m][str(f)] is None else sign * paper[m][str(f)] for m in models}
        out[str(f)] = pairs_agreeing(ours, theirs)
    return out


def _with_paper(ours, paper) -> str:
    return _cell(ours) + ("" if paper is None else f" ({paper:.3f})")


def _agreement_cell(pair: tuple[int, int]) -> str:
    agreeing, compared = pair
    return "-" if compared == 0 else f"{agreeing}/{compared}" + (" agrees" if agreeing == compared else " differs")


def comparison_note(dataset: str) -> str:
    """Which of the paper's data sets our tables of ``dataset`` are read beside, and the difference."""
    beside = STAND_INS.get(dataset)
    if beside is None:
        return f"The paper has no figures for a data set like `{dataset}`: no paper figures beside ours."
    return (
        f"In brackets: the paper's figure for the same model and rate on {beside} ({SOURCE}); "
        f"{DATA_DIFFERENCES.get(dataset, 'a different data set')}. The figures are not comparable in level, only in "
        "the models' ordering: the last row counts the pairs of models ours ranks the paper's way."
    )


def markdown(result: dict, models: list[str], fracs: list[float]) -> str:
    """One data set's tables and its runs' health warnings, as Markdown."""
    warnings = result["health_warnings"]
    lines = [
        f"### {result['dataset']} ({result['epochs']} epochs, {result['num_train'] or 'all'} training images)", "",
        f"Judge: an independent classifier, test accuracy {result['judge_test_accuracy']:.3f} (mean over labels).", "",
        comparison_note(result["dataset"]), "",
    ]  # fmt: skip
    for key, title in titles(result).items():
        paper, agree = paper_cells(result, key, models, fracs), agreement(result, key, models, fracs)
        lines += [f"**{title}**", "", "| model | " + " | ".join(f"f = {f:g}" for f in fracs) + " |", "|---" * (len(fracs) + 1) + "|"]
        for model in models:
            lines.append(f"| {model} | " + " | ".join(_with_paper(result[key][model][str(f)], paper[model][str(f)]) for f in fracs) + " |")
        lines.append("| pairs ranked as the paper | " + " | ".join(_agreement_cell(agree[str(f)]) for f in fracs) + " |")
        reference = reference_row(result, key)
        lines += ([f"| {reference} |" + " |" * (len(fracs) - 1)] if reference else []) + [""]
    lines += [f"*{TABLES[key][0].split(':')[0]}: not measured* ({why})." for key, why in result["skipped_tables"].items()]
    lines += [""] if result["skipped_tables"] else []
    lines += ["**Health warnings of the runs** (training's checks; a warned run's cells measure that run's failure):", ""]
    items = [f"- {m}, f = {f:g}: {w}" for m in models for f in fracs for w in warnings[m][str(f)]]
    return "\n".join(lines + (items or ["- none"]))


def html_section(result: dict, models: list[str], fracs: list[float]) -> str:
    """The tables and warnings of :func:`markdown` as a section of the HTML page."""
    esc, warnings = html.escape, result["health_warnings"]
    parts = [
        f"<h2>{esc(result['dataset'])} ({result['epochs']} epochs, {result['num_train'] or 'all'} training images)</h2>",
        f"<p>Judge: an independent classifier, test accuracy {result['judge_test_accuracy']:.3f} (mean over labels).</p>",
        f"<p>{esc(comparison_note(result['dataset']))}</p>",
    ]
    for key, title in titles(result).items():
        paper, agree = paper_cells(result, key, models, fracs), agreement(result, key, models, fracs)
        reference = reference_row(result, key)
        head = "".join(f"<th>f = {f:g}</th>" for f in fracs)
        rows = "".join(
            f"<tr><th>{esc(model)}</th>"
            + "".join(f"<td>{esc(_with_paper(result[key][model][str(f)], paper[model][str(f)]))}</td>" for f in fracs) + "</tr>"
            for model in models
        ) + "<tr><th>pairs ranked as the paper</th>" + "".join(f"<td>{_agreement_cell(agree[str(f)])}</td>" for f in fracs) + "</tr>"
        rows += f"<tr><th colspan='{len(fracs) + 1}'>{esc(reference)}</th></tr>" if reference else ""
        parts.append(f"<h3>{esc(title)}</h3><table border='1'><tr><th>model</th>{head}</tr>{rows}</table>")
    parts += [f"<p><em>{esc(TABLES[key][0].split(':')[0])}: not measured</em> ({esc(why)}).</p>" for key, why in result["skipped_tables"].items()]
    items = [f"<li>{esc(m)}, f = {f:g}: {esc(w)}</li>" for m in models for f in fracs for w in warnings[m][str(f)]]
    parts.append("<h3>Health warnings of the runs</h3><ul>" + ("".join(items) or "<li>none</li>") + "</ul>")
    return "\n".join(parts)


def compare(args, models: list[str], fracs: list[float]) -> dict:
    """Train, judge and score every model at every rate on ``args.dataset``; its tables."""
    out = args.out / args.dataset
    judge = train_judge(args, out / "judge")
    judge_accuracy = read_summary(judge)["test_accuracy_mean"]
    inception = None if args.fid_weights is None else load_inception(args.fid_weights, args.device)
    tables = {key: {model: {} for model in models} for key in TABLES}
    warnings = {model: {} for model in models}
    information_test: list[float] = []
    multiclass = False
    for model in models:
        for frac in fracs:
            run = train_run(args, model, frac, out / "runs" / f"{model}-{frac:g}", args.sets)
            scores = score(run, judge, args, inception)
            multiclass = multiclass or scores.pop("multiclass")
            test = scores.pop("information_test")
            if test is not None:
                information_test.append(test)
            warnings[model][str(frac)] = health_warnings(run)
            for key, (_, field) in TABLES.items():
                tables[key][model][str(frac)] = scores[field]
            print(f"{args.dataset} {model} f={frac:g}: " + ", ".join(f"{k} {_cell(v)}" for k, v in scores.items()), flush=True)
    # a table no run has a figure for (FID without --fid-weights, MI without a GP head) is left out, with why
    skipped = {key: SKIP_REASONS[key] for key in TABLES if all(v is None for cells in tables[key].values() for v in cells.values())}
    result = {
        "dataset": args.dataset, "epochs": args.epochs, "num_train": args.num_train, "model_options": args.sets,
        "judge_test_accuracy": judge_accuracy, "multiclass": multiclass,
        **{key: cells for key, cells in tables.items() if key not in skipped}, "skipped_tables": skipped,
        "judge_test_information": mean(information_test) if information_test else None, "health_warnings": warnings,
    }  # fmt: skip
    result["paper"] = {
        key: {"table": paper_table(key, multiclass), "figures": paper_cells(result, key, models, fracs),
              "pairs_agreeing": agreement(result, key, models, fracs)}
        for key in TABLES if key not in skipped
    }  # fmt: skip
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/compare"), help="where the runs, the judges and the tables go (default: %(default)s)")
    parser.add_argument("--datasets", default="shapes,digits", help="comma-separated data sets, each compared on its own (default: %(default)s)")
    parser.add_argument("--models", default="ccvae,m2,diva,mvae", help="comma-separated model families (default: %(default)s)")
    parser.add_argument("--sup-fracs", default="0.06,0.2,1.0", help="comma-separated supervision rates, a run each (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: the data set's, DATASET_DEFAULTS)")
    parser.add_argument("--num-train", type=int, help="training images of every data set (default: the data set's)")
    parser.add_argument("--judge-epochs", type=int, default=10, help="the most epochs the judge trains (it stops on a validation plateau; default: %(default)s)")
    parser.add_argument("--judge-gp-steps", type=int, default=300, help="steps fitting the judge's GP head (Table 7); 0: none (default: %(default)s)")
    parser.add_argument("--gen-samples", type=int, default=1000, help="generated images per run for Tables 5 and 7 (default: %(default)s)")
    parser.add_argument("--max-images", type=int, help="score on the first test images only")
    parser.add_argument("--fid-weights", type=Path, help="Inception weights for Table 4 (FID; docs/analysis.md, FID); without it Table 4 is not measured")
    parser.add_argument("--fid-images", type=int, default=500, help="test and generated images per FID (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run and judge (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an option of every model that has it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training's line per epoch, as ccvae-pyro shows it
    torch.set_num_threads(args.threads)
    models, fracs = args.models.split(","), [float(f) for f in args.sup_fracs.split(",")]
    for model in models:
        if model not in MODELS:
            raise SystemExit(f"error: unknown model {model!r}; choose from {', '.join(MODELS)}")

    results = {dataset: compare(settings(args, dataset), models, fracs) for dataset in args.datasets.split(",")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.json").write_text(json.dumps({"datasets": results}, indent=2) + "\n")
    (args.out / "tables.md").write_text("\n\n".join(markdown(r, models, fracs) for r in results.values()) + "\n")
    title = "CCVAE and baselines on " + ", ".join(results)
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"]
    page += [html_section(r, models, fracs) for r in results.values()]
    (args.out / "tables.html").write_text("\n".join(page) + "\n</body></html>\n")
    print((args.out / "tables.md").read_text())
    return results


if __name__ == "__main__":
    main()
