"""Supervision schedules (``--sup-schedule FRAC:EPOCHS,...``): parsing and its one-line errors, the
nested labelled subsets per stage, the mask each epoch's steps use, exact resumption across a
stage boundary, the same subsets on every process, and runs saved before the option."""
import json
import signal

import pytest
import torch
from click.testing import CliRunner

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.distributed import World
from pyro_ccvae.run_directory import CHECKPOINT, CONFIG, METRICS, labelled_stages, load_run, read_config
from pyro_ccvae.supervision import Stage, check_epochs, format_schedule, parse_schedule, stage_of_epoch, stage_spans
from pyro_ccvae.training import Trainer, TrainingInterrupted, choose_labelled, train
from pyro_ccvae_cli.main import main

# 96 points in batches of 32: three steps an epoch.
SCHEDULE = "1:1,0.5:1,0.25"
TINY = dict(num_train=96, epochs=3, batch_size=32, k_samples=5, z_style_dim=3, device="cpu")


def tiny(**overrides):
    return TrainConfig.from_options(**{**TINY, "sup_schedule": SCHEDULE, **overrides})


def weights(run_dir):
    state = torch.load(run_dir / CHECKPOINT, weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# --- parsing ---------------------------------------------------------------------------------


def test_a_schedule_parses_into_its_stages_and_prints_canonically():
    stages = parse_schedule(" 0.9:40, 0.5:40 ,0.1:40")
    assert stages == (Stage(0.9, 40), Stage(0.5, 40), Stage(0.1, 40))
    assert format_schedule(stages) == "0.9:40,0.5:40,0.1:40"
    assert parse_schedule("1:2,0.5") == (Stage(1.0, 2), Stage(0.5, None))  # the last lasts until --epochs
    assert parse_schedule("0.3:5") == (Stage(0.3, 5),)
    assert parse_schedule("0.5:1,0.5:1") == (Stage(0.5, 1), Stage(0.5, 1))  # equal fractions nest too


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "is empty"),
        ("0.9:40,,0.1:40", "stage 2 '' is not FRAC:EPOCHS"),
        ("half:10", "stage 1 'half:10' is not FRAC:EPOCHS"),
        ("1.5:10", "the fraction must be in [0, 1]"),
        ("nan:10", "the fraction must be in [0, 1]"),
        ("0.5:0", "the epochs must be a positive whole number"),
        ("0.5:2.5", "the epochs must be a positive whole number"),
        ("0.5:-3", "the epochs must be a positive whole number"),
        ("0.9,0.5:10", "only the last stage may leave them out"),
        ("0.5:10,0.9:10", "must not increase (the labelled subsets nest), and 0.9 is above stage 1's 0.5"),
    ],
)
def test_a_bad_schedule_is_one_line_naming_the_stage(spec, fragment):
    with pytest.raises(ValueError) as info:
        parse_schedule(spec)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_stages_must_fill_the_epochs():
    check_epochs(parse_schedule("0.9:40,0.5:40,0.1:40"), 120)
    check_epochs(parse_schedule("0.9:40,0.1"), 41)
    with pytest.raises(ValueError, match=r"stages last 120 epochs but --epochs is 100; make them add up"):
        check_epochs(parse_schedule("0.9:40,0.5:40,0.1:40"), 100)
    with pytest.raises(ValueError, match=r"before the last last 40 epochs, leaving none of --epochs 40"):
        check_epochs(parse_schedule("0.9:40,0.1"), 40)


def test_epochs_map_to_stages():
    stages = parse_schedule("0.9:2,0.5:3,0.1:1")
    assert [stage_of_epoch(stages, e) for e in range(8)] == [0, 0, 1, 1, 1, 2, 2, 2]  # after the end: the last
    assert stage_spans(stages, 6) == [(1, 2), (3, 5), (6, 6)]
    assert stage_spans(stages, 8) == [(1, 2), (3, 5), (6, 8)]  # a resumed run that outgrew it
    assert stage_spans(parse_schedule("1:2,0.5"), 5) == [(1, 2), (3, 5)]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--sup-schedule", "0.9:40,0.5:40,0.1:40"], ["stages last 120 epochs but --epochs is 20"]),
        (["--sup-schedule", "0.9:40,0.5:40,0.1:40", "--epochs", "100"], ["120 epochs", "--epochs is 100"]),
        (["--sup-schedule", "0.1:10,0.5:10", "--epochs", "20"], ["stage 2", "must not increase"]),
        (["--sup-schedule", "2:20"], ["stage 1 '2:20'", "[0, 1]"]),
        (["--sup-schedule", "0.5:10,0.1:10", "--epochs", "20", "--sup-frac", "0.5"], ["--sup-frac and --sup-schedule"]),
        (["--sup-schedule", "0.5:10,0.1:10", "--epochs", "20", "--sup-frac", "1"], ["--sup-frac and --sup-schedule"]),
    ],
)
def test_the_command_line_refuses_a_bad_schedule_in_one_line_before_making_anything(tmp_path, args, fragments):
    out = tmp_path / "run"
    line = one_error_line(cli("train", "--out", out, "--no-progress", *args))
    assert all(fragment in line for fragment in fragments), line
    assert not out.exists()


