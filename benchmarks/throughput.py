"""Training throughput of each model family's SVI step against a plain PyTorch VAE step (the floor).

The paper's CelebA-size setting: 64x64x3 images, 18 binary labels, the CCVAE's z = 18 + 27 and
K = 100, every family on the same networks with the ``Laplace(., 1)`` likelihood and its own
defaults otherwise (so M2, with 2^18 joint label values, uses its score-function estimator). For
each model and batch size it times one supervised SVI step (every label seen), one unsupervised
step (no label seen), and a hand-written PyTorch step of the same encoder/decoder computing a
Gaussian-prior VAE loss with the same likelihood, then prints the ratios to the floor and ends
with one JSON line holding every figure. Where a family's objective does more than one VAE's work
(MVAE's supervised step decodes the image twice), a plain-PyTorch step of that objective on the
same networks is timed too (``*_matched_ratio``: the cost of writing it in Pyro). Each step takes turns with the floor step, round after
round, so drift in the machine's speed touches both alike.

    python benchmarks/throughput.py                 # CPU, one thread, every model (and the CUDA rows if a GPU is present)
    python benchmarks/throughput.py --models ccvae,m2 --threads 2
    python benchmarks/throughput.py --device cuda
    python benchmarks/throughput.py --batch-sizes 64 --guides meanfield,fullrank --particles 4

Then, at the first batch size, one supervised step of each guide (``--guides``, default every
built-in) against the floor, and ``--particles`` particles per point looped against vectorised
(the mean-field guide); they are the JSON line's ``guides`` and ``particles``.

One thread is the default: two-thread timings on small VMs are erratic.

**CUDA rows** (whenever a GPU is present; ``--cuda-rows off`` skips them): the training loop's own
step (:class:`~pyro_ccvae.distributed.DataParallelSVI`, which never waits on the device) on
device-resident uint8 images at ``--cuda-batch-sizes`` (200 and 1024), supervised and
unsupervised, in fp32, with ``--precision bf16``, with ``--compile``, with both, and with
``--noise keyed``: images/s over ``--cuda-steps`` steps timed between two synchronisations,
peak GPU memory, and the minutes that 100 CelebA epochs (202,599 images) would take at that rate.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import pyro
import torch
from pyro.infer import SVI

from pyro_ccvae.acceleration import accelerate
from pyro_ccvae.data import as_float_images
from pyro_ccvae.distributed import DataParallelSVI
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO
from pyro_ccvae.models.ccvae.guides import GUIDES, MeanFieldGuide
from pyro_ccvae.models.ccvae.model import CCVAEModel
from pyro_ccvae.models import MODELS, get_family
from pyro_ccvae.nets import ConvDecoder, ConvEncoder
from pyro_ccvae.noise import KeyedNoise, batch_noise

LABELS, STYLE, CHANNELS, SIZE = 18, 27, 3, 64
CELEBA_TRAIN_IMAGES = 202_599
#: (name, --precision, --compile, --noise) of the CUDA rows.
CUDA_VARIANTS = (
    ("fp32", "fp32", False, "global"),
    ("bf16", "bf16", False, "global"),
    ("compile", "fp32", True, "global"),
    ("bf16+compile", "bf16", True, "global"),
    ("keyed-noise", "fp32", False, "keyed"),
)


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
    family.fill_defaults(config, "shapes")  # the latent sizes of shapes: d_c = 1, d_s = 27
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


def mvae_floor_step(batch: int, device: torch.device):
    """MVAE's supervised objective written in plain PyTorch on the same networks: the floor of a
    step whose ``ELBO(x, y) + ELBO(x) + sum_i ELBO(y_i)`` decodes the image twice (from
    ``q(z|x, y)`` and from ``q(z|x)``) and every label from ``q(z|x, y)`` and from ``q(z|y_i)``."""
    z_dim, hidden = LABELS + STYLE, 256
    encoder = ConvEncoder(CHANNELS, SIZE, 2 * z_dim).to(device)
    decoder = ConvDecoder(z_dim, CHANNELS, SIZE).to(device)
    label_decoder = torch.nn.Sequential(torch.nn.Linear(z_dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2 * LABELS)).to(device)
    label_loc = torch.zeros(LABELS, 2, z_dim, device=device, requires_grad=True)
    label_raw_scale = torch.zeros(LABELS, 2, z_dim, device=device, requires_grad=True)
    params = [*encoder.parameters(), *decoder.parameters(), *label_decoder.parameters(), label_loc, label_raw_scale]
    optim = torch.optim.Adam(params, lr=1e-4)
    x = torch.rand(batch, CHANNELS, SIZE, SIZE, device=device)
    y = (torch.rand(batch, LABELS, device=device) < 0.5).long()
    standard = torch.distributions.Normal(0.0, 1.0)

    def product(eta, precision):  # with the prior expert
        precision = 1.0 + precision
        return torch.distributions.Normal(eta / precision, precision.rsqrt())


    def step():
        loc, raw_scale = encoder(x).chunk(2, dim=-1)
        precision_x = (torch.nn.functional.softplus(raw_scale) + 1e-4).pow(-2)
        eta_x = loc * precision_x
        precision_y = torch.nn.functional.softplus(label_raw_scale).pow(-2)[torch.arange(LABELS), y]  # [B, L, d]
        eta_y = label_loc[torch.arange(LABELS), y] * precision_y
        q_image, q_joint = product(eta_x, precision_x), product(eta_x + eta_y.sum(1), precision_x + precision_y.sum(1))
        q_labels = product(eta_y, precision_y)
        loss = 0.0
        for q in (q_image, q_joint):
            z = q.rsample()
            log_px = torch.distributions.Laplace(decoder(z), 1.0).log_prob(x).sum((1, 2, 3))
            loss = loss + (torch.distributions.kl_divergence(q, standard).sum(-1) - log_px).sum()
        z_joint, z_labels = q_joint.rsample(), q_labels.rsample()  # [B, d], [B, L, d]
        loss = loss - 10.0 * torch.distributions.Categorical(logits=label_decoder(z_joint).reshape(batch, LABELS, 2)).log_prob(y).sum()
        own = label_decoder(z_labels).reshape(batch, LABELS, LABELS, 2).diagonal(dim1=1, dim2=2).transpose(1, 2)  # [B, L, 2]
        loss = loss - torch.distributions.Categorical(logits=own).log_prob(y).sum()
        loss = loss + torch.distributions.kl_divergence(q_labels, standard).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
        return loss.item()

    return step


#: per model and step kind, a plain-PyTorch floor that does the objective's own work, where it
#: does more than one plain VAE step (MVAE's supervised step decodes the image twice).
MATCHED_FLOORS = {("mvae", "supervised"): mvae_floor_step}


def training_step(batch: int, device: torch.device, k_samples: int, supervised: bool, precision: str, compile: bool, noise: str):
    """The training loop's step on device-resident uint8 images: returns a callable that takes
    one step and returns the loss unread."""
    pyro.clear_param_store()
    model = CCVAEModel(LABELS, CHANNELS, SIZE, STYLE).to(device)
    guide = MeanFieldGuide(LABELS, 1, STYLE, CHANNELS, SIZE).to(device)
    accelerate((model, guide), device, precision=precision, compile=compile)
    svi = DataParallelSVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), CCVAE_ELBO(k_samples=k_samples))
    keyed = KeyedNoise(0) if noise == "keyed" else None
    images = torch.randint(0, 256, (batch, CHANNELS, SIZE, SIZE), dtype=torch.uint8, device=device)
    y = (torch.rand(batch, LABELS, device=device) < 0.5).long()
    mask = torch.full((batch, LABELS), supervised, dtype=torch.bool, device=device)
    steps = iter(range(1 << 62))

    def step():
        with batch_noise(keyed, 0, next(steps), 0, batch, batch):
            return svi.step(as_float_images(images, device), y, mask)

    return step


def cuda_rows(args, device: torch.device) -> list[dict]:
    """Images/s and peak memory of the training step on CUDA, with and without each option."""
    rows = []
    print(f"{'batch':>5} {'step':>13} {'variant':>13} {'images/s':>9} {'peak MiB':>9} {'100 CelebA epochs':>18}")
    for batch in [int(b) for b in args.cuda_batch_sizes.split(",")]:
        for kind, supervised in (("supervised", True), ("unsupervised", False)):
            for name, precision, compile, noise in CUDA_VARIANTS:
                step = training_step(batch, device, args.k_samples, supervised, precision, compile, noise)
                for _ in range(args.cuda_warmup):  # compiles, autotunes, fills the caches
                    step()
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                for _ in range(args.cuda_steps):
                    loss = step()
                float(loss)  # one read at the end, as the loop reads every few steps
                torch.cuda.synchronize(device)
                seconds = time.perf_counter() - start
                images_per_s = batch * args.cuda_steps / seconds
                row = {
                    "batch_size": batch, "step": kind, "variant": name, "images_per_s": images_per_s,
                    "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
                    "celeba_100_epochs_minutes": 100 * CELEBA_TRAIN_IMAGES / images_per_s / 60,
                }  # fmt: skip
                rows.append(row)
                print(f"{batch:>5} {kind:>13} {name:>13} {images_per_s:9.0f} {row['peak_memory_mib']:9.0f} {row['celeba_100_epochs_minutes']:15.1f} min")
    return rows


# --- the guides, and looped against vectorised particles -----------------------------------------


def guide_step(batch: int, device: torch.device, k_samples: int, guide: str, num_particles: int = 1, vectorize: bool = False):
    """One supervised SVI step of the CCVAE with the built-in ``guide``."""
    pyro.clear_param_store()
    model = CCVAEModel(LABELS, CHANNELS, SIZE, STYLE).to(device)
    guide_module = GUIDES[guide](num_labels=LABELS, z_char_dim=1, z_style_dim=STYLE, channels=CHANNELS, image_size=SIZE).to(device)
    elbo = CCVAE_ELBO(k_samples=k_samples, num_particles=num_particles, vectorize_particles=vectorize)
    svi = SVI(model, guide_module, pyro.optim.Adam({"lr": 1e-4}), elbo)
    x = torch.rand(batch, CHANNELS, SIZE, SIZE, device=device)
    y = (torch.rand(batch, LABELS, device=device) < 0.5).float()
    mask = torch.ones(batch, LABELS, dtype=torch.bool, device=device)
    return lambda: svi.step(x, y, mask)


def guide_rows(batch: int, device: torch.device, args) -> tuple[list, dict]:
    """Each guide's supervised step against the floor, and looped against vectorised particles."""
    floor_fn = floor_step(batch, device)
    rows = []
    print(f"{'batch':>5} {'guide':>13} {'ms/step':>9} {'x floor':>8}")
    for name in [g for g in args.guides.split(",") if g]:
        seconds = time_steps({"floor": floor_fn, name: guide_step(batch, device, args.k_samples, name)}, device, args.warmup, args.repeats)
        rows.append({"guide": name, "batch_size": batch, "ms": 1e3 * seconds[name], "floor_ms": 1e3 * seconds["floor"],
                     "ratio": seconds[name] / seconds["floor"]})  # fmt: skip
        print(f"{batch:>5} {name:>13} {1e3 * seconds[name]:9.1f} {seconds[name] / seconds['floor']:8.2f}")
    particles = {"particles": args.particles, "batch_size": batch, "guide": "meanfield"}
    for mode, vectorize in (("looped", False), ("vectorised", True)):
        step = guide_step(batch, device, args.k_samples, "meanfield", args.particles, vectorize)
        seconds = time_steps({"floor": floor_fn, mode: step}, device, args.warmup, args.repeats)
        particles |= {f"{mode}_ms": 1e3 * seconds[mode], f"{mode}_ratio": seconds[mode] / seconds["floor"]}
        print(f"{batch:>5} {f'{args.particles} {mode}':>13} {1e3 * seconds[mode]:9.1f} {seconds[mode] / seconds['floor']:8.2f}")
    particles["vectorised_over_looped"] = particles["vectorised_ms"] / particles["looped_ms"]
    return rows, particles


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Each model family's SVI step throughput against a plain PyTorch VAE step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated model families.")
    parser.add_argument("--batch-sizes", default="64,200")
    parser.add_argument("--k-samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--cuda-rows", choices=("auto", "on", "off"), default="auto", help="auto: when a GPU is present")
    parser.add_argument("--cuda-batch-sizes", default="200,1024")
    parser.add_argument("--cuda-steps", type=int, default=50)
    parser.add_argument("--cuda-warmup", type=int, default=10)
    parser.add_argument("--guides", default=",".join(GUIDES), help="guides to time at the first batch size")
    parser.add_argument("--particles", type=int, default=4, help="particles per point, looped against vectorised")
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
                matched = MATCHED_FLOORS.get((name, mode))
                if matched is not None:
                    steps["matched"] = matched(batch, device)
                seconds = time_steps(steps, device, args.warmup, args.repeats)
                floor, step_seconds = seconds["floor"], seconds[mode]
                row |= {
                    f"{mode}_floor_ms": 1e3 * floor,
                    f"{mode}_ms": 1e3 * step_seconds,
                    f"{mode}_images_per_s": batch / step_seconds,
                    f"{mode}_ratio": step_seconds / floor,
                }
                print(f"{name:>6} {batch:>5} {'pytorch floor':>13} {1e3 * floor:9.1f} {batch / floor:9.0f} {1.0:8.2f}")
                if matched is not None:
                    row |= {f"{mode}_matched_floor_ms": 1e3 * seconds["matched"], f"{mode}_matched_ratio": step_seconds / seconds["matched"]}
                    print(f"{name:>6} {batch:>5} {'plain ' + name:>13} {1e3 * seconds['matched']:9.1f} {batch / seconds['matched']:9.0f} {seconds['matched'] / floor:8.2f}")
                print(f"{name:>6} {batch:>5} {mode:>13} {1e3 * step_seconds:9.1f} {batch / step_seconds:9.0f} {step_seconds / floor:8.2f}")
            results.append(row)
    gpu = torch.device("cuda") if args.cuda_rows == "on" or (args.cuda_rows == "auto" and torch.cuda.is_available()) else None
    guides, particles = guide_rows(int(args.batch_sizes.split(",")[0]), device, args)
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
        "cuda_results": cuda_rows(args, gpu) if gpu is not None else "skipped: no GPU (or --cuda-rows off)",
        "guides": guides,
        "particles": particles,
    }
    if gpu is not None:
        summary["cuda_device"] = torch.cuda.get_device_name(gpu)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
