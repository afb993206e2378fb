"""``RUN/report.html``: every metric and figure of a run on one static page.

The page uses relative ``<img src="figures/...">`` paths to files that exist when it is written,
and no scripts or external resources, so it opens from disk (or a copied run directory) without
a server. Every analysis command rewrites it, so it always shows all the run's figures.

Each section and figure records the checkpoint it describes (``metrics.json["provenance"]``); one
that describes another checkpoint than the run's newest (a run resumed since, say) is marked
where it is shown and listed among the warnings, so that old and new results never sit side by
side unmarked.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Optional, Sequence

from ..checkpoint import atomic_write_text, newest_digest
from ..run_directory import CHECKPOINT, CONFIG, FIGURES, PROVENANCE, REPORT, RunError, figure_paths, read_config, read_metrics, read_summary
from .sections import JUDGED_SECTIONS, headlines

#: the settings the report shows, by option name (those a model family lacks are left out).
SETTINGS = ("model", "dataset", "guide", "epochs", "sup_frac", "sup_schedule", "z_style_dim", "z_char_dim", "likelihood", "seed")

#: figure-name prefix -> caption (the first matching prefix wins).
CAPTIONS = {
    "reconstructions": "Test images and, below each row, their reconstructions (decoded posterior means).",
    "latent_densities": "Posterior means of each z_c^i for test images of each class y_i = 0, 1, ...; dashed: "
    "the conditional-prior means. W1: 1-D Wasserstein distance (labels of more than two classes: its mean over "
    "pairs of classes).",
    "confusion": "Confusion matrix of q(y|x) for a label of more than two classes: test images counted by true "
    "class (rows) and most probable predicted class (columns).",
    "intervention_matrix": "Single interventions: mean |change| of the judge's log-probability of each label "
    "(columns: the label read by the judge) when z_c of one label (rows: the label intervened on) is set to "
    "another class's prior mean (the other class of a binary label; the mean over the other classes otherwise).",
    "traverse_pair": "2-D traversal: one test image with two characteristic latents varied (rows, columns).",
    "traverse": "1-D traversal of one characteristic latent, the rest of z a test image's posterior mean: a binary "
    "label from beyond the y=0 prior mean to beyond the y=1 mean (one image per row); a label of 3 classes over the "
    "triangle of mixes of its three class means (corners: the classes); more classes along the path through its "
    "class means (a row per leg).",
    "generate": "Conditional generation: z_c ~ p(z_c|y) for the row's label vector, z_s ~ N(0, I).",
    "intervene": "Interventions: each binary label switched in turn, each label of more classes set to each class, "
    "z_c^i ~ p(z_c^i | y_i = target).",
    "diversity": "Diversity maps: per-pixel variance over draws of the intervened z_c^i, painted over the "
    "reconstruction (colour bar: the variance; opacity grows with it).",
    "class_draws": "Diversity within each class: draws z_c^i ~ p(z_c^i | y_i = row's class) decoded with one test "
    "image's z_s and other characteristic latents fixed.",
    "locality": "Edit locality: a test image, its reconstruction, the image decoded after the row's intervention, the "
    "change |intervened - reconstruction| (colour bar) and, on shapes, the region where the renderer changes that label.",
    "swap": "Characteristic swaps: z_c of the row's image with z_s of the column's image (first row and column: "
    "the originals; diagonal: reconstructions).",
}

_STYLE = """
body { font-family: sans-serif; margin: 1.5em 2em; max-width: none; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.key, th.key { text-align: left; }
tr.unreliable td { background: #fff3cd; color: #6b5000; }
.stale { background: #fff3cd; color: #6b5000; padding: 2px 6px; }
.box { padding: 0.6em 1.2em; margin: 1em 0; border-radius: 4px; }
.warnings { border: 2px solid #c0392b; background: #fdecea; }
.healthy { border: 2px solid #2e7d32; background: #edf7ee; }
.note { border: 1px solid #999; background: #f6f6f6; }
.sections { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.figures { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0 0 1em; flex: 0 1 auto; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; max-width: 60em; } code { background: #f4f4f4; }
"""

def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{html.escape(str(k))}: {_fmt(v)}" for k, v in value.items()) + "}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], marked: Sequence[bool] = ()) -> str:
    """An HTML table; the first column holds names (left-aligned), the others values. Rows whose
    ``marked`` entry is true are highlighted as unreliable."""

    def cells(values, tag):
        first, *rest = values
        return f'<{tag} class="key">{html.escape(str(first))}</{tag}>' + "".join(
            f"<{tag}>{html.escape(str(v)) if tag == 'th' else _fmt(v)}</{tag}>" for v in rest
        )

    marked = list(marked) + [False] * (len(rows) - len(marked))
    body = "".join(
        ('<tr class="unreliable">' if mark else "<tr>") + cells(row, "td") + "</tr>" for row, mark in zip(rows, marked)
    )
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


#: what the rows and columns of a per-label matrix are, by its key.
MATRIX_AXES = {
    "confusion": "rows: the true class; columns: the predicted class",
    "wasserstein_matrix": "1-D Wasserstein distance between the classes of the row and the column, first dim",
    "wasserstein_matrix_all_dims": "sum over the dims of the 1-D Wasserstein distances between the row's and column's classes",
}


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, list) for row in value)


def _class_matrix(key: str, label: str, matrix: list) -> str:
    """A per-label matrix (classes by classes) as a table with the classes as headers."""
    classes = [f"{label}={k}" for k in range(len(matrix))]
    axes = MATRIX_AXES.get(key, "rows and columns: the classes")
    return f"<p>{html.escape(key)}: {html.escape(label)} ({html.escape(axes)})</p>" + _table(
        ["", *classes], [[c, *row] for c, row in zip(classes, matrix)]
    )


def _section(name: str, values: dict, label_names: Sequence[str], unreliable: Sequence[str] = (), level: int = 3) -> str:
    """A metrics section: per-label dicts as one label x metric table (labels in ``unreliable``
    marked), per-label class-by-class matrices (confusion, distances) as one table each, a labelled
    matrix as a grid, nested dicts as sub-sections, the rest as a key/value table. ``warnings``
    lists are left out: the summary shows them."""
    per_label = {k: v for k, v in values.items() if isinstance(v, dict) and v and set(v) <= set(label_names)}
    matrices = {k: v for k, v in per_label.items() if all(_is_matrix(m) for m in v.values())}
    per_label = {k: v for k, v in per_label.items() if k not in matrices}
    nested = {k: v for k, v in values.items() if isinstance(v, dict) and k not in per_label and k not in matrices}
    parts = [f"<h{level}>{html.escape(name)}</h{level}>"]
    if per_label:
        labels = [n for n in label_names if any(n in v for v in per_label.values())]
        header, rows = ["label", *per_label], [[n, *(v.get(n) for v in per_label.values())] for n in labels]
        if unreliable:
            header.append("judge")
            rows = [[*row, "unreliable" if row[0] in unreliable else "ok"] for row in rows]
        parts.append(_table(header, rows, [n in unreliable for n in labels]))
    matrix = values.get("matrix")
    if isinstance(matrix, list) and isinstance(values.get("labels"), list):
        names = [f"{n} (unreliable)" if n in unreliable else n for n in values["labels"]]
        parts.append("<p>matrix (rows: the label intervened on; columns: the label read by the judge)</p>")
        parts.append(_table(["", *names], [[n, *row] for n, row in zip(names, matrix)], [n in unreliable for n in values["labels"]]))
    for key, by_label in matrices.items():
        parts += [_class_matrix(key, label, matrix) for label, matrix in by_label.items()]
    skip = {*per_label, *matrices, *nested, "matrix", "labels", "warnings"}
    rest = [[k, v] for k, v in values.items() if k not in skip]
    if rest:
        parts.append(_table(["metric", "value"], rest))
    for key, sub in nested.items():
        parts.append(_section(f"{name} / {key}", sub, label_names, unreliable, min(level + 1, 6)))
    return "\n".join(parts)


def _lookup(metrics: dict, section: str, path: Sequence[str]) -> Any:
    value = metrics.get(section)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


class Provenance:
    """Which checkpoint each section and figure describes, against the run's newest checkpoint
    (the digest recorded last beside ``checkpoint.pt``; else the one the latest command read)."""

    def __init__(self, run_dir: Path, provenance: Any, training: dict):
        provenance = provenance if isinstance(provenance, dict) else {}
        self.sections = provenance.get("sections") if isinstance(provenance.get("sections"), dict) else {}
        self.figures = provenance.get("figures") if isinstance(provenance.get("figures"), dict) else {}
        last_read = provenance.get("checkpoint") if isinstance(provenance.get("checkpoint"), dict) else {}
        self.newest = newest_digest(Path(run_dir) / CHECKPOINT) or last_read.get("sha256")
        known = [last_read, training.get("checkpoint") if isinstance(training.get("checkpoint"), dict) else {}]
        self.newest_epoch = next((k.get("epoch") for k in known if k.get("sha256") == self.newest and k.get("epoch") is not None), None)

    def stale(self, described: Any) -> Optional[str]:
        """The checkpoint a result recorded as describing ``described`` is, when it is not the
        newest, in words (``"the checkpoint of epoch 2 (sha256 ...), not the run's epoch 5 one"``); ``None`` when it describes the newest (or records nothing, as results written before
        provenance was recorded)."""
        if not isinstance(described, dict) or self.newest is None or described.get("sha256") in (None, self.newest):
            return None
        epoch = described.get("epoch")
        newest = f"epoch {self.newest_epoch}" if self.newest_epoch is not None else "the newest"
        return (
            f"the checkpoint of epoch {epoch if epoch is not None else '?'} "
            f"(sha256 {str(described.get('sha256'))[:12]}), not the run's {newest} one"
        )


def _summary(metrics: dict, training: dict, provenance: Optional["Provenance"] = None) -> str:
    """The top of the page: every warning in a box, the headline numbers, and what the judge is."""
    evaluation = metrics.get("evaluation", {})
    warnings = [f"evaluate, test split: {w}" for w in metrics.get("health", {}).get("warnings", [])]
    if provenance is not None:
        stale = {name: provenance.stale(provenance.sections.get(name)) for name in metrics}
        stale_names = [name for name, why in stale.items() if why]
        if stale_names:
            which = f"section {stale_names[0]} describes" if len(stale_names) == 1 else f"sections {', '.join(stale_names)} describe"
            warnings.append(f"the {which} {stale[stale_names[0]]}: run the commands that wrote them again (ccvae-pyro evaluate, ...)")
        stale_figures = sorted(name for name, d in provenance.figures.items() if provenance.stale(d))
        if stale_figures:
            warnings.append(f"{len(stale_figures)} figure(s) describe an older checkpoint (marked below): {', '.join(stale_figures[:6])}")
    warnings += [f"training, validation split: {w}" for w in training.get("health", {}).get("warnings", [])]
    unreliable = evaluation.get("unreliable_labels") or []
    chance = evaluation.get("judge_test_chance") or {}
    if unreliable:
        accuracy = evaluation.get("judge_test_accuracy") or {}
        listed = ", ".join(
            f"{n} ({_fmt(accuracy.get(n))}" + (f"; chance {_fmt(chance[n])})" if chance.get(n) is not None else ")") for n in unreliable
        )
        warnings.append(
            f"the judge ({evaluation.get('judge')}) reads these labels of real test images with an accuracy below "
            f"{evaluation.get('reliable_judge_accuracy')}: {listed}; their judged metrics below are marked unreliable"
        )
    parts = ["<h2>Summary</h2>"]
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f'<div class="box warnings"><b>Warnings</b><ul>{items}</ul></div>')
    elif "health" in metrics or "health" in training:
        parts.append('<div class="box healthy">Health checks passed: no collapsed decoder, z_s in use, and the '
                     "classifier recognises samples of every label's conditional prior.</div>")  # fmt: skip
    rows = [[text, _lookup(metrics, section, path)] for section, path, text in headlines() if _lookup(metrics, section, path) is not None]
    if not rows and training.get("test_accuracy_mean") is not None:
        rows.append(["test accuracy of q(y|x) after training, mean over labels", training["test_accuracy_mean"]])
    if rows:
        parts.append(_table(["headline", "value"], rows))
    if evaluation and evaluation.get("judge") is None:
        parts.append(
            '<div class="box note">Judged metrics (single interventions, characteristic swap, conditional-generation '
            "accuracy) are not on this page: the last <code>evaluate</code> ran without a judge. Results of earlier "
            "judged evaluations are dropped, so that every number here comes from one evaluation; rerun "
            "<code>ccvae-pyro evaluate RUN --classifier DIR</code> for them.</div>"
        )
    elif evaluation.get("judge"):
        parts.append(
            f"<p>Judged metrics are read by the {html.escape(str(evaluation['judge']))} "
            f"(<code>{html.escape(str(evaluation.get('classifier')))}</code>). Its accuracy on real test images, per "
            f"label; below {_fmt(evaluation.get('reliable_judge_accuracy'))} a label's judged metrics are unreliable "
            "(chance: the share of the label's most frequent class, what always answering it scores):</p>"
        )
        accuracy = evaluation.get("judge_test_accuracy") or {}
        rows = [[name, value, chance.get(name), "unreliable" if name in unreliable else "ok"] for name, value in accuracy.items()]
        parts.append(_table(["label", "judge test accuracy", "chance", "judged metrics"], rows, [r[0] in unreliable for r in rows]))
    return "\n".join(parts)
def _prefix(stem: str) -> int:
    """Position of the figure's kind in :data:`CAPTIONS` (unknown kinds last)."""
    for k, prefix in enumerate(CAPTIONS):
        if stem.startswith(prefix):
            return k
    return len(CAPTIONS)


def _caption(stem: str) -> str:
    k = _prefix(stem)
    return list(CAPTIONS.values())[k] if k < len(CAPTIONS) else ""


def write_report(run_dir: Path) -> Path:
    """Write ``RUN/report.html`` from ``RUN/metrics.json``, ``RUN/summary.json`` and the PNGs in
    ``RUN/figures``; returns its path."""
    run_dir = Path(run_dir)
    try:
        config = read_config(run_dir) if (run_dir / CONFIG).exists() else None
    except RunError:
        config = None
    label_names = config.data.info.get("label_names", []) if config is not None else []
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>CCVAE run {html.escape(run_dir.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>CCVAE run <code>{html.escape(run_dir.name)}</code></h1>",
    ]
    metrics = read_metrics(run_dir)
    training = read_summary(run_dir)
    provenance = Provenance(run_dir, metrics.pop(PROVENANCE, None), training)
    parts.append(_summary(metrics, training, provenance))
    if config is not None:
        parts.append("<h2>Run</h2>")
        options = config.fields_by_option()
        rows = [[k, getattr(options[k][0], options[k][1].name)] for k in SETTINGS if k in options]
        parts.append(_table(["setting", "value"], rows))
        parts.append(f"<p>labels: {html.escape(', '.join(label_names))}</p>")
    parts.append("<h2>Metrics</h2>")
    if not metrics:
        parts.append("<p>No metrics yet: run <code>ccvae-pyro evaluate</code> on this directory.</p>")
    unreliable = metrics.get("evaluation", {}).get("unreliable_labels") or []
    parts.append('<div class="sections">')
    for name, values in metrics.items():
        if isinstance(values, dict):
            why = provenance.stale(provenance.sections.get(name))
            note = f'<p class="stale">This section describes {html.escape(why)}.</p>' if why else ""
            parts.append(f"<section>{_section(name, values, label_names, unreliable if name in JUDGED_SECTIONS else ())}{note}</section>")
    parts.append("</div>")
    parts.append("<h2>Figures</h2>")
    figures = figure_paths(run_dir)
    figures.sort(key=lambda p: _prefix(p.stem))  # evaluation first, then by kind (stable: by name within)
    if not figures:
        parts.append("<p>No figures yet.</p>")
    parts.append('<div class="figures">')
    for path in figures:
        src = f"{FIGURES}/{path.name}"
        caption = _caption(path.stem)
        why = provenance.stale(provenance.figures.get(path.name))
        note = f' <span class="stale">This figure describes {html.escape(why)}.</span>' if why else ""
        parts.append(
            f'<figure id="{html.escape(path.stem)}"><img src="{html.escape(src)}" alt="{html.escape(path.stem)}">'
            f"<figcaption><b>{html.escape(path.name)}</b>{': ' + html.escape(caption) if caption else ''}{note}</figcaption></figure>"
        )
    parts.append("</div></body></html>")
    out = run_dir / REPORT
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out