def test_a_bad_schedule_is_refused_without_importing_torch():
    from test_startup import imported, run_cli

    result = run_cli("train", "--sup-schedule", "0.1:10,0.5:10", "--epochs", "20")
    assert result.returncode == 1 and "error: --sup-schedule stage 2" in result.stderr, result.stderr
    assert imported(result) == []


def test_the_library_refuses_sup_frac_with_a_schedule():
    with pytest.raises(ValueError, match="--sup-frac and --sup-schedule cannot be used together"):
        TrainConfig.from_options(sup_frac=0.3, sup_schedule="0.5:10,0.1:10", epochs=20)
    config = TrainConfig.from_options(sup_schedule="0.5:10,0.1:10", epochs=20)
    assert config.optimisation.sup_frac == 0.5  # the first stage's: the points whose labels are ever used


# --- the labelled subsets and the mask per epoch ---------------------------------------------


def test_subsets_nest_with_the_counts_per_stage_and_the_masks_change_at_the_boundaries(tmp_path, monkeypatch):
    trainer = Trainer(tiny(), tmp_path, progress=False)
    subsets = [set(s.tolist()) for s in trainer.stage_labelled]
    assert [len(s) for s in subsets] == [96, 48, 24]
    assert subsets[2] < subsets[1] < subsets[0]
    # The same seeded permutation as --sup-frac: a stage's subset is that rate's subset.
    assert subsets[1] == set(choose_labelled(96, 0.5, seed=0).tolist())
    assert subsets[2] == set(choose_labelled(96, 0.25, seed=0).tolist())

    labelled_per_step, step = [], trainer.svi.step

    def recording_step(x, y, mask):
        labelled_per_step.append(int(mask.any(-1).sum()))
        return step(x, y, mask)

    monkeypatch.setattr(trainer.svi, "step", recording_step)
    summary = trainer.fit()
    # Every point is visited once an epoch: the labelled points the steps saw, per epoch.
    per_epoch = [sum(labelled_per_step[i : i + 3]) for i in range(0, 9, 3)]
    assert per_epoch == [96, 48, 24]

    # Recorded in the run: the schedule, the first stage's permutation order, the stage of each epoch.
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config["optimisation"]["sup_schedule"] == "1.0:1,0.5:1,0.25" and config["optimisation"]["sup_frac"] == 1.0
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [(line["sup_stage"], line["labelled"]) for line in lines] == [(1, 96), (2, 48), (3, 24)]
    assert summary["labelled"] == 24
    assert [(s["stage"], s["sup_frac"], s["epochs"], s["labelled"]) for s in summary["sup_stages"]] == [
        (1, 1.0, [1, 1], 96), (2, 0.5, [2, 2], 48), (3, 0.25, [3, 3], 24),
    ]  # fmt: skip
    # Analysis reads the same subsets back from the run directory.
    read = labelled_stages(tmp_path, read_config(tmp_path))
    assert [set(s.tolist()) for s in read] == subsets


def test_a_run_stopped_at_a_boundary_and_in_the_next_stage_resumes_exactly(tmp_path, monkeypatch):
    train(tiny(), tmp_path / "whole", progress=False)

    def stop_at(trainer, call):
        step, calls = trainer.svi.step, []

        def step_then_stop(*args):
            calls.append(1)
            if len(calls) == call:
                trainer.stops.signal = signal.SIGINT
            return step(*args)

        monkeypatch.setattr(trainer.svi, "step", step_then_stop)
        with pytest.raises(TrainingInterrupted):
            trainer.fit()
        return torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["position"]

    # After the last batch of stage 1, before its epoch ended; then one batch into stage 2.
    position = stop_at(Trainer(tiny(), tmp_path / "cut", progress=False), 3)
    assert (position["epoch"], position["batch"]) == (0, 3)
    position = stop_at(Trainer(tiny(), tmp_path / "cut", resume=True, progress=False), 1)
    assert (position["epoch"], position["batch"]) == (1, 1)
    train(tiny(), tmp_path / "cut", resume=True, progress=False)

    whole, cut = weights(tmp_path / "whole"), weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    for name in whole:
        assert torch.equal(whole[name], cut[name]), name
    stages = [json.loads(line)["sup_stage"] for line in (tmp_path / "cut" / METRICS).read_text().splitlines()]
    assert stages == [1, 2, 3]


