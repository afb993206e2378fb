"""Every example runs once with options that make it tiny, and documents every option."""
import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {
    "custom_guide.py": ["--epochs", "1", "--num-train", "64", "--k-samples", "4", "--z-style-dim", "3"],
    "gradient_variance.py": ["--draws", "3", "--batch-size", "8", "--num-train", "64", "--k-samples", "4", "--z-style-dim", "3", "--epochs", "1"],
    "multiclass_tables.py": [
        "--sup-fracs", "0.06,1", "--judge-epochs", "1", "--gen-samples", "20", "--max-images", "32",
        "--train-option=--epochs=1", "--train-option=--num-train=64", "--train-option=--k-samples=4", "--judge-option=--gp-steps=10",
    ],
    "compare_baselines.py": [
        "--datasets", "shapes,digits", "--sup-fracs", "0.5,1", "--epochs", "1", "--num-train", "48", "--judge-epochs", "1", "--gen-samples", "8",
        "--max-images", "16", "--set", "z_style_dim=3", "--set", "k_samples=3", "--set", "z_dim=8", "--judge-gp-steps", "10",
    ],
}
#: what each example leaves in its --out folder.
WRITES = {
    "custom_guide.py": ["checkpoint.pt"],
    "compare_baselines.py": ["tables.md", "tables.json", "tables.html"],
    "multiclass_tables.py": ["tables.md", "tables.json", "judge/summary.json", "ccvae-sup-0.06/metrics.json", "ccvae-sup-1/metrics.json"],
    "gradient_variance.py": ["gradient_variance.json", "gradient_variance.png"],
}


def test_every_example_has_tiny_options():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if '__name__ == "__main__"' in p.read_text()}
    assert scripts == set(TINY) == set(WRITES)


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_example_option_has_help(name, monkeypatch):
    parsers = []

    def capture(parser, *args, **kwargs):  # the example's parser, before it parses anything
        parsers.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    with pytest.raises(SystemExit):
        importlib.import_module(name[: -len(".py")]).main([])
    undocumented = [action.option_strings for action in parsers[0]._actions if not (action.help or "").strip()]
    assert not undocumented, f"{name}: {undocumented} have no help"


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_runs(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--out", str(tmp_path / "run"), *TINY[name]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert all((tmp_path / "run" / name).exists() for name in WRITES[name])
    if name == "compare_baselines.py":  # every table, for every data set, model and supervision rate
        written = json.loads((tmp_path / "run" / "tables.json").read_text())["datasets"]
        assert set(written) == {"shapes", "digits"}
        assert [written[d]["multiclass"] for d in ("shapes", "digits")] == [False, True]
        page, md = (tmp_path / "run" / "tables.html").read_text(), (tmp_path / "run" / "tables.md").read_text()
        assert page.count("Health warnings") == 2 and "the paper's Table 6" in md
        for result in written.values():
            tables = [key for key in result if key.startswith("table")]
            assert set(result["health_warnings"]) == {"ccvae", "m2", "diva", "mvae"}
            assert tables == ["table1_classification", "table2_swap", "table5_generation", "table7_information"]
            assert list(result["skipped_tables"]) == ["table4_fid"] and result["judge_test_information"] >= 0
            for table in tables:
                assert set(result[table]) == {"ccvae", "m2", "diva", "mvae"}
                assert all(set(cells) == {"0.5", "1.0"} and None not in cells.values() for cells in result[table].values())
        assert md.count("| mvae |") == 8
        # the paper's figure beside ours where it has the rate (CelebA's beside shapes, MNIST's beside digits)
        assert "| ccvae | " in md and "(0.900)" in md and "(0.988)" in md and md.count("pairs ranked as the paper") == 8
        assert md.count("Table 4: not measured") == 2 and md.count("real test images: ") == 2
        assert written["shapes"]["paper"]["table1_classification"]["figures"]["ccvae"] == {"0.5": None, "1.0": 0.900}
        assert written["digits"]["paper"]["table1_classification"]["table"] == "table6"
    if name == "multiclass_tables.py":  # one row per rate: accuracy and generation in [0, 1]; MNIST's figures beside digits
        tables = json.loads((tmp_path / "run" / "tables.json").read_text())
        assert [row["sup_frac"] for row in tables["rows"]] == [0.06, 1.0]
        assert all(0 <= row[key] <= 1 for row in tables["rows"] for key in ("accuracy", "generation"))
        assert [(row["paper_accuracy"], row["paper_generation"]) for row in tables["rows"]] == [(0.974, 0.954), (0.988, 0.973)]
        assert [row["paper_mutual_information"] for row in tables["rows"]] == [0.014, 0.010]
        assert all(0 <= row[key] <= 2.31 for row in tables["rows"] for key in ("mutual_information", "mutual_information_test"))
        assert "| ccvae | 0.06 |" in (tmp_path / "run" / "tables.md").read_text()
    if name == "gradient_variance.py":  # both models, both comparisons, and the figure
        report = json.loads((tmp_path / "run" / "gradient_variance.json").read_text())
        assert set(report["results"]) == {"initial", "trained"} and (tmp_path / "run" / "trained" / "checkpoint.pt").exists()
        for result in report["results"].values():
            assert set(result["classifier_input"]) == {"detached", "reparameterised"}
            assert set(result["jensen"]) == {"exact", "sampled"}
            assert all(v["norm_variance"] >= 0 for mode in result["jensen"].values() for v in mode.values())
        assert (tmp_path / "run" / "gradient_variance.png").stat().st_size > 0


def test_the_paper_s_figures_and_the_ordering_check():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from paper_figures import pairs_agreeing, paper_figure
    finally:
        sys.path.remove(str(EXAMPLES))
    assert paper_figure("table1", "celeba", "ccvae", 1.0) == 0.900 and paper_figure("table1", "shapes", "m2", 0.06) == 0.862
    assert paper_figure("table7", "digits", "m2", 0.2) == (0.934, 0.024) and paper_figure("table1", "celeba", "ccvae", 0.5) is None
    assert paper_figure("table6", "a data set the paper lacks", "ccvae", 1.0) is None
    # pairs both rank strictly: a>b, a>c, b>c in the paper; ours swaps b and c; a tie in ours is left out
    assert pairs_agreeing({"a": 3, "b": 1, "c": 2}, {"a": 3, "b": 2, "c": 1}) == (2, 3)
    assert pairs_agreeing({"a": 3, "b": 2, "c": 2}, {"a": 3, "b": 2, "c": 1}) == (2, 2)
    assert pairs_agreeing({"a": 1, "b": None}, {"a": 1, "b": 2}) == (0, 0)
