"""The run directory's files under file-system faults, symbolic links and concurrent writers
(issue 19, items 7, 8 and 10): each fault made for real (a 300-character name, ``ulimit -f``, a
folder where a file belongs, a FIFO, a link to a file elsewhere, two writers at once) ends in one
line naming the path, changes nothing outside the run and loses nothing inside it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae import checkpoint
from pyro_ccvae.analysis import classifier as judges, judge as judge_files
from pyro_ccvae.analysis.classifier import ClassifierConfig, load_classifier, train_classifier
from pyro_ccvae.analysis.figures import save_labelled_grid
from pyro_ccvae.checkpoint import (
    DirectoryLock, PathError, append_text, atomic_write_bytes, read_file, save_checkpoint,
)  # fmt: skip
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import (
    ANALYSIS_METRICS, CHECKPOINT, CONFIG, FIGURES, LOCK, PROVENANCE, REPORT, RESULTS_LOCK, SUMMARY, CheckpointUsed, RunError,
    figure_path, read_metrics, update_metrics,
)  # fmt: skip
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main

TINY = dict(num_train=64, epochs=1, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
LOCKS = {LOCK, RESULTS_LOCK, judges.LOCK}
REPO = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_options(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("files") / "run"
    train(tiny(), path, progress=False)
    return path


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, in ``tmp_path/run``; ``tmp_path/outside`` holds a file and a
    folder that no command may touch."""
    path = tmp_path / "run"
    shutil.copytree(trained, path)
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "victim").write_text("precious")
    (outside / "folder" / "kept.txt").write_text("kept")
    return path


