"""The judge's uncertainty (the paper's Table 7): is a generated image one the judge can read?

A judge reads generated images as confidently as real ones even when they look like nothing it
was trained on: its softmax says little about what it does not know. Following the paper, the
judge's last linear layer is replaced, per label, by a sparse variational Gaussian process on its
penultimate features (the 128 hidden units; the rest of the network fixed), fitted on the
training images. Its posterior over the latent function ``f`` stands for the posterior over the
last layer's parameters ``theta``, and the mutual information between the prediction and them,

    MI(x) = H[ E_theta p(y | x, theta) ] - E_theta H[ p(y | x, theta) ]

(Houlsby et al., 2011, "BALD"; Smith & Gal, 2018), is near 0 where every plausible ``f`` agrees
and grows where they disagree: on inputs unlike the training images. It is estimated from
:data:`F_SAMPLES` draws of ``f ~ q(f | x)``, each giving class probabilities ``p(y | x, f)``
(a sigmoid for a binary label, a softmax over ``K`` latent functions for a label of ``K``
classes), in nats (at most ``log K``). The generated images' MI is read against the real test
images' MI, the in-distribution reference.

The heads are Pyro's own :class:`pyro.contrib.gp.models.VariationalSparseGP`: an RBF kernel on
the standardised features, ``--gp-inducing`` whitened inducing points (the paper's 200) started
at training features, a :class:`~pyro.contrib.gp.likelihoods.Binary` or
:class:`~pyro.contrib.gp.likelihoods.MultiClass` likelihood; fitted with Adam on the ELBO. They are saved in the judge directory as
``uncertainty.pt`` (each head's state dict and its settings, listed in the judge's manifest).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from ..data import ImageSet, as_float_images
from ..errors import UserError
from ..prediction import mean_of, predicted_classes

from .context import Analysis
from .generation import generate
from .judge import UNCERTAINTY, judge_files

#: ``uncertainty.pt``'s format.
FORMAT = 1
#: draws of the latent function per image behind each MI (and mean predictive).
F_SAMPLES = 100
#: generated images per requested class in ``evaluate``'s section.
SAMPLES_PER_CLASS = 100
#: Adam's learning rate for the heads.
GP_LR = 0.03
#: training features per step (a minibatch; the ELBO's likelihood term is scaled up to all of them).
GP_BATCH = 256


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """``-sum_k p_k log p_k`` over the last axis, in nats (``0 log 0 = 0``)."""
    return -torch.special.xlogy(probs, probs).sum(-1)


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """``H[mean_s p_s] - mean_s H[p_s]`` for class probabilities ``probs [S, ..., K]`` drawn under
    ``S`` parameter samples: the information the prediction carries about the parameters. 0 when
    every sample predicts alike; ``log 2`` for an even mixture of two certain, opposite predictions."""
    return (entropy(probs.mean(0)) - entropy(probs).mean(0)).clamp(min=0)


@torch.no_grad()
def penultimate_features(net: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """The judge's hidden layer (the input of its last linear layer) for images ``[N, C, H, W]``
    (uint8, or floats in ``[0, 1]`` such as decoded ones): ``[N, 128]`` on ``device``."""
    body = net.net[:-1]

    def floats(chunk: torch.Tensor) -> torch.Tensor:
        return as_float_images(chunk, device) if chunk.dtype == torch.uint8 else chunk.to(device).float()

    out = [body(floats(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, net.net[-1].in_features, device=device)


def _gp_head(num_classes: int, inducing: torch.Tensor, lengthscale: float, num_data: int):
    """A sparse variational GP for one label: ``f`` of shape ``[N]`` (binary) or ``[K, N]``."""
    import pyro.contrib.gp as gp

    kernel = gp.kernels.RBF(input_dim=inducing.shape[1], variance=inducing.new_tensor(1.0), lengthscale=inducing.new_tensor(lengthscale))
    if num_classes == 2:
        likelihood, latent_shape = gp.likelihoods.Binary(), torch.Size([])
    else:
        likelihood, latent_shape = gp.likelihoods.MultiClass(num_classes=num_classes), torch.Size([num_classes])
    return gp.models.VariationalSparseGP(
        inducing.clone(), None, kernel, Xu=inducing.clone(), likelihood=likelihood, latent_shape=latent_shape,
        num_data=num_data, whiten=True, jitter=1e-5,
    )  # fmt: skip


def _local_params():
    """Pyro's setting that keeps a :class:`~pyro.nn.PyroModule`'s parameters in the module, out of
    the global parameter store (where a run's parameters, and the other heads', live)."""
    import pyro

    return pyro.settings.context(module_local_params=True)


@dataclass
class JudgeUncertainty:
    """The GP heads of a judge: per label (by name) a fitted ``VariationalSparseGP`` on the
    standardised penultimate features."""

    net: torch.nn.Module
    heads: dict
    num_classes: dict
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    settings: dict
    seed: int = 0

    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        device = self.feature_mean.device
        return (penultimate_features(self.net, images, device, batch_size) - self.feature_mean) / self.feature_std

    @torch.no_grad()
    def probs_samples(self, features: torch.Tensor, label: str, samples: int = F_SAMPLES, seed: Optional[int] = None) -> torch.Tensor:
        """Class probabilities ``[S, N, K]`` of ``label`` under ``S`` draws of ``f ~ q(f | x)``
        (seeded: the same images give the same draws)."""
        generator = torch.Generator(device=features.device).manual_seed(self.seed if seed is None else seed)
        with _local_params():
            loc, var = self.heads[label](features, full_cov=False)
        draws = loc + var.clamp(min=0).sqrt() * torch.randn((samples, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        if self.num_classes[label] == 2:
            p = torch.sigmoid(draws)
            return torch.stack([1 - p, p], dim=-1)
        return torch.softmax(draws.transpose(-2, -1), dim=-1)

    def read(self, images: torch.Tensor, label: str, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """``(decisions [N], MI [N])`` of ``label`` on images (uint8 or floats in ``[0, 1]``): the
        most probable class under the mean predictive ``E_f p(y | x, f)``, and the mutual
        information (nats). The draws of ``f`` are made for all images at once, so the numbers
        do not depend on ``batch_size``."""
        if len(images) == 0:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0)
        probs = self.probs_samples(self.features(images, batch_size), label)
        return predicted_classes(probs.mean(0).unsqueeze(-2)).squeeze(-1).cpu(), mutual_information(probs).cpu()

    def describe(self, split: ImageSet, batch_size: int = 256) -> dict:
        """For the judge's summary: the heads' settings, accuracy on ``split``'s seen labels and mean MI there."""
        accuracy, information = {}, {}
        for label in self.heads:
            column = split.label_names.index(label)
            decisions, mi = self.read(split.images, label, batch_size)
            seen = split.mask[:, column]
            accuracy[label] = float((decisions[seen] == split.labels[seen, column].long()).double().mean()) if seen.any() else None
            information[label] = float(mi.mean()) if len(mi) else None
        return {**self.settings, "test_accuracy": accuracy, "test_mutual_information": information}

    def to_bytes(self) -> bytes:
        state = {
            "format": FORMAT,
            "heads": {label: head.state_dict() for label, head in self.heads.items()},
            "num_classes": self.num_classes,
            "feature_mean": self.feature_mean.cpu(),
            "feature_std": self.feature_std.cpu(),
            "settings": self.settings,
            "seed": self.seed,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, net: torch.nn.Module, device: torch.device) -> "JudgeUncertainty":
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        if state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format')!r}, not {FORMAT}")
        heads = {}
        for label, weights in state["heads"].items():
            with _local_params():  # built under it, the module keeps its parameters to itself
                head = _gp_head(state["num_classes"][label], weights["Xu"], 1.0, int(state["settings"]["points"]))
                head.load_state_dict(weights)
            heads[label] = head.to(device).eval()
        return cls(
            net, heads, dict(state["num_classes"]), state["feature_mean"].to(device), state["feature_std"].to(device),
            dict(state["settings"]), int(state.get("seed", 0)),
        )  # fmt: skip


