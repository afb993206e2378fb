"""One training epoch over CelebA-format JPEGs, each pipeline as a whole process: ours against the authors'.

Writes a synthetic CelebA folder in the official layout (``img_align_celeba/000001.jpg ...``,
178x218 RGB JPEGs of smooth structure plus noise at quality 95, about as large as real ones;
``list_attr_celeba.txt`` with the 40 attributes; ``list_eval_partition.txt`` with about 90% of
the images in train, 5% in valid, 5% in test) in a temporary directory, then times, each as a
separate process (wall time, CPU time and peak RSS of the child, from ``os.wait4``):

* **ours, cold**: ``python -m pyro_ccvae_cli.main train --dataset celeba --epochs 1 --threads 1``
  with a new, empty ``--cache-dir``, so the decoded-image cache is built in the process (its
  decoding thread pool is the library's: up to ``os.cpu_count()`` threads);
* **ours, warm**: the same command on the cache the cold run built (a new ``--out`` each time);
* **the authors' pipeline** (``--authors-epoch DIR``, this file run as a child process): as the
  authors' ``ss_vae.py`` and ``utils/dataset_cached.py`` do, a ``torch.utils.data.Dataset`` that
  opens each JPEG with PIL and applies ``Compose([Resize((64, 64)), ToTensor()])`` per item, a
  ``DataLoader(shuffle=True, num_workers=0)``, feeding networks of the authors' size
  (:func:`their_size_networks`, 1.45 M parameters; ``--authors-networks ours``: the library's
  CCVAE networks, 0.79 M); then, as the authors' script does after training, the validation and test
  accuracy over JPEG loaders of the same kind. Its step is one of two:

  - ``authors`` (the default): the authors' supervised objective as their code computes it
    (``TraceCCVAE_ELBO`` with ``SSVAE_CCVAE.classifier_loss``), written here on this library's
    model and guide (:func:`authors_svi`): ``log q(y|x)`` from 100 samples of a fresh encoder pass
    (their ``classifier_loss`` calls the encoder twice and uses the second result), then one
    ``Trace_ELBO`` trace of their model and guide, which encodes the batch again: three encoder
    passes a step, two of them with a backward pass, where this library's objective takes the
    ``K`` samples from the guide trace's own encoding. Their ``Laplace(., 1)`` likelihood, Adam
    at the library's learning rate on every parameter.
  - ``ours`` (``--authors-step ours``): this library's objective and step
    (``pyro.infer.SVI(...).step(x, y, mask)``, Adam with its per-parameter factors), so that the
    two processes differ only in their data pipeline and what surrounds the loop.

Both train at the CLI's default batch size (64) and supervision (``--sup-frac 1.0``: every label
seen), on one torch thread (``OMP_NUM_THREADS=1`` too), on the CPU. Ours does more than the
authors' process after the epoch (checkpoint, run files, the health checks); it is counted.
Every run reads JPEGs that the page cache holds (they were just written): "cold" means the
decoded-image cache is built in the process, not a cold disk.

The runs take turns: ``--repeats`` rounds, the order of the three turning from round to round
(:data:`ROUND_ORDERS`), so a load that changes while the benchmark runs is shared. Reports the
median and min-max wall time of each, its CPU time (user + system, which another process's load
hardly changes), images/s (training images / wall seconds of the whole process), the
in-process epoch time (the training loop alone), the ratios authors/ours, the peak RSS, and ends
with one JSON line holding the figures.

    python benchmarks/end_to_end.py [--n 2000] [--repeats 3] [--cpu 0] [--authors-step authors|ours] [--authors-networks theirs|ours] [--keep]
    python benchmarks/end_to_end.py --authors-epoch DIR   # the authors' pipeline alone (what the benchmark runs)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: the 40 attributes of ``list_attr_celeba.txt``, in the official order.
ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
WIDTH, HEIGHT = 178, 218
#: the CLI's defaults, which both pipelines use.
BATCH, SUP_FRAC, IMAGE_SIZE = 64, 1.0, 64
PIPELINES = ("ours_cold", "ours_warm", "authors")
#: the order of each round, in turn: the authors' process takes every place once in three rounds,
#: so a load that rises or falls during the benchmark does not fall on one contender (the warm run
#: reads the cache the cold run of its round built, so it always comes after it).
ROUND_ORDERS = (("ours_cold", "ours_warm", "authors"), ("authors", "ours_cold", "ours_warm"), ("ours_cold", "authors", "ours_warm"))
#: the networks of the authors' process: theirs (their CelebA encoder and decoder's layer sizes,
#: 1.45 M parameters at d = 45) or this library's (0.79 M).
NETWORKS = ("theirs", "ours")


def make_celeba(parent: Path, n: int, seed: int = 0) -> tuple[Path, int, float]:
    """``parent/celeba`` in the official layout with ``n`` JPEGs; (its path, the training
    images, the mean JPEG size in KB)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = parent / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    n_held = max(1, n // 20)  # 5% valid, 5% test, the rest (~90%) train
    partition = [0] * (n - 2 * n_held) + [1] * n_held + [2] * n_held
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attributes = rng.choice([-1, 1], size=(n, len(ATTRIBUTES)))
    # the official file: right-aligned values, two spaces before a 1 and one before a -1
    lines = [str(n), " ".join(ATTRIBUTES) + " "]
    lines += [name + "".join(f"{v:>3d}" for v in row) for name, row in zip(names, attributes)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, p in zip(names, partition)))
    block, total = 32, 0
    for name in names:
        # smooth colour structure (bicubic from 32-pixel cells) plus a little noise: ~10 KB at quality 95
        cells = rng.integers(0, 256, size=(HEIGHT // block + 3, WIDTH // block + 3, 3), dtype=np.uint8)
        smooth = Image.fromarray(cells, "RGB").resize((cells.shape[1] * block, cells.shape[0] * block), Image.Resampling.BICUBIC)
        pixels = np.asarray(smooth.crop((block, block, WIDTH + block, HEIGHT + block))).astype(np.int16)
        pixels += rng.normal(0, 1.5, size=(HEIGHT, WIDTH, 1)).astype(np.int16)
        path = root / "img_align_celeba" / name
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB").save(path, quality=95)
        total += path.stat().st_size
    return root, partition.count(0), total / n / 1024


# ---------------------------------------------------------------- the authors' pipeline (a child process)


STEPS = ("authors", "ours")


def their_size_networks(z_dim: int, channels: int = 3):
    """An encoder and decoder with the layer sizes of the authors' CelebA networks (64 px): four
    4x4 stride-2 convolutions (32, 32, 64, 128 channels) and a 4x4 one to 256, a linear layer to
    ``2 z_dim``; the decoder mirrors it from a linear layer to 256 through transposed convolutions.
    The encoder answers ``[B, 2 z_dim]`` (locations, then raw scales) and the decoder logits, the
    contracts of this library's :class:`~pyro_ccvae.nets.ConvEncoder` and ``ConvDecoder``, so
    they replace those in place; the authors' step then costs what it costs on their networks."""
    from torch import nn

    encoder = nn.Sequential(
        nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(128, 256, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2 * z_dim),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(z_dim, 256), nn.Unflatten(1, (256, 1, 1)), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4), nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, channels, 4, 2, 1),
    )  # fmt: skip
    return encoder, decoder


