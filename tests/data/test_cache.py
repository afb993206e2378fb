"""The decoded-image cache: built once, memory-mapped after, rebuilt when the source or the pixels change."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_ccvae.data import DataError, DataOptions, cache, images, load_dataset


@pytest.fixture
def decodes(monkeypatch):
    """Counts calls of the image decoder (and of MNIST's resizer)."""
    calls = []
    decode, resize = images.decode_image, images.resize_array

    def counting_decode(*args, **kwargs):
        calls.append(args[0])
        return decode(*args, **kwargs)

    def counting_resize(*args, **kwargs):
        calls.append("resize")
        return resize(*args, **kwargs)

    monkeypatch.setattr(images, "decode_image", counting_decode)
    monkeypatch.setattr(images, "resize_array", counting_resize)
    return calls


def forbid_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded an image although the cache was there")

    monkeypatch.setattr(images, "decode_image", fail)
    monkeypatch.setattr(images, "resize_array", fail)


def mapped_files() -> str:
    return Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""


def test_built_once_then_memory_mapped(chexpert, decodes, monkeypatch):
    first = load_dataset("chexpert", DataOptions(data_dir=chexpert.parent))
    n = sum(r.frontal for r in chexpert.train + chexpert.valid)
    assert len(decodes) == n
    cache_file = Path(first.source["cache"])
    assert cache_file.parent == chexpert.root / ".ccvae-cache" and cache_file.suffix == ".npy"
    assert np.load(cache_file, mmap_mode="r").shape == (n, 1, 64, 64)
    assert not [p for p in cache_file.parent.iterdir() if ".tmp" in p.name]  # no temporary left behind

    forbid_decoding(monkeypatch)
    second = load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(first, split).images, getattr(second, split).images)
        assert getattr(first, split).ids == getattr(second, split).ids
    if mapped_files():
        assert str(cache_file) in mapped_files()
    # copy-on-write: writing to the tensor never reaches the file
    before = np.load(cache_file)
    second.test.images[0] += 1
    assert np.array_equal(np.load(cache_file), before)


def test_rebuilt_when_the_source_changes(chexpert, decodes):
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    n = len(decodes)
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root, labels=("Edema",), uncertain="ones", seed=5))
    assert len(decodes) == n  # labels, policies and the split do not touch the pixels
    csv = chexpert.root / "train.csv"
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    assert len(decodes) == 2 * n
    assert len(list((chexpert.root / ".ccvae-cache").glob("chexpert-64-????????????????????.npy"))) == 2


@pytest.mark.parametrize("change", [{"image_size": 32}, {"views": "all"}])
def test_rebuilt_when_the_pixels_change(chexpert, decodes, change):
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    n = len(decodes)
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root, **change))
    assert len(decodes) > n
    k = len(decodes)
    load_dataset("chexpert", DataOptions(data_dir=chexpert.root, **change))
    assert len(decodes) == k


def test_celeba_center_crop_has_its_own_cache(celeba, decodes, monkeypatch):
    load_dataset("celeba", DataOptions(data_dir=celeba.root))
    load_dataset("celeba", DataOptions(data_dir=celeba.root, center_crop=True))
    assert len(decodes) == 2 * len(celeba.names)
    forbid_decoding(monkeypatch)
    load_dataset("celeba", DataOptions(data_dir=celeba.root, center_crop=True))
    load_dataset("celeba", DataOptions(data_dir=celeba.root))


def test_mnist_cache(tmp_path, layouts, decodes, monkeypatch):
    copy = layouts.write_mnist(tmp_path, gz=True)
    first = load_dataset("mnist", DataOptions(data_dir=tmp_path, image_size=16))
    assert len(decodes) == 50
    assert Path(first.source["cache"]).parent == copy.raw / ".ccvae-cache"
    forbid_decoding(monkeypatch)
    second = load_dataset("mnist", DataOptions(data_dir=copy.raw, image_size=16))
    assert torch.equal(first.valid.images, second.valid.images)


