"""How much the decoded-image cache buys: build it once vs decode JPEGs in the training loop.

Builds a synthetic CheXpert-v1.0-small-like folder (N grayscale JPEGs of about 320x390, the
official CSVs) in a temporary directory, then measures, in images per second:

(a) building the cache (``load_dataset("chexpert")`` on a cold cache: CSV parsing, decoding,
    resizing, writing, gathering the splits), and loading it again once built;
(b) reading random batches of 64 from the memory-mapped cache, as float on the CPU (one torch
    thread, and torch's default);
(c) decoding and resizing JPEGs per batch of 64, as a training loop without a cache would:
    a plain PIL decode (full size, then resize), and the reduced-scale decode the cache uses.

Ends with one JSON line holding the figures.

    python benchmarks/data_cache.py [--n 2000] [--image-size 64]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pyro_ccvae.data import DataOptions, load_dataset
from pyro_ccvae.data.chexpert import HEADER
from pyro_ccvae.data.images import decode_image


def make_chexpert(parent: Path, n: int, seed: int = 0) -> tuple[Path, list[Path]]:
    """A CheXpert-v1.0-small-like folder with ``n`` images, about 95% in train.csv, 3 per patient."""
    rng = np.random.default_rng(seed)
    root = parent / "CheXpert-v1.0-small"
    n_valid = max(1, n // 20)
    files = []
    for split, count, first in (("train", n - n_valid, 1), ("valid", n_valid, 64541)):
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            for i in range(count):
                patient, view = first + i // 3, i % 3 + 1
                kind = "lateral" if view == 3 else "frontal"
                rel = f"{split}/patient{patient:05d}/study1/view{view}_{kind}.jpg"
                labels = rng.choice(["1.0", "0.0", "", "-1.0"], size=len(HEADER) - 5)
                writer.writerow([f"{root.name}/{rel}", "Male", "60", kind.capitalize(), "AP"] + list(labels))
                height = int(rng.integers(320, 420))
                # smooth structure plus noise, so that the JPEGs are about as large as real ones
                coarse = rng.integers(0, 256, size=(height // 16 + 1, 21), dtype=np.uint8)
                pixels = np.kron(coarse, np.ones((16, 16), np.uint8))[:height, :320].astype(np.int16)
                pixels += rng.integers(-20, 21, size=pixels.shape).astype(np.int16)
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="L").save(path, quality=90)
                files.append(path)
    return root, files


def plain_decode(path: Path, size: int) -> np.ndarray:
    """What a data loader without a cache typically does: decode the whole JPEG, then resize."""
    with Image.open(path) as img:
        img = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs (default 2000)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--read-batches", type=int, default=500, help="batches read from the cache")
    parser.add_argument("--decode-batches", type=int, default=10, help="batches decoded per JPEG loop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    size, batch = args.image_size, args.batch
    figures: dict = {"n": args.n, "image_size": size, "batch": batch, "cpus": os.cpu_count(),
                     "torch_threads": torch.get_num_threads()}  # fmt: skip

    tmp = Path(tempfile.mkdtemp(prefix="ccvae-bench-"))
    try:
        start = time.perf_counter()
        root, files = make_chexpert(tmp, args.n)
        jpeg_kb = sum(f.stat().st_size for f in files) / len(files) / 1024
        made = time.perf_counter() - start
        print(f"made {len(files)} JPEGs ({jpeg_kb:.0f} KB each) in {made:.1f} s", file=sys.stderr)
        options = DataOptions(data_dir=root, image_size=size, views="all")

        # (a) build the cache, then load it again
        start = time.perf_counter()
        splits = load_dataset("chexpert", options)
        build = time.perf_counter() - start
        start = time.perf_counter()
        splits = load_dataset("chexpert", options)
        reload = time.perf_counter() - start
        figures["a_build_images_per_s"] = args.n / build
        figures["a_build_s"] = build
        figures["a_load_built_cache_s"] = reload

        # (b) random batches from the memory-mapped cache, as float; one torch thread, then the
        # default (on a small shared VM, several threads can be slower than one)
        images = splits.train.images
        generator = torch.Generator().manual_seed(0)
        index = [torch.randint(len(images), (batch,), generator=generator) for _ in range(args.read_batches)]
        threads = torch.get_num_threads()
        for name, count in (("b_cache_read_images_per_s", 1), (f"b_cache_read_{threads}_threads_images_per_s", threads)):
            torch.set_num_threads(count)
            start = time.perf_counter()
            for i in index:
                x = images[i].float().div_(255)
            figures[name] = args.read_batches * batch / (time.perf_counter() - start)
        torch.set_num_threads(threads)
        assert x.shape == (batch, 1, size, size)

        # (c) decode + resize per batch, in the loop
        rng = np.random.default_rng(0)
        for name, decode in (("c_plain_decode_images_per_s", lambda p: plain_decode(p, size)),
                             ("c_reduced_decode_images_per_s", lambda p: decode_image(p, size, 1))):  # fmt: skip
            start = time.perf_counter()
            for _ in range(args.decode_batches):
                paths = rng.choice(len(files), batch)
                x = torch.from_numpy(np.stack([decode(files[j]) for j in paths])).float().div_(255)
            figures[name] = args.decode_batches * batch / (time.perf_counter() - start)
        assert x.shape == (batch, 1, size, size)
        figures["cache_over_plain_decode"] = (
            figures["b_cache_read_images_per_s"] / figures["c_plain_decode_images_per_s"]
        )
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    for key, value in figures.items():
        print(f"{key:32s} {value:,.1f}" if isinstance(value, float) else f"{key:32s} {value}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