def authors_svi(model, guide, lr: float, k: int = 100):
    """The authors' supervised SVI step on this library's networks: their model and guide
    (``SSVAE_CCVAE.model``/``.guide``: binary labels, ``z = (z_c, z_s)`` concatenated, a
    ``Laplace(., 1)`` likelihood, ``q(y|z_c)`` on a detached ``z_c``) and their objective
    (``TraceCCVAE_ELBO``): ``loss = -sum(w * log_vi + log p(y)) - sum(log q(y|x))`` with
    ``w = q(y|z_c) / q(y|x)`` and ``q(y|x)`` the mean of ``q(y|z_c)`` over ``k`` draws from a
    second encoding of the batch. Returns an object with ``step(x, y)``."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO

    num_labels, z_char_dim, z_style_dim = model.num_labels, model.z_char_dim, model.z_style_dim
    z_char = num_labels * z_char_dim

    def characteristic(z: torch.Tensor) -> torch.Tensor:  # [..., B, L*d_c] -> [..., L, B, d_c]
        return z.reshape(*z.shape[:-1], num_labels, z_char_dim).transpose(-2, -3)

    def log_q_y(z_c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # sum over labels: [..., B]
        logits = guide.classifier(characteristic(z_c))  # [..., L, B, 2], class 0 the reference
        return dist.Bernoulli(logits=logits[..., 1] - logits[..., 0]).log_prob(y.T).sum(-2)

    def their_model(x, y):
        pyro.module("model", model)
        batch = x.shape[0]
        with pyro.plate("data", batch):
            pyro.sample("y", dist.Bernoulli(model.label_probs[:, 1].expand(batch, num_labels)).to_event(1), obs=y)
            loc, scale = model.conditional_prior(y.T)  # [L, B, d_c]
            z_c = pyro.sample("z_c", dist.Normal(loc.transpose(0, 1).reshape(batch, -1), scale.transpose(0, 1).reshape(batch, -1)).to_event(1))
            z_s = pyro.sample("z_s", dist.Normal(x.new_zeros(batch, z_style_dim), 1.0).to_event(1))
            image = model.likelihood.mean(model.decoder(torch.cat([z_c, z_s], -1)))
            pyro.sample("x", dist.Laplace(image, torch.ones_like(image)).to_event(3), obs=x)

    def their_guide(x, y):
        pyro.module("guide", guide)
        with pyro.plate("data", x.shape[0]):
            loc, scale = guide._loc_scale(x)
            z_c = pyro.sample("z_c", dist.Normal(loc[:, :z_char], scale[:, :z_char]).to_event(1))
            pyro.sample("z_s", dist.Normal(loc[:, z_char:], scale[:, z_char:]).to_event(1))
            logits = guide.classifier(characteristic(z_c.detach()))
            pyro.sample("y", dist.Bernoulli(logits=(logits[..., 1] - logits[..., 0]).T).to_event(1), obs=y)

    class TheirObjective(Trace_ELBO):
        def loss_and_grads(self, model_fn, guide_fn, x, y):
            loss = self._their_loss(model_fn, guide_fn, x, y)
            loss.backward()
            return loss.item()

        def _their_loss(self, model_fn, guide_fn, x, y):
            guide._loc_scale(x)  # their classifier_loss encodes the batch once without using it
            loc, scale = guide._loc_scale(x)  # ... and again for its k draws
            z = dist.Normal(loc, scale).rsample((k,))[..., :z_char]
            log_q_y_x = torch.logsumexp(log_q_y(z, y), 0) - math.log(k)
            loss = 0.0
            for model_trace, guide_trace in self._get_traces(model_fn, guide_fn, (x, y), {}):
                m, g = model_trace.nodes, guide_trace.nodes
                log_vi = m["x"]["log_prob"] + m["z_c"]["log_prob"] + m["z_s"]["log_prob"]
                log_vi = log_vi - g["z_c"]["log_prob"] - g["z_s"]["log_prob"] - g["y"]["log_prob"]
                w = torch.exp(g["y"]["log_prob"] - log_q_y_x)
                loss = loss - (w * log_vi + m["y"]["log_prob"]).sum()
            return loss / self.num_particles - log_q_y_x.sum()

    return SVI(their_model, their_guide, pyro.optim.Adam({"lr": lr}), TheirObjective())


def authors_epoch(root: Path, batch_size: int, seed: int, evaluate: bool, step: str = "authors", networks: str = "theirs") -> dict:
    """One epoch as the authors' code runs it: JPEGs decoded and resized per item in a DataLoader,
    networks of the authors' size (:func:`their_size_networks`; ``networks="ours"``: the library's
    CCVAE networks), the authors' objective (:func:`authors_svi`) or, with ``step = "ours"``, the
    library's objective and SVI step; then validation and test accuracy."""
    import pyro
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from pyro_ccvae.config import TrainConfig
    from pyro_ccvae.data.celeba import read_attributes, read_partition
    from pyro_ccvae.models import get_family

    torch.set_num_threads(1)
    start = time.perf_counter()
    files, specs, _, values = read_attributes(root / "list_attr_celeba.txt", None)  # the paper's 18 labels
    partition = read_partition(root / "list_eval_partition.txt", files)
    labels = torch.from_numpy(values.astype(np.float32))

    class CelebAJPEGs(Dataset):
        """The authors' ``CELEBACached.__getitem__``: open, resize, to tensor, every item."""

        transform = transforms.Compose([transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)), transforms.ToTensor()])

        def __init__(self, split: int):
            self.index = np.flatnonzero(partition == split)

        def __len__(self):
            return len(self.index)

        def __getitem__(self, i):
            j = self.index[i]
            x = self.transform(Image.open(root / "img_align_celeba" / files[j]))
            return x, labels[j]

    loaders = {
        name: DataLoader(CelebAJPEGs(split), batch_size=batch_size, shuffle=True, num_workers=0)
        for name, split in (("train", 0), ("valid", 1), ("test", 2))
    }
    train = loaders["train"].dataset

    pyro.set_rng_seed(seed)
    config = TrainConfig.from_options(dataset="celeba", batch_size=batch_size, sup_frac=SUP_FRAC, seed=seed)
    family = get_family(config.model.name)
    family.fill_defaults(config.model, "celeba")
    config.data.info = {
        "label_names": [spec.name for spec in specs],
        "num_classes": [spec.num_classes for spec in specs],
        "channels": 3,
        "image_size": IMAGE_SIZE,
        "num_train": len(train),
    }
    pyro.clear_param_store()
    model, guide = family.build_run(config)
    if networks == "theirs":
        guide.encoder, model.decoder = their_size_networks(guide.z_dim)
    parameters = sum(p.numel() for module in (guide.encoder, model.decoder) for p in module.parameters())
    train_labels = labels[train.index]
    family.prepare(model, train_labels, torch.ones_like(train_labels, dtype=torch.bool))
    lr = config.optimisation.lr
    if step == "authors":
        svi = authors_svi(model, guide, lr)
        arguments = lambda x, y: (x, y)  # noqa: E731
    else:
        optim = pyro.optim.Adam(lambda name: {"lr": lr * family.learning_rate_factor(config.model, name)})
        svi = pyro.infer.SVI(model, guide, optim, family.objective(config.model))
        arguments = lambda x, y: (x, y, torch.ones_like(y, dtype=torch.bool))  # noqa: E731  every label seen
    set_up = time.perf_counter() - start

    start = time.perf_counter()
    images, loss = 0, 0.0
    with pyro.validation_enabled(False):
        for x, y in loaders["train"]:
            loss += svi.step(*arguments(x, y))
            images += len(x)
    epoch = time.perf_counter() - start

    figures = {
        "images": images, "loss_per_image": loss / max(images, 1), "set_up_s": set_up, "epoch_s": epoch, "step": step,
        "networks": networks, "network_parameters": parameters,
    }  # fmt: skip
    if evaluate:  # the authors' ss_vae.py: validation accuracy after the epoch, test accuracy at the end
        start = time.perf_counter()
        representation = family.representation(model, guide, config.data.info, torch.device("cpu"), config.model)
        with torch.no_grad():
            for name in ("valid", "test"):
                correct = seen = 0
                for x, y in loaders[name]:
                    correct += int((representation.predict(x).argmax(-1) == y.long()).sum())
                    seen += y.numel()
                figures[f"{name}_accuracy"] = correct / max(seen, 1)
        figures["evaluate_s"] = time.perf_counter() - start
    return figures


