"""Checkpoint rotation seen by a concurrent reader (issue 19, item 12): while training writes a
new checkpoint, an analysis command reading the run finds ``checkpoint.pt`` whole (the old one or
the new one), never a gap filled by the previous copy and never a warning of damage."""
from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import time

import pytest
import torch

from pyro_ccvae import checkpoint
from pyro_ccvae.checkpoint import previous_path, read_checkpoint, save_checkpoint


def _write_checkpoints(path, count: int, started) -> None:
    for i in range(count):
        save_checkpoint({"i": i, "w": torch.full((50_000,), float(i))}, path)
        started.set()


def test_a_reader_during_rotation_always_finds_the_checkpoint_whole(tmp_path, caplog):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"i": -1, "w": torch.full((50_000,), -1.0)}, path)
    save_checkpoint({"i": -1, "w": torch.full((50_000,), -1.0)}, path)  # a previous copy from the start
    # spawn, not fork: a forked child of a process whose OpenMP pool is running deadlocks in its
    # first parallel torch operation.
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    # A daemon, killed below if it overruns: a stuck writer must fail this test, not hang the suite.
    writer = context.Process(target=_write_checkpoints, args=(path, 40, started), daemon=True)
    writer.start()
    try:
        _read_while_writing(path, writer, started, caplog)
    finally:
        if writer.is_alive():
            writer.kill()
        writer.join(30)
    assert writer.exitcode == 0
    assert read_checkpoint(path).state["i"] == 39 and read_checkpoint(previous_path(path)).state["i"] == 38


def _read_while_writing(path, writer, started, caplog) -> None:
    started.wait(30)
    reads, seen = 0, set()
    deadline = time.monotonic() + 30
    with caplog.at_level(logging.WARNING):
        while writer.is_alive() and time.monotonic() < deadline:
            loaded = read_checkpoint(path)
            assert loaded.file == path, f"read {loaded.file.name} while {path.name} was being replaced"
            assert torch.equal(loaded.state["w"], torch.full((50_000,), float(loaded.state["i"])))
            reads += 1
            seen.add(loaded.state["i"])
    writer.join(60)
    assert not caplog.records, caplog.text  # no "cannot be read ... using checkpoint.prev.pt"
    assert reads > 10 and len(seen) > 2  # the reader did overlap the writes


def test_a_write_that_fails_before_its_rename_keeps_both_copies(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"i": 0}, path)
    save_checkpoint({"i": 1}, path)
    replace = os.replace

    def full_disk_at_the_last_step(source, destination, *args, **kwargs):
        if str(destination) == str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(checkpoint.os, "replace", full_disk_at_the_last_step)
    with pytest.raises(checkpoint.DiskFullError):
        save_checkpoint({"i": 2}, path)
    monkeypatch.undo()
    assert read_checkpoint(path).state["i"] == 1  # the newest good one is still where it was
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


def test_rotation_without_hard_links(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(checkpoint.os, "link", no_links)
    path = tmp_path / "checkpoint.pt"
    for i in range(3):
        save_checkpoint({"i": i}, path)
    assert read_checkpoint(path).state["i"] == 2 and read_checkpoint(previous_path(path)).state["i"] == 1
    assert not list(tmp_path.glob(".*.tmp"))
