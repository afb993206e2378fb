"""How long ``ccvae-pyro evaluate`` takes, and what encoding each image once buys its ``log p(x)``.

Trains a small ``shapes`` run at 32 px in a temporary folder (the speed of evaluation does not
depend on how well the run is trained), then measures, on one thread:

(a) the whole process ``ccvae-pyro evaluate RUN --max-images N --attribute-epochs 0`` (start-up,
    imports and figures included), the median of ``--repeats`` runs;
(b) the importance-weighted bound alone (K = ``--iw-samples`` on the same N images), in process,
    with the guide's networks encoding each image once (the guide in evaluation mode, as loaded
    runs are) and encoding all K copies (the same guide in training mode, as before), in turn.

Ends with one JSON line holding the figures.

    python benchmarks/evaluation.py [--max-images 500] [--iw-samples 100] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyro
import torch


def ccvae(*args: str) -> float:
    """Run the CLI as its own process; its wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_ccvae_cli.main", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bound_seconds(run_dir: Path, max_images: int, iw_samples: int, encode_once: bool) -> float:
    """Seconds of :func:`~pyro_ccvae.analysis.likelihood.importance_weighted` on the run's first test images."""
    from pyro_ccvae.analysis.context import Analysis
    from pyro_ccvae.analysis.likelihood import importance_weighted
    from pyro_ccvae.run_directory import load_run

    run = load_run(run_dir, "cpu")
    run.guide.train(not encode_once)  # training mode: every copy is encoded (no batch norm in the guide)
    pyro.set_rng_seed(0)
    with run.scope():
        analysis = Analysis.from_run(run, "test", max_images=max_images, progress=False)
        start = time.perf_counter()
        importance_weighted(analysis, iw_samples)
        return time.perf_counter() - start


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-images", type=int, default=500)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-train", type=int, default=1000, help="training images of the run evaluated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        ccvae("train", "--dataset", "shapes", "--num-train", str(args.num_train), "--epochs", "1", "--out", str(run), "--threads", "1", "--no-progress")
        evaluate = ["evaluate", str(run), "--max-images", str(args.max_images), "--iw-samples", str(args.iw_samples)]
        process = [ccvae(*evaluate, "--attribute-epochs", "0", "--threads", "1", "--no-progress") for _ in range(args.repeats)]
        once, every = [], []
        for _ in range(args.repeats):  # in turn, so drift in the machine's speed touches both
            once.append(bound_seconds(run, args.max_images, args.iw_samples, encode_once=True))
            every.append(bound_seconds(run, args.max_images, args.iw_samples, encode_once=False))
    figures = {
        "benchmark": "evaluation", "max_images": args.max_images, "iw_samples": args.iw_samples, "repeats": args.repeats,
        "evaluate_process_s": median(process), "evaluate_process_s_min": min(process), "evaluate_process_s_max": max(process),
        "bound_encode_once_s": median(once), "bound_encode_every_copy_s": median(every),
        "bound_speedup": median(every) / median(once),
    }  # fmt: skip
    print("| what (one thread) | seconds (median) |")
    print("|---|---|")
    print(f"| `evaluate --max-images {args.max_images}`, whole process | {figures['evaluate_process_s']:.1f} |")
    print(f"| log p(x) bound, K = {args.iw_samples}, each image encoded once | {figures['bound_encode_once_s']:.1f} |")
    print(f"| log p(x) bound, K = {args.iw_samples}, every copy encoded | {figures['bound_encode_every_copy_s']:.1f} |")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
