"""``RUN/report.html``: every metric and figure of a run on one static page.

The page uses relative ``<img src="figures/...">`` paths to files that exist when it is written,
and no scripts or external resources, so it opens from disk (or a copied run directory) without
a server. Every analysis command rewrites it, so it always shows all the run's figures.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

from ..checkpoint import atomic_write_text
from .outputs import FIGURES_DIR, REPORT_FILE, read_metrics

#: figure-name prefix -> caption (the first matching prefix wins).
CAPTIONS = {
    "reconstructions": "Test images and, below each row, their reconstructions (decoded posterior means).",
    "latent_densities": "Posterior means of each z_c^i for test images with y_i = 0 and y_i = 1; dashed: "
    "the conditional-prior means. W1: 1-D Wasserstein distance.",
    "intervention_matrix": "Single interventions: mean |change| of the independent classifier's log-probability "
    "of each label (columns) when z_c of one label (rows) is set to the other class's prior mean.",
    "traverse_pair": "2-D traversal: one test image with two characteristic latents varied (rows, columns).",
    "traverse": "1-D traversal of one characteristic latent from beyond the y=0 prior mean to beyond the y=1 "
    "mean; the rest of z is a test image's posterior mean (one image per row).",
    "generate": "Conditional generation: z_c ~ p(z_c|y) for the row's label vector, z_s ~ N(0, I).",
    "intervene": "Interventions: each label switched in turn, z_c^i ~ p(z_c^i | switched y_i).",
    "diversity": "Diversity maps: per-pixel variance over draws of the switched z_c^i, over the reconstruction.",
    "swap": "Characteristic swaps: z_c of the row's image with z_s of the column's image (first row and column: "
    "the originals; diagonal: reconstructions).",
}

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.key, th.key { text-align: left; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; } code { background: #f4f4f4; }
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


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; the first column holds names (left-aligned), the others values."""

    def cells(values, tag):
        first, *rest = values
        return f'<{tag} class="key">{html.escape(str(first))}</{tag}>' + "".join(
            f"<{tag}>{html.escape(str(v)) if tag == 'th' else _fmt(v)}</{tag}>" for v in rest
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def _section(name: str, values: dict, label_names: Sequence[str]) -> str:
    """A metrics section: per-label dicts as one label x metric table, a labelled matrix as a
    grid, the rest as a key/value table."""
    per_label = {k: v for k, v in values.items() if isinstance(v, dict) and v and set(v) <= set(label_names)}
    parts = [f"<h3>{html.escape(name)}</h3>"]
    if per_label:
        labels = [n for n in label_names if any(n in v for v in per_label.values())]
        parts.append(_table(["label", *per_label], [[n, *(v.get(n) for v in per_label.values())] for n in labels]))
    matrix = values.get("matrix")
    if isinstance(matrix, list) and isinstance(values.get("labels"), list):
        names = values["labels"]
        parts.append("<p>matrix (rows: label intervened on; columns: label read)</p>")
        parts.append(_table(["", *names], [[n, *row] for n, row in zip(names, matrix)]))
    rest = [[k, v] for k, v in values.items() if k not in per_label and k not in ("matrix", "labels")]
    if rest:
        parts.append(_table(["metric", "value"], rest))
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
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    label_names = config.get("data_info", {}).get("label_names", [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>CCVAE run {html.escape(run_dir.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>CCVAE run <code>{html.escape(run_dir.name)}</code></h1>",
    ]
    if config:
        keys = ["dataset", "guide", "epochs", "sup_frac", "z_style_dim", "z_char_dim", "likelihood", "seed"]
        parts.append(_table(["setting", "value"], [[k, config.get(k)] for k in keys if k in config]))
        parts.append(f"<p>labels: {html.escape(', '.join(label_names))}</p>")
    parts.append("<h2>Metrics</h2>")
    metrics = read_metrics(run_dir)
    if not metrics:
        parts.append("<p>No metrics yet: run <code>ccvae-pyro evaluate</code> on this directory.</p>")
    for name, values in metrics.items():
        if isinstance(values, dict):
            parts.append(_section(name, values, label_names))
    parts.append("<h2>Figures</h2>")
    figures = sorted((run_dir / FIGURES_DIR).glob("*.png")) if (run_dir / FIGURES_DIR).is_dir() else []
    figures.sort(key=lambda p: _prefix(p.stem))  # evaluation first, then by kind (stable: by name within)
    if not figures:
        parts.append("<p>No figures yet.</p>")
    for path in figures:
        src = f"{FIGURES_DIR}/{path.name}"
        caption = _caption(path.stem)
        parts.append(
            f'<figure id="{html.escape(path.stem)}"><img src="{html.escape(src)}" alt="{html.escape(path.stem)}">'
            f"<figcaption><b>{html.escape(path.name)}</b>{': ' + html.escape(caption) if caption else ''}</figcaption></figure>"
        )
    parts.append("</body></html>")
    out = run_dir / REPORT_FILE
    atomic_write_text(out, "\n".join(parts) + "\n")
    return out
