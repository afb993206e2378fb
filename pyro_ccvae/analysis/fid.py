"""Fréchet Inception Distance (FID; Heusel et al., 2017), the paper's Table 4: how far the images
a model makes lie from the test images, seen through the 2048 pool features of the Inception v3
network FID is defined with::

    FID = ||mu_t - mu_m||^2 + Tr(S_t + S_m - 2 (S_t S_m)^(1/2))

``mu``, ``S``: mean and covariance of the features of ``N`` test images (``t``) and of ``N``
images of one kind (``m``):

- ``generated``: ``y ~ p(y)``, ``z_c ~ p(z_c | y)``, ``z_s ~ N(0, I)``, the decoder's mean (drawn
  as for :func:`.generation.generation_accuracy`);
- ``reconstructions``: the decoder's mean at the posterior means of those test images;
- ``training_images``: ``N`` training images, no model at all: what a generator drawing from the
  data distribution itself scores at this ``N``, the reference for ``generated``. FID is biased
  upwards by a finite ``N`` (the means and covariances are estimated from ``N`` points), so
  numbers compare only at equal ``N``. Reconstructions, paired with the test images, score 0
  when perfect.

The library is torchmetrics' ``FrechetInceptionDistance`` on torch-fidelity's Inception v3 (the
TensorFlow FID network converted to PyTorch, with its TensorFlow-compatible resize to 299 x 299).
torch-fidelity itself computes metrics from data sets with an on-disk feature cache; torchmetrics
takes batches of tensors on the run's device, keeps the statistics in float64 and keeps the test
images' statistics while the model's image sets are scored in turn. clean-fid ships its network as
a TorchScript file it downloads: neither a user's weights file nor randomly initialised weights of
the same architecture (the tests) could be checked against an architecture in code.

Nothing is downloaded: the weights are a file the user gives (:func:`load_inception`); without
one, :func:`missing_weights_note` says where torch-fidelity publishes it.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Union

import torch
from tqdm.auto import tqdm

from ..errors import UserError
from .context import Analysis
from .generation import NEEDS as GENERATION_NEEDS, generate

if TYPE_CHECKING:
    from torchmetrics.image.fid import FrechetInceptionDistance

#: the capabilities the generated-image FID asks of a model (the reconstructions' FID needs only
#: what ``evaluate`` always needs).
GENERATED_NEEDS = GENERATION_NEEDS
#: the Inception layer FID is defined on: the 2048 features of the last pooling layer.
FEATURES = 2048
#: images per Inception pass: 299 x 299 inputs take about 30 MB each on the way through.
INCEPTION_BATCH = 32
#: the fewest images a covariance (and so a FID) can be estimated from.
LEAST_IMAGES = 2


def official_weights() -> tuple[str, str]:
    """Where torch-fidelity publishes the FID Inception weights, and the start of the file's
    SHA-256 (the hex digits in its name, by torch.hub's convention); both read from the library."""
    from torch.hub import HASH_REGEX
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    found = HASH_REGEX.search(URL_INCEPTION_V3.rsplit("/", 1)[-1])
    return URL_INCEPTION_V3, found.group(1) if found else ""


def missing_weights_note() -> str:
    """Why ``evaluate`` skipped FID without ``--fid-weights``: one line, with where to get the file."""
    url, prefix = official_weights()
    return (
        f"no --fid-weights FILE given (nothing is downloaded); FID needs torch-fidelity's Inception v3 weights, "
        f"published at {url} (SHA-256 beginning {prefix})"
    )


def _one_line(error: BaseException, limit: int = 240) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_inception(weights: Union[str, Path], device: Union[str, torch.device] = "cpu", feature: int = FEATURES) -> "FrechetInceptionDistance":
    """The FID metric on torch-fidelity's Inception v3 with the weights in the file ``weights``
    (a state dict of that network), on ``device``; it keeps the test images' statistics across
    :meth:`reset`. A file that cannot be read, is not a state dict of tensors, or does not fit the
    network (missing, unexpected or misshapen keys) is a one-line ``ValueError`` naming it.

    The file is read once and checked with ``torch.load(weights_only=True)``, which runs no code;
    torch-fidelity then loads those same bytes (it does not ask for ``weights_only`` itself)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    path = Path(weights)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"--fid-weights {path}: cannot read it ({error.strerror or error})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for a file that is not a plain tensor pickle
        raise UserError(f"--fid-weights {path} is not a PyTorch state dict: {_one_line(error)}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--fid-weights {path} is not a state dict (names to tensors) of torch-fidelity's Inception v3")
    del state  # checked; the network loads its own copy below
    try:
        metric = FrechetInceptionDistance(
            feature=feature, reset_real_features=False, antialias=False,  # antialias=False: the original TensorFlow resize
            feature_extractor_weights_path=io.BytesIO(data),
        )  # fmt: skip
    except RuntimeError as error:  # load_state_dict: missing, unexpected or misshapen keys
        raise UserError(f"--fid-weights {path} does not fit torch-fidelity's Inception v3: {_one_line(error)}") from None
    metric.weights_sha256 = hashlib.sha256(data).hexdigest()
    return metric.to(device)


def check_count(count: int) -> None:
    """Refuse, before the slow part, a FID of fewer than :data:`LEAST_IMAGES` test images."""
    if count < LEAST_IMAGES:
        raise UserError(f"FID needs at least {LEAST_IMAGES} test images, got {count} (--fid-images, --max-images)")


def inception_input(images: torch.Tensor) -> torch.Tensor:
    """Images as the Inception network takes them: ``uint8 [B, 3, H, W]``. Floats (a decoder's
    means) are clamped to ``[0, 1]`` and rounded to 8 bits, as an image file stores them; grey
    images repeat their channel three times. Resizing is the library's (to 299 x 299)."""
    if images.dtype != torch.uint8:
        images = images.clamp(0, 1).mul(255).round().to(torch.uint8)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def _add(metric: "FrechetInceptionDistance", batches: Iterable[torch.Tensor], real: bool) -> None:
    for images in batches:
        metric.update(inception_input(images).to(metric.device), real=real)


def set_reference(metric: "FrechetInceptionDistance", batches: Iterable[torch.Tensor], digest: Optional[str] = None) -> None:
    """Make the images in ``batches`` (see :func:`inception_input`) the set every :func:`score`
    compares with, forgetting any earlier one. ``digest`` names those images: a metric that holds
    the reference of that digest already keeps it, and ``batches`` are not read."""
    if digest is not None and digest == getattr(metric, "reference_digest", None):
        return
    metric.reset_real_features = True
    metric.reset()
    metric.reset_real_features = False  # kept from now on, while sets are scored in turn
    metric.reference_digest = None  # until the new reference is whole
    _add(metric, batches, real=True)
    metric.reference_digest = digest


def _chunks(count: int, analysis: Analysis, desc: str) -> Iterator[torch.Tensor]:
    size = min(analysis.batch_size, INCEPTION_BATCH)
    yield from tqdm(torch.arange(count).split(size), desc=desc, disable=not analysis.progress, leave=False)


def score(metric: "FrechetInceptionDistance", batches: Iterable[torch.Tensor]) -> float:
    """FID of the images in ``batches`` against the reference set (:func:`set_reference`); then
    forgets them, keeping the reference."""
    _add(metric, batches, real=False)
    value = float(metric.compute())
    metric.reset()
    return value


@torch.no_grad()
def fid_scores(analysis: Analysis, metric: "FrechetInceptionDistance", num_images: int, generated: bool = True) -> dict:
    """FID (the ``fid`` section of ``evaluate``) of the generated images (unless ``generated`` is
    false: the model cannot sample), of the reconstructions and of as many training images, each
    against the first ``num_images`` test images of ``analysis``. ``metric``: from
    :func:`load_inception`."""
    count = min(num_images, len(analysis))
    check_count(count)
    # scoring several runs of one data set with one metric (examples/compare_baselines.py) reads the test images once
    digest = hashlib.sha256(analysis.split.images[:count].contiguous().numpy().tobytes()).hexdigest()
    set_reference(metric, (analysis.split.images[i] for i in _chunks(count, analysis, "FID: test images")), digest)
    rep = analysis.representation
    scores: dict[str, Optional[float]] = {}
    if generated:
        draws = (generate(rep, rep.sample_labels(len(i)), rep.sample_style((len(i),))) for i in _chunks(count, analysis, "FID: generated"))
        scores["generated"] = score(metric, draws)
    scores["reconstructions"] = score(metric, (analysis.reconstruct(i) for i in _chunks(count, analysis, "FID: reconstructions")))
    train = analysis.run.data.train.images
    training = min(count, len(train))
    if training >= LEAST_IMAGES:
        scores["training_images"] = score(metric, (train[i] for i in _chunks(training, analysis, "FID: training images")))
    _, prefix = official_weights()
    official = bool(prefix) and metric.weights_sha256.startswith(prefix)
    note = (
        "FID falls as the image count grows: compare numbers only at the same num_images. training_images: "
        f"{training} training images (no model) against the test images, what a generator that draws from the data "
        "itself scores at this count; reconstructions of those very test images score 0 when perfect"
    )
    if not official:
        note += f"; the weights are not the official file (its SHA-256 begins {prefix}): not comparable with published FIDs"
    return {
        **scores,
        "num_images": count,
        "num_training_images": training,
        "against": "test images",
        "weights_sha256": metric.weights_sha256,
        "official_weights": official,
        "network": f"torch-fidelity's Inception v3, {metric.inception.features_list[0]} features, images resized to 299 x 299",
        "note": note,
    }