# ---------------------------------------------------------------- timing whole processes


def run_process(command: list[str], log: Path, cpu: int | None) -> dict:
    """Run ``command`` to completion; its wall seconds, CPU seconds and peak RSS (MB)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    with open(log, "w") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=pin)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{log.read_text()[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def ours_command(root: Path, cache: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pyro_ccvae_cli.main", "train", "--dataset", "celeba", "--data-dir", str(root),
        "--cache-dir", str(cache), "--out", str(out), "--epochs", "1", "--image-size", str(IMAGE_SIZE),
        "--batch-size", str(BATCH), "--sup-frac", str(SUP_FRAC), "--threads", "1", "--no-progress",
    ]  # fmt: skip


def median_min_max(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="number of JPEGs, ~90%% of them training images (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of ours cold, ours warm and the authors' (their order turns each round)")
    parser.add_argument("--cpu", type=int, default=None, help="pin every timed process to this CPU")
    parser.add_argument("--authors-step", choices=STEPS, default="authors",
                        help="the authors' process runs their objective (default) or this library's step")
    parser.add_argument("--authors-networks", choices=NETWORKS, default="theirs",
                        help="the authors' process trains networks of their size (default) or this library's")
    parser.add_argument("--no-authors-eval", action="store_true", help="the authors' process trains only (no valid/test accuracy)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--authors-epoch", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.authors_epoch is not None:  # the child process: one JSON line
        figures = authors_epoch(
            args.authors_epoch, BATCH, args.seed, evaluate=not args.no_authors_eval, step=args.authors_step, networks=args.authors_networks
        )  # fmt: skip
        print(json.dumps(figures))
        return

    tmp = Path(tempfile.mkdtemp(prefix="ccvae-e2e-"))
    runs: dict[str, list[dict]] = {name: [] for name in PIPELINES}
    try:
        start = time.perf_counter()
        root, n_train, jpeg_kb = make_celeba(tmp, args.n, args.seed)
        print(f"made {args.n} JPEGs ({jpeg_kb:.1f} KB each, {n_train} in train) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        # untimed: bring the interpreter's and libraries' files into the page cache
        subprocess.run([sys.executable, "-c", "import torch, torchvision, pyro, pyro_ccvae, pyro_ccvae_cli.main"], check=True)
        authors = [sys.executable, str(Path(__file__).resolve()), "--authors-epoch", str(root), "--seed", str(args.seed)]
        authors += ["--authors-step", args.authors_step, "--authors-networks", args.authors_networks]
        authors += ["--no-authors-eval"] if args.no_authors_eval else []
        parameters = None
        for r in range(args.repeats):
            cache = tmp / f"cache{r}"
            for name in ROUND_ORDERS[r % len(ROUND_ORDERS)]:
                log = tmp / f"{name}{r}.log"
                if name == "authors":
                    result = run_process(authors, log, args.cpu)
                    inner = json.loads(log.read_text().strip().splitlines()[-1])
                    assert inner["images"] == n_train, inner
                    result["epoch_s"], parameters = inner["epoch_s"], inner["network_parameters"]
                else:
                    out = tmp / f"run-{name}{r}"
                    if name == "ours_cold":
                        assert not cache.exists()
                    result = run_process(ours_command(root, cache, out), log, args.cpu)
                    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
                    result["epoch_s"] = record["seconds"]
                runs[name].append(result)
                print(f"round {r + 1}/{args.repeats} {name:9s} {result['wall_s']:6.1f} s  "
                      f"{result['peak_rss_mb']:5.0f} MB", file=sys.stderr)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    figures: dict = {"n": args.n, "n_train": n_train, "jpeg_kb": jpeg_kb, "image_size": IMAGE_SIZE, "batch_size": BATCH,
                     "sup_frac": SUP_FRAC, "repeats": args.repeats, "torch_threads": 1, "cpus": os.cpu_count(),
                     "authors_eval": not args.no_authors_eval, "authors_step": args.authors_step,
                     "authors_networks": args.authors_networks, "authors_network_parameters": parameters,
                     "round_orders": [list(ROUND_ORDERS[r % len(ROUND_ORDERS)]) for r in range(args.repeats)]}  # fmt: skip
    rows = []
    for name in PIPELINES:
        wall, low, high = median_min_max([run["wall_s"] for run in runs[name]])
        epoch = statistics.median(run["epoch_s"] for run in runs[name])
        figures[f"{name}_wall_s"], figures[f"{name}_wall_s_min"], figures[f"{name}_wall_s_max"] = wall, low, high
        figures[f"{name}_images_per_s"] = n_train / wall
        figures[f"{name}_cpu_s"] = statistics.median(run["cpu_s"] for run in runs[name])
        figures[f"{name}_epoch_s"] = epoch
        figures[f"{name}_epoch_images_per_s"] = n_train / epoch
        figures[f"{name}_peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs[name])
        rows.append(
            f"| {name.replace('_', ', ')} | {wall:.1f} | {low:.1f}-{high:.1f} | {n_train / wall:.1f} | "
            f"{figures[f'{name}_cpu_s']:.1f} | {epoch:.1f} | {n_train / epoch:.1f} | {figures[f'{name}_peak_rss_mb']:.0f} |"
        )
    for name in ("ours_warm", "ours_cold"):
        figures[f"authors_over_{name}"] = figures["authors_wall_s"] / figures[f"{name}_wall_s"]
        figures[f"authors_over_{name}_epoch"] = figures["authors_epoch_s"] / figures[f"{name}_epoch_s"]
        figures[f"authors_over_{name}_cpu"] = figures["authors_cpu_s"] / figures[f"{name}_cpu_s"]

    print(f"{args.n} CelebA-format JPEGs ({jpeg_kb:.1f} KB each), {n_train} training images, {IMAGE_SIZE}x{IMAGE_SIZE}, "
          f"batch {BATCH}, sup-frac {SUP_FRAC}, one torch thread, {args.repeats} round(s); the authors' process runs "
          f"{'their objective' if args.authors_step == 'authors' else 'our step'} on "
          f"{'networks of their size' if args.authors_networks == 'theirs' else 'our networks'} ({parameters:,} parameters); "
          "the order of the three turns each round\n")  # fmt: skip
    print("| pipeline | whole process s (median) | min-max s | images/s | CPU s | epoch loop s | epoch images/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nauthors / ours warm: {figures['authors_over_ours_warm']:.2f}x whole process, "
        f"{figures['authors_over_ours_warm_cpu']:.2f}x CPU time ({figures['authors_over_ours_warm_epoch']:.2f}x epoch loop); "
        f"authors / ours cold: {figures['authors_over_ours_cold']:.2f}x whole process, "
        f"{figures['authors_over_ours_cold_cpu']:.2f}x CPU time ({figures['authors_over_ours_cold_epoch']:.2f}x epoch loop)\n"
    )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