def fit_uncertainty(
    net: torch.nn.Module, train: ImageSet, config, device: torch.device, progress: bool = False,
) -> JudgeUncertainty:  # fmt: skip
    """Fit one GP head per label on the penultimate features of up to ``config.gp_points``
    training images (a seeded subsample; for each label those where it is seen), the network
    fixed: ``config.gp_steps`` Adam steps on the ELBO (``TraceMeanField_ELBO``, one draw of ``f``
    per step), ``config.gp_inducing`` inducing points started at a seeded choice of the features.
    The RBF lengthscale starts at the median distance between standardised features.

    :param net: the judge's network (an :class:`~.classifier.IndependentClassifier`; typed by its
        base class so that this module, which the judge's training imports, imports nothing of it).
    :param config: the judge's :class:`~.classifier.ClassifierConfig`: its ``seed``, ``batch_size``
        and ``gp_*`` settings."""
    import pyro
    from pyro.infer import TraceMeanField_ELBO

    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(len(train), generator=generator)[: config.gp_points].sort().values
    subset = train.subset(chosen)
    features = penultimate_features(net, subset.images, device, config.batch_size)
    mean, std = features.mean(0), features.std(0).nan_to_num(1.0).clamp(min=1e-6)
    features = (features - mean) / std
    heads, num_classes = {}, {}
    names = list(train.label_names)
    settings = {
        "kind": "sparse variational GP on the judge's penultimate features",
        "inducing_points": config.gp_inducing, "steps": config.gp_steps, "points": len(chosen), "batch": GP_BATCH, "lr": GP_LR,
        "f_samples": F_SAMPLES, "kernel": "RBF", "likelihood": {},
    }  # fmt: skip
    pyro.set_rng_seed(config.seed)  # the ELBO's draws of f: a resumed training fits the same heads
    bar = tqdm(total=len(names) * config.gp_steps, desc="GP head", disable=not progress, leave=False)
    with bar, _local_params():
        for column, label in enumerate(names):
            seen = subset.mask[:, column].to(device)
            if not bool(seen.any()):
                continue
            x, k = features[seen], int(train.num_classes[column])
            y = subset.labels[:, column].to(device)[seen]
            y = y.float() if k == 2 else y.long()
            pick = torch.randperm(len(x), generator=generator)[: config.gp_inducing].to(device)
            distances = torch.cdist(x[pick], x[pick])
            lengthscale = float(distances[distances > 0].median()) if bool((distances > 0).any()) else 1.0
            head = _gp_head(k, x[pick], lengthscale, len(x)).to(device)
            optimizer = torch.optim.Adam(head.parameters(), lr=GP_LR)
            loss_fn = TraceMeanField_ELBO().differentiable_loss
            for _ in range(config.gp_steps):
                batch = torch.randperm(len(x), generator=generator)[:GP_BATCH].to(device)
                head.set_data(x[batch], y[batch])
                optimizer.zero_grad()
                loss = loss_fn(head.model, head.guide)
                loss.backward()
                optimizer.step()
                bar.update(1)
                bar.set_postfix(label=label, elbo_per_image=f"{-loss.item() / len(x):.3f}")
            head.set_data(x[:1], None)  # what is saved is the posterior, not the training features
            heads[label], num_classes[label] = head.eval(), k
            settings["likelihood"][label] = "Binary (sigmoid)" if k == 2 else f"MultiClass ({k} latent functions, softmax)"
    return JudgeUncertainty(net, heads, num_classes, mean, std, settings, config.seed)