def test_cache_dir_option_and_fallback(chexpert, tmp_path, monkeypatch):
    chosen = tmp_path / "elsewhere" / "cache"
    splits = load_dataset("chexpert", DataOptions(data_dir=chexpert.root, cache_dir=chosen))
    assert Path(splits.source["cache"]).parent == chosen
    assert not (chexpert.root / ".ccvae-cache").exists()
    # a data directory that cannot be written: the user's cache directory
    real_access = os.access
    monkeypatch.setattr(cache.os, "access", lambda p, mode: False if ".ccvae-cache" in str(p) else real_access(p, mode))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    splits = load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    assert Path(splits.source["cache"]).parent == tmp_path / "xdg" / "pyro-ccvae"
    blocked = tmp_path / "file"
    blocked.write_text("")
    options = DataOptions(data_dir=chexpert.root, cache_dir=blocked / "x")
    message = str(pytest.raises(DataError, load_dataset, "chexpert", options).value)
    assert "--cache-dir" in message and "\n" not in message


def test_unreadable_cache_is_rebuilt(chexpert, decodes):
    splits = load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    path, expected = Path(splits.source["cache"]), splits.test.images.clone()
    del splits  # let go of the memory map: reading a mapped file truncated under you is a bus error
    path.write_bytes(path.read_bytes()[:200])
    n = len(decodes)
    again = load_dataset("chexpert", DataOptions(data_dir=chexpert.root))
    assert len(decodes) == 2 * n and torch.equal(again.test.images, expected)


# ---------------------------------------------------------------- the ImageCache itself


def test_image_cache_rows_and_atomic_build(tmp_path):
    def build(out):
        out[:] = np.arange(6, dtype=np.uint8)[:, None, None, None]
        return {4: "missing"}

    c = cache.ImageCache.load_or_build(tmp_path, "toy", "k1", (6, 1, 2, 2), build)
    assert isinstance(c.array, np.memmap) and c.bad == {4: "missing"}
    view = c.rows([1, 2, 3])
    assert view[:, 0, 0, 0].tolist() == [1, 2, 3]
    assert view.data_ptr() == c.array[1:].ctypes.data  # a view of the memory map, no copy
    picked = c.rows([0, 2, 5])
    assert picked[:, 0, 0, 0].tolist() == [0, 2, 5]
    assert len(list(tmp_path.glob("toy-k1-rows-*.npy"))) == 1
    assert c.rows([0, 2, 5]).tolist() == picked.tolist() and len(list(tmp_path.glob("*.npy"))) == 2
    assert c.rows([]).shape == (0, 1, 2, 2)
    with pytest.raises(ValueError):
        c.rows([3, 1])
    again = cache.ImageCache.load_or_build(tmp_path, "toy", "k1", (6, 1, 2, 2), lambda out: pytest.fail("rebuilt"))
    assert again.bad == {4: "missing"}

    def crash(out):
        out[:] = 1
        raise DataError("stop")

    with pytest.raises(DataError):
        cache.ImageCache.load_or_build(tmp_path, "toy", "k2", (6, 1, 2, 2), crash)
    assert not list(tmp_path.glob("toy-k2*")) and not list(tmp_path.glob(".*tmp*"))


def test_source_key(tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("a")
    key = cache.source_key("d", files=[index], items=["x", "y"], pixels={"size": 64})
    assert key == cache.source_key("d", files=[index], items=["x", "y"], pixels={"size": 64})
    assert key != cache.source_key("d", files=[index], items=["x", "z"], pixels={"size": 64})
    assert key != cache.source_key("d", files=[index], items=["xy"], pixels={"size": 64})
    assert key != cache.source_key("d", files=[index], items=["x", "y"], pixels={"size": 32})
    index.write_text("ab")
    assert key != cache.source_key("d", files=[index], items=["x", "y"], pixels={"size": 64})


def test_thread_pool_decodes_like_one_thread(chexpert, monkeypatch):
    paths = [chexpert.parent / chexpert.path(r) for r in chexpert.train] + [chexpert.root / "absent.jpg"]
    serial, pooled = (np.zeros((len(paths), 1, 8, 8), np.uint8) for _ in range(2))
    bad = images.decode_into(paths, serial, channels=1, workers=1)
    monkeypatch.setattr(images, "_POOL_MIN", 1)
    monkeypatch.setattr(images, "_BLOCK", 5)
    assert images.decode_into(paths, pooled, channels=1, workers=2, skip={0}) == bad == {len(paths) - 1: "missing"}
    assert np.array_equal(serial[1:], pooled[1:]) and not pooled[0].any()
