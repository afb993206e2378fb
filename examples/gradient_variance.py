"""Gradient-variance studies of the CCVAE objective's estimators (the paper's Fig. 8, appendix C.3.1).

Two comparisons, each by drawing the gradient of the loss on one fixed batch ``--draws`` times
(fresh samples of ``z``, of the ``K`` samples for ``q(y_o|x)`` and of ``y``, nothing else changed):

1. **The classifier's input in the main term** (supervised batch, every label seen): ``q(y|z_c)``
   reads ``z_c`` with its gradient stopped, as in the paper's eq. (8) (``detach_classifier_input``),
   or reparameterised (the ablation). Reported: the variance over draws of the gradient norm of
   the encoder's parameters (the gradient that flows through ``z_c`` into ``q(y|z_c)`` is the
   encoder's) and of the classifier's own. The switch changes only what flows through ``z_c``:
   on the same random numbers the classifier's own gradient is the same in both modes, which
   the figures show (the two draws of each mode share the seed).
2. **The unsupervised term's Jensen part** (no label seen): the exact sum over each label's
   classes (``jensen="exact"``) against the authors' one-sample estimator (``"sampled"``).
   Reported per parameter group (encoder, classifier, conditional prior, decoder): the variance
   of the gradient norm and the total variance ``E ||g - E g||^2``.

Both for the default model at initialisation and for a trained one: ``--run PATH`` (a run
directory), or ``--epochs N`` to train one first into ``OUT/trained`` with the same settings.
The objective's other settings (``classifier_weight``, ``detach_weight_denominator``, ``K``) are
the run's (the defaults at initialisation). Writes ``OUT/gradient_variance.json`` and
``OUT/gradient_variance.png``::

    python examples/gradient_variance.py --out runs/gradvar --epochs 5
    python examples/gradient_variance.py --out runs/gradvar --run runs/shapes
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

from pyro_ccvae.choices import DATASETS  # noqa: E402
from pyro_ccvae.config import TrainConfig  # noqa: E402
from pyro_ccvae.data import as_float_images, load_dataset  # noqa: E402
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO  # noqa: E402
from pyro_ccvae.models import get_family  # noqa: E402
from pyro_ccvae.run_directory import load_run  # noqa: E402
from pyro_ccvae.training import train  # noqa: E402

#: parameter groups, by the first name that matches (guide parameters not named are the encoder's).
GROUPS = (("classifier", "guide.classifier."), ("prior", "model.conditional_prior."), ("decoder", "model."), ("encoder", "guide."))


def group_of(name: str) -> str:
    return next(group for group, prefix in GROUPS if name.startswith(prefix))


def named_parameters(model, guide) -> list[tuple[str, torch.nn.Parameter]]:
    return [("model." + n, p) for n, p in model.named_parameters()] + [("guide." + n, p) for n, p in guide.named_parameters()]


def gradient_draws(elbo, model, guide, x, y, mask, draws: int) -> dict[str, torch.Tensor]:
    """``draws`` gradients of the loss on ``(x, y, mask)``, flattened per group: ``[draws, size]``."""
    named = named_parameters(model, guide)
    out = {group: [] for group, _ in GROUPS}
    for _ in range(draws):
        grads = torch.autograd.grad(elbo.differentiable_loss(model, guide, x, y, mask), [p for _, p in named], allow_unused=True)
        per_group = {group: [] for group, _ in GROUPS}
        for (name, p), g in zip(named, grads):
            per_group[group_of(name)].append((torch.zeros_like(p) if g is None else g).flatten())
        for group, parts in per_group.items():
            if parts:
                out[group].append(torch.cat(parts))
    return {group: torch.stack(rows) for group, rows in out.items() if rows}


def spread(grads: torch.Tensor) -> dict[str, float]:
    """Mean and variance of the gradient norm, and the total variance ``E ||g - E g||^2``."""
    norms = grads.norm(dim=-1)
    return {
        "norm_mean": float(norms.mean()),
        "norm_variance": float(norms.var()),
        "total_variance": float((grads - grads.mean(0)).square().sum(-1).mean()),
    }


def study(model, guide, model_config, images, labels, mask, args) -> dict:
    """Both comparisons for one model on its first ``--batch-size`` training images."""
    x = as_float_images(images[: args.batch_size], torch.device("cpu"))
    y, seen = labels[: args.batch_size], torch.ones_like(mask[: args.batch_size])

    def elbo(**change):
        settings = dict(
            k_samples=model_config.k_samples, jensen=model_config.jensen,
            detach_classifier_input=model_config.detach_classifier_input,
            detach_weight_denominator=model_config.detach_weight_denominator,
            classifier_weight=model_config.classifier_weight,
        )  # fmt: skip
        return CCVAE_ELBO(**{**settings, **change})

    result = {"classifier_input": {}, "jensen": {}}
    for label, detach in (("detached", True), ("reparameterised", False)):
        pyro.set_rng_seed(args.seed)
        grads = gradient_draws(elbo(detach_classifier_input=detach), model, guide, x, y, seen, args.draws)
        result["classifier_input"][label] = {group: spread(grads[group]) for group in ("classifier", "encoder")}
    for estimator in ("exact", "sampled"):
        pyro.set_rng_seed(args.seed)
        grads = gradient_draws(elbo(jensen=estimator), model, guide, x, None, None, args.draws)
        result["jensen"][estimator] = {group: spread(g) for group, g in grads.items()}
    return result


def initial_model(args):
    """The default model and guide at initialisation, with p(y) from the labelled training data."""
    config = TrainConfig.from_options(dataset=args.dataset, data_dir=args.data_dir, num_train=args.num_train, k_samples=args.k_samples,
                                      z_style_dim=args.z_style_dim, seed=args.seed)  # fmt: skip
    data = load_dataset(args.dataset, config.data.data_options(args.seed))
    config.data.info = {"label_names": list(data.label_names), "num_classes": list(data.num_classes),
                        "channels": data.channels, "image_size": data.image_size}  # fmt: skip
    family = get_family(config.model.name)
    family.fill_defaults(config.model, args.dataset)
    pyro.set_rng_seed(args.seed)
    model, guide = family.build_run(config)
    family.prepare(model, data.train.labels, data.train.mask)
    return config, model, guide, data


def figure(results: dict, path: Path) -> None:
    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / 2
    ax = axes[0]
    bars = [(n, mode) for n in names for mode in ("detached", "reparameterised")]
    width = 0.8 / len(bars)
    for j, (n, mode) in enumerate(bars):
        values = [results[n]["classifier_input"][mode][g]["norm_variance"] for g in ("encoder", "classifier")]
        ax.bar([i + (j - (len(bars) - 1) / 2) * width for i in range(2)], values, width, label=f"{n}, z_c {mode} in q(y|z_c)")
    ax.set_xticks(range(2), ["encoder", "classifier"])
    ax.set_yscale("log")
    ax.set_xlabel("parameter group")
    ax.set_ylabel("variance of the gradient norm")
    ax.set_title("Supervised batch: the classifier's input z_c")
    ax.legend(fontsize=8)
    ax = axes[1]
    groups = [g for g, _ in GROUPS if all(g in results[n]["jensen"]["exact"] for n in names)]
    bars = [(n, est) for n in names for est in ("exact", "sampled")]
    width = 0.8 / len(bars)
    for j, (n, est) in enumerate(bars):
        values = [results[n]["jensen"][est][g]["total_variance"] for g in groups]
        ax.bar([i + (j - (len(bars) - 1) / 2) * width for i in range(len(groups))], values, width, label=f"{n}, {est} Jensen term")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_yscale("log")
    ax.set_xlabel("parameter group")
    ax.set_ylabel("total gradient variance  E||g - E g||^2")
    ax.set_title("Unsupervised batch: exact against sampled J_i")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/gradient-variance", help="where the report, the figure and a run trained here go (default: %(default)s)")
    parser.add_argument("--run", default=None, help="a trained run directory to study besides the initial model")
    parser.add_argument("--epochs", type=int, default=0, help="without --run: train this long into OUT/trained first (default: %(default)s, no trained model)")
    parser.add_argument("--dataset", default="shapes", choices=DATASETS, help="the data set (default: %(default)s)")
    parser.add_argument("--data-dir", help="the folder holding the data set (not for the built-in shapes and digits)")
    parser.add_argument("--num-train", type=int, default=2000, help="training images of the built-in data (initial model and --epochs; default: %(default)s)")
    parser.add_argument("--k-samples", type=int, default=100, help="samples of z_c for q(y|x) (default: %(default)s)")
    parser.add_argument("--z-style-dim", type=int, default=27, help="d_s, the style latent's dims (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="images in the fixed batch whose gradient is drawn (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=50, help="gradient draws per estimator (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random draw (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training's line per epoch, as ccvae-pyro shows it
    if args.draws < 2:
        raise SystemExit(f"--draws must be at least 2 to estimate a variance, got {args.draws}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pyro.enable_validation(False)  # as in training

    results, settings = {}, {}
    config, model, guide, data = initial_model(args)
    results["initial"] = study(model, guide, config.model, data.train.images, data.train.labels, data.train.mask, args)
    settings["initial"] = vars(config.model)

    run_path = Path(args.run) if args.run else None
    if run_path is None and args.epochs > 0:
        run_path = out / "trained"
        trained = TrainConfig.from_options(dataset=args.dataset, data_dir=args.data_dir, num_train=args.num_train, k_samples=args.k_samples,
                                           z_style_dim=args.z_style_dim, seed=args.seed, epochs=args.epochs)  # fmt: skip
        train(trained, run_path, progress=False)
    if run_path is not None:
        run = load_run(run_path)
        if run.config.model.name != "ccvae":
            raise SystemExit(f"{run_path} is a {run.config.model.name!r} run; this study is of the CCVAE objective")
        with run.scope():
            run.model.train(), run.guide.train()
            train_split = run.data.train
            results["trained"] = study(run.model, run.guide, run.config.model, train_split.images, train_split.labels, train_split.mask, args)
        settings["trained"] = {**vars(run.config.model), "run": str(run_path)}

    report = {"draws": args.draws, "batch_size": args.batch_size, "dataset": args.dataset, "settings": settings, "results": results}
    (out / "gradient_variance.json").write_text(json.dumps(report, indent=2) + "\n")
    figure(results, out / "gradient_variance.png")
    for name, result in results.items():
        ci, jensen = result["classifier_input"], result["jensen"]
        print(
            f"{name}: encoder grad-norm variance with z_c detached in q(y|z_c) {ci['detached']['encoder']['norm_variance']:.3g}, "
            f"reparameterised {ci['reparameterised']['encoder']['norm_variance']:.3g}; encoder total variance "
            f"under the Jensen term exact {jensen['exact']['encoder']['total_variance']:.3g}, "
            f"sampled {jensen['sampled']['encoder']['total_variance']:.3g}"
        )
    return report


if __name__ == "__main__":
    main()