def load_uncertainty(path: Path, net: torch.nn.Module, device: torch.device) -> Optional[JudgeUncertainty]:
    """The GP heads of the judge in ``path`` (checked against its manifest); ``None`` when it has
    none (trained before them, or with ``--gp-steps 0``)."""
    data = judge_files(Path(path)).get(UNCERTAINTY)
    if data is None:
        return None
    try:
        return JudgeUncertainty.from_bytes(data, net, device)
    except Exception as error:  # damaged, or written by another version
        raise UserError(
            f"{Path(path) / UNCERTAINTY} cannot be read ({' '.join(str(error).split()[:12])}); train the judge again "
            f"with `ccvae-pyro train-classifier --out {path}`"
        ) from None


def why_no_head(path: Path) -> str:
    """The reason ``evaluate`` gives for skipping the uncertainty section of a judge without heads."""
    return (
        f"the judge in {path} has no GP head (trained before judges had one, or with --gp-steps 0); "
        f"train it again with `ccvae-pyro train-classifier --out {path}`"
    )


@torch.no_grad()
def uncertainty_section(analysis: Analysis, uncertainty: JudgeUncertainty, samples_per_class: int = SAMPLES_PER_CLASS) -> dict:
    """Table 7: for each label and each of its classes ``k``, ``samples_per_class`` images
    generated with ``y_i = k`` (the other labels from ``p(y)``, ``z_s ~ N(0, I)``); the GP head's
    rate of reading ``k`` on label ``i`` and the generated images' mean MI, beside the real test
    images' mean MI (the in-distribution reference) and the head's accuracy on them."""
    rep, names = analysis.representation, analysis.label_names
    missing = [name for name in names if name not in uncertainty.heads]
    if missing:
        raise UserError(f"the judge's GP head has no label(s) {', '.join(missing)}; train the judge on the run's labels")
    rate, information, test_information, test_accuracy = {}, {}, {}, {}
    for i, name in enumerate(names):
        hits, mi = [], []
        for k in range(analysis.num_classes[i]):
            y = rep.sample_labels(samples_per_class, {i: k})
            x = generate(rep, y, rep.sample_style((samples_per_class,)))
            decisions, values = uncertainty.read(x, name, analysis.batch_size)  # decoder means, as the judge reads them
            hits.append(float((decisions == k).double().mean()))
            mi.append(float(values.mean()))
        rate[name], information[name] = hits, mi
        decisions, values = uncertainty.read(analysis.split.images, name, analysis.batch_size)
        seen = analysis.split.mask[:, i]
        labels = analysis.split.labels[:, i].long()
        test_accuracy[name] = float((decisions[seen] == labels[seen]).double().mean()) if seen.any() else None
        test_information[name] = float(values.mean())
    return {
        "requested_class_rate": rate,
        "requested_class_rate_mean": {name: mean_of(r) for name, r in rate.items()},
        "mutual_information_generated": information,
        "mutual_information_generated_mean": {name: mean_of(v) for name, v in information.items()},
        "mutual_information_test": test_information,
        "test_accuracy": test_accuracy,
        "max_mutual_information": {name: math.log(k) for name, k in zip(names, analysis.num_classes)},
        "samples_per_class": samples_per_class,
        "num_test_images": len(analysis),
        "f_samples": F_SAMPLES,
        "unit": "nats",
        "head": uncertainty.settings.get("kind"),
    }


def judge_uncertainty(analysis: Analysis, classifier_dir: Path, samples_per_class: int = SAMPLES_PER_CLASS) -> tuple[Optional[dict], Optional[str]]:
    """``evaluate``'s section from the judge in ``classifier_dir`` (whose network ``analysis``'s
    reader holds): ``(section, None)``, or ``(None, why)`` for a judge without a GP head."""
    net = analysis.require_classifier("the judge's uncertainty").classifier
    uncertainty = load_uncertainty(classifier_dir, net, analysis.device)
    if uncertainty is None:
        return None, why_no_head(classifier_dir)
    return uncertainty_section(analysis, uncertainty, samples_per_class), None

