"""report.html: one static page with every metric and every figure that exists, nothing else."""
from __future__ import annotations

import shutil

from pyro_ccvae.analysis.report import write_report
from pyro_ccvae.run_directory import update_metrics

from .test_commands import report_images


def test_report_lists_existing_figures_only(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(run_dir / "config.json", run / "config.json")
    figures = run / "figures"
    figures.mkdir()
    for name in ("swap.png", "reconstructions.png", "zz_custom.png"):
        (figures / name).write_bytes(b"\\x89PNG")
    (figures / "notes.txt").write_text("not a figure")
    update_metrics(run, {"classification": {"accuracy": {"red": 0.5}, "accuracy_mean": 0.5, "auroc_mean": None}})
    html = write_report(run).read_text()
    # evaluation figures first, unknown kinds last
    assert report_images(run) == ["figures/reconstructions.png", "figures/swap.png", "figures/zz_custom.png"]
    assert "accuracy_mean" in html and "n/a" in html
    assert "<script" not in html and "http" not in html  # opens from disk, no server, no network

    (figures / "swap.png").unlink()
    write_report(run)
    assert report_images(run) == ["figures/reconstructions.png", "figures/zz_custom.png"]


def test_report_without_metrics_or_figures(tmp_path):
    html = write_report(tmp_path).read_text()
    assert "No metrics yet" in html and "No figures yet" in html and report_images(tmp_path) == []


def test_metrics_sections_are_replaced_and_removed(tmp_path):
    update_metrics(tmp_path, {"a": {"x": 1}, "b": {"y": 2}})
    merged = update_metrics(tmp_path, {"a": {"x": 3}}, remove=["b"])
    assert merged == {"a": {"x": 3}}


def test_report_opens_with_warnings_and_marks_unreliable_labels(run_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(run_dir / "config.json", run / "config.json")
    (run / "summary.json").write_text('{"test_accuracy_mean": 0.5, "health": {"warnings": ["z_s unused: none active"]}}')
    update_metrics(run, {
        "evaluation": {"judge": "independent classifier", "judge_test_accuracy": {"red": 0.6, "square": 0.95},
                       "unreliable_labels": ["red"], "reliable_judge_accuracy": 0.9},
        "health": {"reconstruction": {"model_mae": 0.1}, "warnings": ["decoder collapsed: ratio 0.95"]},
        "characteristic_swap": {"log_prob_change": {"red": 0.3, "square": 0.1}, "unreliable_labels": ["red"]},
    })  # fmt: skip
    html = write_report(run).read_text()
    summary = html[html.index("<h2>Summary</h2>") : html.index("<h2>Run</h2>")]
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Metrics</h2>")
    box = summary[summary.index('class="box warnings"') :]
    for text in ("evaluate, test split: decoder collapsed", "training, validation split: z_s unused", "red (0.6)"):
        assert text in box
    swap = html[html.index("<h3>characteristic_swap</h3>") :]
    assert '<tr class="unreliable"><td class="key">red</td><td>0.3</td><td>unreliable</td></tr>' in swap
    assert '<tr><td class="key">square</td><td>0.1</td><td>ok</td></tr>' in swap
    assert "max-width: none" in html


def test_report_says_judged_metrics_were_dropped(tmp_path):
    update_metrics(tmp_path, {"evaluation": {"judge": None}, "health": {"warnings": []}})
    html = write_report(tmp_path).read_text()
    assert "Health checks passed" in html and "ran without a judge" in html and "dropped" in html