def contents(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (locks aside) by relative path: its sha256 (links: their target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.name in LOCKS:
            continue
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result_or_output, exit_code: int = 1) -> str:
    """The command failed with exactly one ``error: ...`` line and no traceback; that line."""
    if isinstance(result_or_output, subprocess.CompletedProcess):
        output, code = result_or_output.stdout + result_or_output.stderr, result_or_output.returncode
    else:
        output, code = result_or_output.output, result_or_output.exit_code
    assert code == exit_code, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, output
    return lines[0]


def command(*args, limit_kb=None, timeout=240) -> subprocess.CompletedProcess:
    """``ccvae-pyro ARGS`` in a process of its own (under ``ulimit -f limit_kb``)."""
    line = " ".join(f"'{a}'" for a in [sys.executable, "-m", "pyro_ccvae_cli", *map(str, args)])
    if limit_kb is not None:
        line = f"ulimit -f {limit_kb}; {line}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


# --- item 7: file-system faults -----------------------------------------------------------------


def test_a_name_longer_than_the_file_system_allows_is_one_line(run, tmp_path):
    long = tmp_path / ("a" * 300)
    before = contents(tmp_path)
    for args in (
        ("train", "--out", long, "--num-train", 64, "--epochs", 1, "--no-progress"),
        ("generate", long, "--device", "cpu"),
        ("train-classifier", "--out", long, "--num-train", 64, "--epochs", 1, "--no-progress"),
        ("train-classifier", "--out", long / "judge", "--num-train", 64, "--epochs", 1, "--no-progress"),
    ):
        line = one_error_line(cli(*args))
        assert "aaaaaaaaaaaaaaaa...(300 characters)" in line and "has 300 bytes, more than the 255" in line, line
        assert "choose a shorter name" in line
    assert contents(tmp_path) == before


def test_a_file_size_limit_is_one_line_and_keeps_the_last_good_files(run, tmp_path):
    out = tmp_path / "limited"
    line = one_error_line(command("train", "--out", out, "--num-train", 64, "--epochs", 1, "--no-progress", limit_kb=1024))
    assert f"writing {out / CHECKPOINT} passes this process's file-size limit of 1048576 bytes (ulimit -f)" in line, line
    assert "no checkpoint was written" in line
    assert not list(out.glob(".*.tmp"))

    assert cli("generate", run, "--device", "cpu").exit_code == 0
    before = contents(run)
    line = one_error_line(command("generate", run, "--device", "cpu", limit_kb=4))
    assert f"writing {run / FIGURES / 'generate.png'} passes this process's file-size limit" in line, line
    assert contents(run) == before  # the figure of the first generate is whole
    assert not list((run / FIGURES).glob(".*.tmp"))


def test_a_file_where_a_folder_belongs_in_a_path_is_one_line(run, tmp_path):
    before = contents(tmp_path)
    for args in (
        ("train", "--out", run / CONFIG / "run", "--num-train", 64, "--epochs", 1, "--no-progress"),
        ("generate", run / CONFIG / "run", "--device", "cpu"),
        ("train-classifier", "--out", run / CONFIG / "judge", "--num-train", 64, "--epochs", 1, "--no-progress"),
        ("evaluate", run, "--device", "cpu", "--classifier", run / CONFIG / "judge", "--max-images", 8),
        ("swap", run / CONFIG, "--device", "cpu"),
    ):
        line = one_error_line(cli(*args))
        assert f"{run / CONFIG} is a file where a folder belongs" in line or f"{run / CONFIG} is a file, not a run directory" in line, line
    assert contents(tmp_path) == before


def make_fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


WRONG_KINDS = {
    "figures a file": (lambda r: (r / FIGURES).write_text("mine"), "figures is a file where a folder belongs"),
    "a figure a folder": (lambda r: (r / FIGURES / "generate.png").mkdir(parents=True), "figures/generate.png is a folder where a file belongs"),
    "metrics.json a folder": (lambda r: (r / ANALYSIS_METRICS).mkdir(), "metrics.json is a folder where a file belongs"),
    "report.html a folder": (lambda r: (r / REPORT).mkdir(), "report.html is a folder where a file belongs"),
    "the results lock a folder": (lambda r: (r / RESULTS_LOCK).mkdir(), ".results.lock is a folder where a file belongs"),
    "config.json a FIFO": (lambda r: make_fifo(r / CONFIG), "config.json is not a regular file (a FIFO"),
    "metrics.json a FIFO": (lambda r: make_fifo(r / ANALYSIS_METRICS), "metrics.json is not a regular file (a FIFO"),
    "checkpoint.pt a FIFO": (lambda r: make_fifo(r / CHECKPOINT), "checkpoint.pt is not a regular file (a FIFO"),
}


@pytest.mark.parametrize("fault", WRONG_KINDS)
def test_a_file_of_the_wrong_kind_is_one_line_naming_it(run, fault):
    make, message = WRONG_KINDS[fault]
    make(run)
    before = contents(run)
    # in a process of its own: a FIFO that is opened for reading would block it, not the tests
    line = one_error_line(command("generate", run, "--device", "cpu", timeout=120))
    assert str(run) in line and message in line, line
    assert contents(run) == before


def test_a_lock_file_that_is_a_folder_stops_training_in_one_line(run):
    (run / LOCK).unlink()
    (run / LOCK).mkdir()
    before = contents(run)
    line = one_error_line(cli("train", "--out", run, "--resume", "--epochs", 2, "--no-progress"))
    assert f"{run / LOCK} is a folder where a file belongs" in line
    assert contents(run) == before


def test_a_fifo_in_place_of_summary_json_does_not_block(run):
    make_fifo(run / SUMMARY)
    result = command("generate", run, "--device", "cpu", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"ignoring {run / SUMMARY} is not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(run / SUMMARY).st_mode)  # left for the user to look at


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_run_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        train(tiny(), tmp_path / "run", progress=False)
        assert cli("generate", tmp_path / "run", "--device", "cpu").exit_code == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {CONFIG, CHECKPOINT, SUMMARY, ANALYSIS_METRICS, REPORT, "generate.png", "labelled.json"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: mode for p in files}


# --- item 8: no write follows a symbolic link ---------------------------------------------------


LINKS = {
    "checkpoint.pt": lambda r, o: (r / CHECKPOINT).unlink() or (r / CHECKPOINT).symlink_to(o / "victim"),
    "a figure": lambda r, o: (r / FIGURES).mkdir() or (r / FIGURES / "generate.png").symlink_to(o / "victim"),
    "the figures folder": lambda r, o: (r / FIGURES).symlink_to(o / "folder"),
    "the writer lock": lambda r, o: (r / LOCK).unlink() or (r / LOCK).symlink_to(o / "victim"),
    "the results lock": lambda r, o: (r / RESULTS_LOCK).symlink_to(o / "victim"),
    "metrics.json": lambda r, o: (r / ANALYSIS_METRICS).symlink_to(o / "victim"),
    "report.html": lambda r, o: (r / REPORT).symlink_to(o / "victim"),
    "metrics.jsonl": lambda r, o: (r / "metrics.jsonl").unlink() or (r / "metrics.jsonl").symlink_to(o / "victim"),
    "attribute_classifier": lambda r, o: (r / "attribute_classifier").symlink_to(o / "folder"),
    "a link to a file inside": lambda r, o: (r / "summary.json").unlink() or (r / "summary.json").symlink_to(r / CONFIG),
}


@pytest.mark.parametrize("where", LINKS)
def test_a_run_holding_a_link_is_refused_and_nothing_elsewhere_changes(run, tmp_path, where):
    outside = tmp_path / "outside"
    LINKS[where](run, outside)
    before_outside, before_run = contents(outside), contents(run)
    for args in (
        ("generate", run, "--device", "cpu"),
        ("evaluate", run, "--device", "cpu", "--max-images", 8, "--iw-samples", 2, "--gen-samples", 8, "--attribute-epochs", 1),
        ("train", "--out", run, "--resume", "--epochs", 2, "--no-progress"),
    ):
        line = one_error_line(cli(*args))
        assert "is a symbolic link" in line and "replace the link with the file itself, or remove it" in line, line
    assert contents(outside) == before_outside and contents(run) == before_run


def test_writes_replace_a_link_and_never_write_through_it(tmp_path):
    """Below the refusal of linked run directories: each way of writing a file, pointed at a link."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "folder"
    folder.mkdir()

    def link(name: str) -> Path:
        path = folder / name
        path.unlink(missing_ok=True)
        path.symlink_to(victim)
        return path

    atomic_write_bytes(link("a.json"), b"new")  # replaced, not followed
    assert not (folder / "a.json").is_symlink() and (folder / "a.json").read_bytes() == b"new"
    save_checkpoint({"step": 1}, link("checkpoint.pt"))
    assert not (folder / "checkpoint.pt").is_symlink() and not (folder / "checkpoint.prev.pt").exists()
    save_labelled_grid(torch.rand(1, 2, 3, 8, 8), link("grid.png"), ["row"])
    assert not (folder / "grid.png").is_symlink() and (folder / "grid.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PathError, match="lock is a symbolic link"):
        DirectoryLock(folder, link("lock").name).acquire()
    with pytest.raises(PathError, match="metrics.jsonl is a symbolic link"):
        append_text(link("metrics.jsonl"), "{}\n")
    with pytest.raises(PathError, match="read.json is a symbolic link"):
        read_file(link("read.json"))
    (folder / FIGURES).symlink_to(tmp_path)
    with pytest.raises(PathError, match="figures is a symbolic link where a folder belongs"):
        figure_path(folder, "x")
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "victim"]  # no temporary left anywhere


def test_a_judge_folder_swapped_for_a_link_while_it_trains_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "run" / "attribute_classifier"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    predict = judges.predict

    def swap_then_predict(*args, **kwargs):  # after training, before the files are written
        out.rmdir()
        out.symlink_to(elsewhere)
        return predict(*args, **kwargs)

    monkeypatch.setattr(judges, "predict", swap_then_predict)
    monkeypatch.setattr(judges, "DirectoryLock", lambda folder, name: DirectoryLock(tmp_path, "test.lock"))
    with pytest.raises(PathError, match="attribute_classifier is a symbolic link"):
        train_classifier(ClassifierConfig(num_train=64, epochs=1, device="cpu"), out, progress=False)
    assert list(elsewhere.iterdir()) == []


# --- item 10: results that lose or mix silently ----------------------------------------------------


def test_a_figure_write_that_fails_keeps_the_previous_figure(run, monkeypatch):
    assert cli("generate", run, "--device", "cpu").exit_code == 0
    before = contents(run)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    line = one_error_line(cli("generate", run, "--device", "cpu"))
    assert f"no space left on device writing {run / FIGURES / 'generate.png'}" in line
    monkeypatch.undo()
    assert contents(run) == before and not list(run.rglob(".*.tmp"))
    # a temporary file a killed command left is removed by the next command that writes results
    stale = run / FIGURES / ".generate.png.deadbeef.tmp"
    stale.write_bytes(b"partial")
    assert cli("generate", run, "--device", "cpu").exit_code == 0 and not stale.exists()


UPDATER = """
import sys
from pyro_ccvae.run_directory import update_metrics
for step in range(40):
    update_metrics(sys.argv[1], {sys.argv[2]: {"step": step}})
"""


def test_two_commands_updating_metrics_json_at_once_lose_nothing(run):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", UPDATER, str(run), name], env=env) for name in ("first", "second")]
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    metrics = read_metrics(run)
    assert metrics["first"] == {"step": 39} and metrics["second"] == {"step": 39}


def test_an_analysis_command_waits_for_another_writing_the_same_run(run):
    lock = DirectoryLock(run, RESULTS_LOCK)
    assert lock.acquire()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyro_ccvae_cli", "generate", str(run), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    said = ""
    try:
        for line in iter(process.stderr.readline, ""):
            said += line
            if "waiting for another analysis command" in line:
                break
        assert "waiting for another analysis command" in said, said
        assert process.poll() is None and not (run / FIGURES / "generate.png").exists()  # it waits
    finally:
        lock.release()
    _, rest = process.communicate(timeout=240)
    assert process.returncode == 0, said + rest
    assert (run / FIGURES / "generate.png").is_file()


def test_results_name_their_checkpoint_and_the_report_marks_older_ones(run):
    assert cli("traverse", run, "--device", "cpu", "--steps", 3).exit_code == 0
    first = read_metrics(run)[PROVENANCE]
    assert first["sections"]["traversal"]["epoch"] == 1 and first["figures"]["traverse_square.png"]["epoch"] == 1
    assert first["checkpoint"]["sha256"] == checkpoint.newest_digest(run / CHECKPOINT)
    train(tiny(epochs=2), run, resume=True, progress=False)
    assert json.loads((run / SUMMARY).read_text())["checkpoint"]["epoch"] == 2
    assert cli("swap", run, "--device", "cpu").exit_code == 0
    provenance = read_metrics(run)[PROVENANCE]
    assert provenance["figures"]["swap.png"]["epoch"] == 2 and provenance["figures"]["traverse_square.png"]["epoch"] == 1
    report = (run / REPORT).read_text()
    assert "the section traversal describes the checkpoint of epoch 1" in report
    assert "This figure describes the checkpoint of epoch 1" in report and "not the run&#x27;s epoch 2 one" in report
    figure = report[report.index('id="swap"') :]
    assert "This figure describes" not in figure[: figure.index("</figure>")]


def test_a_judge_is_whole_or_refused(tmp_path, monkeypatch):
    out = tmp_path / "judge"
    options = dict(num_train=64, epochs=1, device="cpu")
    train_classifier(ClassifierConfig(**options), out, progress=False)
    assert json.loads((out / judges.MANIFEST).read_text())["sha256"].keys() == {"config.json", "classifier.pt", "summary.json", "uncertainty.pt"}
    load_classifier(out, "cpu")

    summary = json.loads((out / SUMMARY).read_text())
    (out / SUMMARY).write_text(json.dumps({**summary, "test_accuracy_mean": 1.0}))
    with pytest.raises(ValueError, match="summary.json does not match manifest.json") as error:
        load_classifier(out, "cpu")
    assert "\n" not in str(error.value)

    # killed between two of its files: the judge that is left does not load
    written = []

    def killed_after_one(path, data, hint="on that file system"):
        if written:
            raise KeyboardInterrupt
        written.append(path)
        return atomic_write_bytes(path, data, hint)

    monkeypatch.setattr(judge_files, "atomic_write_bytes", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifierConfig(**options, seed=5), out, progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="is incomplete .*manifest.json is missing"):
        load_classifier(out, "cpu")

    # a temporary file a killed writer left is removed by the next writer; a second writer is refused
    stale = out / ".classifier.pt.deadbeef.tmp"
    stale.write_bytes(b"partial")
    lock = DirectoryLock(out, judges.LOCK)
    assert lock.acquire()
    try:
        with pytest.raises(ValueError, match="is in use by another train-classifier"):
            train_classifier(ClassifierConfig(**options), out, progress=False)
    finally:
        lock.release()
    train_classifier(ClassifierConfig(**options), out, progress=False)
    assert not stale.exists()
    load_classifier(out, "cpu")


def test_evaluate_trains_an_incomplete_ground_truth_judge_again(run):
    args = ("evaluate", run, "--device", "cpu", "--max-images", 16, "--iw-samples", 2, "--gen-samples", 16, "--attribute-epochs", 1)
    assert cli(*args).exit_code == 0
    judge = run / "attribute_classifier"
    (judge / judges.MANIFEST).unlink()  # as if killed before its manifest
    result = cli(*args)
    assert result.exit_code == 0, result.output
    load_classifier(judge, "cpu")


def test_update_metrics_keeps_provenance_of_what_it_did_not_rewrite(tmp_path):
    def used(epoch: int) -> CheckpointUsed:
        return CheckpointUsed(CHECKPOINT, epoch, 0, f"digest of epoch {epoch}")

    update_metrics(tmp_path, {"a": {"x": 1}}, checkpoint=used(1), figures=[tmp_path / "a.png"])
    update_metrics(tmp_path, {"b": {"x": 2}}, checkpoint=used(2))
    provenance = read_metrics(tmp_path)[PROVENANCE]
    assert provenance["sections"] == {"a": used(1).as_dict(), "b": used(2).as_dict()}
    assert provenance["figures"] == {"a.png": used(1).as_dict()} and provenance["checkpoint"]["epoch"] == 2
    update_metrics(tmp_path, {}, remove=["a"], checkpoint=used(3))
    assert set(read_metrics(tmp_path)[PROVENANCE]["sections"]) == {"b"}
    with pytest.raises(RunError):
        (tmp_path / ANALYSIS_METRICS).write_text("[1]")
        read_metrics(tmp_path)

