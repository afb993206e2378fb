"""Training throughput of each model family's SVI step against a plain PyTorch VAE step (the floor).

The paper's CelebA-size setting: 64x64x3 images, 18 binary labels, the CCVAE's z = 18 + 27 and
K = 100, every family on the same networks with the ``Laplace(., 1)`` likelihood and its own
defaults otherwise (so M2, with 2^18 joint label values, uses its score-function estimator). For
each model and batch size it times one supervised SVI step (every label seen), one unsupervised
step (no label seen), and a hand-written PyTorch step of the same encoder/decoder computing a
Gaussian-prior VAE loss with the same likelihood, then prints the ratios to the floor and ends
with one JSON line holding every figure. Each step takes turns with the floor step, round after
round, so drift in the machine's speed touches both alike.

    python benchmarks/throughput.py                 # CPU, one thread, every model
    python benchmarks/throughput.py --models ccvae,m2 --threads 2
    python benchmarks/throughput.py --device cuda

One thread is the default: two-thread timings on small VMs are erratic.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import pyro
import torch
from pyro.infer import SVI

from pyro_ccvae.models import MODELS, get_family
from pyro_ccvae.nets import ConvDecoder, ConvEncoder

LABELS, STYLE, CHANNELS, SIZE = 18, 27, 3, 64


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(steps: dict, device: torch.device, warmup: int, repeats: int) -> dict:
    """Median seconds of one call of each of ``steps`` (name -> callable) over ``repeats`` rounds
    after ``warmup`` rounds; the steps take turns within a round, so drift in the machine's
    speed touches all of them alike."""
    times = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            _sync(device)
            start = time.perf_counter()
            step()
            _sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def model_step(name: str, batch: int, device: torch.device, k_samples: int, supervised: bool):
    """One SVI step of the family ``name`` (its defaults, the Laplace(., 1) likelihood) on random data."""
    pyro.clear_param_store()
    family = get_family(name)
    config = family.config_class(likelihood="laplace", **({"k_samples": k_samples} if name == "ccvae" else {}))
    info = {"label_names": [f"label{i}" for i in range(LABELS)], "num_classes": [2] * LABELS, "channels": CHANNELS, "image_size": SIZE}
    model, guide = family.build(config, "meanfield", info)
    x = torch.rand(batch, CHANNELS, SIZE, SIZE, device=device)
    y = (torch.rand(batch, LABELS, device=device) < 0.5).float()
    mask = torch.full((batch, LABELS), supervised, dtype=torch.bool, device=device)
    family.prepare(model, y, torch.ones_like(mask))
    model.to(device)
    guide.to(device)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), family.objective(config))
    return lambda: svi.step(x, y, mask)


def floor_step(batch: int, device: torch.device):
    """A plain VAE on the same networks: Laplace(decoder(z), 1) and KL(q(z|x) || N(0, I))."""
    z_dim = LABELS + STYLE
    encoder = ConvEncoder(CHANNELS, SIZE, 2 * z_dim).to(device)
    decoder = ConvDecoder(z_dim, CHANNELS, SIZE).to(device)
    optim = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-4)
    x = torch.rand(batch, CHANNELS, SIZE, SIZE, device=device)

    def step():
        loc, raw_scale = encoder(x).chunk(2, dim=-1)
        q = torch.distributions.Normal(loc, torch.nn.functional.softplus(raw_scale) + 1e-4)
        z = q.rsample()
        log_px = torch.distributions.Laplace(decoder(z), 1.0).log_prob(x).sum((1, 2, 3))
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
        loss = (kl - log_px).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
        return loss.item()

    return step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Each model family's SVI step throughput against a plain PyTorch VAE step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated model families.")
    parser.add_argument("--batch-sizes", default="64,200")
    parser.add_argument("--k-samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pyro.set_rng_seed(0)
    pyro.enable_validation(False)  # as in training, after the one-time guide check

    results = []
    print(f"{'model':>6} {'batch':>5} {'step':>13} {'ms/step':>9} {'images/s':>9} {'x floor':>8}")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        floor_fn = floor_step(batch, device)
        for name in args.models.split(","):
            row = {"model": name, "batch_size": batch}
            # One model at a time: they would register the same parameter names in Pyro's store.
            for mode, supervised in (("supervised", True), ("unsupervised", False)):
                steps = {"floor": floor_fn, mode: model_step(name, batch, device, args.k_samples, supervised)}
                seconds = time_steps(steps, device, args.warmup, args.repeats)
                floor, step_seconds = seconds["floor"], seconds[mode]
                row |= {
                    f"{mode}_floor_ms": 1e3 * floor,
                    f"{mode}_ms": 1e3 * step_seconds,
                    f"{mode}_images_per_s": batch / step_seconds,
                    f"{mode}_ratio": step_seconds / floor,
                }
                print(f"{name:>6} {batch:>5} {'pytorch floor':>13} {1e3 * floor:9.1f} {batch / floor:9.0f} {1.0:8.2f}")
                print(f"{name:>6} {batch:>5} {mode:>13} {1e3 * step_seconds:9.1f} {batch / step_seconds:9.0f} {step_seconds / floor:8.2f}")
            results.append(row)
    summary = {
        "benchmark": "svi_step_throughput",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": args.threads,
        "k_samples": args.k_samples,
        "labels": LABELS,
        "z_dim": LABELS + STYLE,
        "image": [CHANNELS, SIZE, SIZE],
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "machine": platform.machine(),
        "results": results,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
