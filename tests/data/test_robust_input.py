"""Input that used to fail badly: a full disk during a cache build, leftovers of killed builds,
16-bit PNGs, byte-order marks and non-UTF-8 bytes in index files, data that moved."""
import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pyro_ccvae.checkpoint import DiskFullError
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.data import DataError, DataOptions, cache, load_dataset
from pyro_ccvae.data.celeba import read_attributes
from pyro_ccvae.data.images import decode_image
from pyro_ccvae.run_directory import RunError, load_run
from pyro_ccvae.training import train
from pyro_ccvae_cli.main import main


def full_disk(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_cache_build_on_a_full_disk_is_one_line_and_leaves_nothing(chexpert, layouts, monkeypatch):
    monkeypatch.setattr(os, "posix_fallocate", full_disk)
    with pytest.raises(DiskFullError) as info:
        load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    message = layouts.one_line(info)
    assert message.startswith("no space left on device writing ") and "chexpert-64" in message
    assert "free 1 MB" in message and "--cache-dir" in message
    assert not [p for p in (chexpert.root / ".ccvae-cache").iterdir() if ".tmp" in p.name]
    result = CliRunner().invoke(main, ["train", "--dataset", "chexpert", "--data-dir", str(chexpert.root), "--out", str(chexpert.parent / "run"), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 1 and result.output.startswith("error: no space left on device writing ")
    assert result.output.count("\n") == 1, result.output


def test_a_later_build_removes_what_killed_builds_left(chexpert):
    built = load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    path = cache.Path(built.source["cache"])
    path.unlink()
    path.with_suffix(".json").unlink()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = path.with_name(f".{path.stem}.{cache._HOST}.{dead.pid}.0badf00d.tmp.npy")
    elsewhere = path.with_name(f".{path.stem}.otherhost.{dead.pid}.0badf00d.tmp.npy")
    live = path.with_name(f".{path.stem}.{cache._HOST}.{os.getppid()}.0badf00d.tmp.npy")
    for leftover in (stale, elsewhere, live):
        leftover.write_bytes(b"\0" * 100)
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    assert path.is_file() and not stale.exists()
    assert elsewhere.exists() and live.exists()  # another host's, or a running process's: not ours to remove


def test_16_bit_grayscale_png_is_scaled_to_8_bits(tmp_path):
    levels = np.repeat(np.arange(0, 256, 4, dtype=np.uint16)[None], 64, axis=0)  # 64 x 64
    Image.fromarray(levels * 257).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    decoded = decode_image(tmp_path / "wide.png", 64, 1)
    assert np.array_equal(decoded[0], levels.astype(np.uint8))
    assert decode_image(tmp_path / "wide.png", 64, 3).shape == (3, 64, 64)


def test_attribute_file_with_a_byte_order_mark(celeba):
    attr = celeba.root / "list_attr_celeba.txt"
    plain = read_attributes(attr, ("Smiling", "Male"))
    attr.write_bytes(b"\xef\xbb\xbf" + attr.read_bytes())
    with_bom = read_attributes(attr, ("Smiling", "Male"))
    assert plain[:3] == with_bom[:3] and np.array_equal(plain[3], with_bom[3])  # names, labels, columns, values


def replace_on_line(path, line_number, new: bytes):
    lines = path.read_bytes().split(b"\n")
    lines[line_number - 1] = lines[line_number - 1][:5] + new + lines[line_number - 1][5:]
    path.write_bytes(b"\n".join(lines))


def test_non_utf8_byte_names_file_and_line(celeba, chexpert, layouts):
    attr = celeba.root / "list_attr_celeba.txt"
    replace_on_line(attr, 4, b"\xff")
    with pytest.raises(DataError) as info:
        load_dataset("celeba", DataOptions(data_dir=celeba.root))
    assert f"{attr} line 4" in layouts.one_line(info) and "UTF-8" in str(info.value)
    csv_path = chexpert.root / "train.csv"
    replace_on_line(csv_path, 3, b"\xe9")
    with pytest.raises(DataError, match=f"{csv_path} line 3 .*UTF-8"):
        load_dataset("chexpert", DataOptions(data_dir=chexpert.root))


def test_analysis_after_the_data_moved(chexpert, tmp_path, monkeypatch):
    monkeypatch.chdir(chexpert.parent)
    run_dir = tmp_path / "run"
    config = TrainConfig.from_options(dataset="chexpert", data_dir=chexpert.root.name, epochs=1, batch_size=8, k_samples=4, z_style_dim=3, device="cpu")
    train(config, run_dir, progress=False)
    assert json.loads((run_dir / "config.json").read_text())["data"]["data_dir"] == str(chexpert.root)  # absolute
    moved = tmp_path / "elsewhere" / chexpert.root.name
    shutil.move(chexpert.root, moved)
    with pytest.raises(DataError, match="not a directory"):
        load_run(run_dir)
    assert len(load_run(run_dir, data_dir=moved).data.test) == len(json.loads((run_dir / "splits.json").read_text())["test"])
    lines = (moved / "valid.csv").read_text().splitlines()
    (moved / "valid.csv").write_text("\n".join(lines[:-1]) + "\n")  # one test image fewer
    with pytest.raises(RunError, match="no longer matches"):
        load_run(run_dir, data_dir=moved)