def test_a_resumed_run_may_outgrow_its_schedule_in_the_last_stage(tmp_path):
    train(tiny(sup_schedule="1:1,0.5:1", epochs=2), tmp_path, progress=False)
    summary = train(TrainConfig.from_options(**{**TINY, "epochs": 3}), tmp_path, resume=True, progress=False)
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [(line["sup_stage"], line["labelled"]) for line in lines] == [(1, 96), (2, 48), (2, 48)]
    assert summary["sup_stages"][-1]["epochs"] == [2, 3]


def test_a_schedule_resumes_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    args = ["--num-train", 64, "--batch-size", 32, "--k-samples", 4, "--z-style-dim", 3, "--device", "cpu", "--no-progress"]
    result = cli("train", "--out", out, "--epochs", 2, "--sup-schedule", "0.5:1,0.25", *args)
    assert result.exit_code == 0, result.output
    assert "--sup-schedule 0.5:1,0.25: 32/16 labelled per stage" in result.output
    result = cli("train", "--out", out, "--resume", "--epochs", 3, *args)
    assert result.exit_code == 0, result.output
    # Given again on resume it must be the same schedule (as any option but those a resume may change).
    line = one_error_line(cli("train", "--out", out, "--resume", "--epochs", 3, "--sup-schedule", "0.5:1,0.1:2", *args))
    assert "--sup-schedule cannot change when resuming" in line


def test_one_process_of_the_data_parallel_path_uses_the_same_subsets(tmp_path):
    """Rank 0 draws labelled.json and every process derives the stages from it; with an explicit
    one-process world the run is the plain one's."""
    train(tiny(epochs=2, sup_schedule="1:1,0.5", noise="keyed"), tmp_path / "plain", progress=False)
    trainer = Trainer(tiny(epochs=2, sup_schedule="1:1,0.5", noise="keyed"), tmp_path / "world", progress=False, world=World())
    trainer.fit()
    assert json.loads((tmp_path / "world" / "labelled.json").read_text()) == json.loads((tmp_path / "plain" / "labelled.json").read_text())
    plain, world = weights(tmp_path / "plain"), weights(tmp_path / "world")
    for name in plain:
        assert torch.equal(plain[name], world[name]), name


def subsets_and_labelled_seen(run_dir):
    """On each of two processes: the stages' subsets, and the labelled points of its shards per epoch."""
    trainer = Trainer(tiny(num_train=49, batch_size=16, epochs=2, sup_schedule="1:1,0.5", noise="keyed"), run_dir, progress=False)
    seen, step = [], trainer.svi.step

    def recording_step(*batch):  # none: an empty shard (step_without_data)
        seen.append((trainer.position.epoch, int(batch[2].any(-1).sum()) if batch else 0))
        return step(*batch)

    trainer.svi.step = recording_step
    trainer.fit()
    return {"subsets": [s.tolist() for s in trainer.stage_labelled], "seen": [sum(n for e, n in seen if e == epoch) for epoch in (0, 1)]}


def test_two_processes_use_the_same_subsets_and_stages(tmp_path):
    from test_distributed import on_two_processes

    results = on_two_processes(tmp_path, subsets_and_labelled_seen, tmp_path / "two")
    assert all("error" not in r for r in results), results
    assert results[0]["subsets"] == results[1]["subsets"] and [len(s) for s in results[0]["subsets"]] == [49, 24]
    # Each process sees its shards: together, every labelled point of the epoch's stage once.
    assert [a + b for a, b in zip(results[0]["seen"], results[1]["seen"])] == [49, 24]
    lines = [json.loads(line) for line in (tmp_path / "two" / METRICS).read_text().splitlines()]
    assert [line["sup_stage"] for line in lines] == [1, 2]


# --- runs saved before the option ------------------------------------------------------------


def test_a_run_saved_before_schedules_loads_and_resumes(tmp_path):
    run_dir = tmp_path / "old"
    train(TrainConfig.from_options(**{**TINY, "epochs": 1, "sup_frac": 0.5}), run_dir, progress=False)
    raw = json.loads((run_dir / CONFIG).read_text())
    del raw["optimisation"]["sup_schedule"]  # as written before the key existed
    (run_dir / CONFIG).write_text(json.dumps(raw))
    assert read_config(run_dir).optimisation.sup_schedule is None
    assert load_run(run_dir, load_data=False).config.optimisation.sup_frac == 0.5
    assert [len(s) for s in labelled_stages(run_dir, read_config(run_dir))] == [48]
    summary = train(TrainConfig.from_options(**{**TINY, "epochs": 2}), run_dir, resume=True, progress=False)
    assert summary["labelled"] == 48 and "sup_stages" not in summary
    assert "sup_stage" not in json.loads((run_dir / METRICS).read_text().splitlines()[-1])
