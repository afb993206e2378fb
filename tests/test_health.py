"""Health checks (pyro_ccvae.health): a collapsed decoder, unused latents and an unrecognised
prior are caught; a model that reconstructs exactly raises nothing."""
import json

import pytest
import torch
from click.testing import CliRunner
from scipy.stats import norm

from pyro_ccvae import health
from pyro_ccvae.data import DataOptions, load_dataset
from pyro_ccvae.models.ccvae.guides import build_guide
from pyro_ccvae.models.ccvae.guides.base import DiagonalClassifier
from pyro_ccvae.models.ccvae.model import CCVAEModel, ConditionalPrior
from pyro_ccvae.models.ccvae.representation import CCVAERepresentation
from pyro_ccvae_cli.main import main

LABELS = ("a", "b", "c")


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", DataOptions(image_size=32, num_train=60, seed=0))


def one_channel_images(n: int, seed: int = 0) -> torch.Tensor:
    """Random uint8 images ``[n, 1, 8, 8]`` (pixel variance about 0.08 in [0, 1] units)."""
    return torch.randint(0, 256, (n, 1, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def as_representation(model, guide=None, label_names=None):
    """What the health checks see of a model and guide (one object may be both)."""
    return CCVAERepresentation(model, model if guide is None else guide, label_names or LABELS, "cpu")


class ExactCode(torch.nn.Module):
    """A model and guide in one that reconstructs exactly: ``z_s`` is the image itself, the decoder
    reshapes it back, and ``z_c^i`` is a scaled mean of the image's ``i``-th row band."""

    def __init__(self, num_labels: int, shape=(1, 8, 8)):
        super().__init__()
        self.shape = shape
        self.conditional_prior = ConditionalPrior(num_labels, 1)
        self.classifier = DiagonalClassifier(num_labels, 1)
        self.num_classes = (2,) * num_labels
        self.register_buffer("label_probs", torch.full((num_labels, 2), 0.5))

    def mean(self, x):
        bands = x.mean(1).chunk(self.conditional_prior.loc.shape[0], dim=-2)
        z_c = torch.stack([10 * (band.mean((-1, -2)) - 0.5) for band in bands], dim=-1).unsqueeze(-1)
        return z_c, x.flatten(1)

    def decode(self, z_c, z_s):
        return z_s.reshape(*z_s.shape[:-1], *self.shape)


def test_exact_reconstruction_is_healthy():
    images = one_channel_images(50)
    train_mean = health.mean_image(one_channel_images(200, seed=1))
    code = ExactCode(len(LABELS))
    report = health.check_health(as_representation(code), images, train_mean, LABELS, torch.device("cpu"), batch_size=16)
    x = images.float() / 255
    rec = report["reconstruction"]
    assert rec["model_mae"] == 0 and rec["ratio"] == 0
    assert rec["mean_image_mae"] == pytest.approx(float((x - train_mean).abs().mean()), rel=1e-5)
    assert rec["spread_ratio"] == pytest.approx(1.0, rel=1e-5)
    use = report["latent_use"]
    assert use["z_s"]["active_units"] == 64 == use["z_s"]["dims"]
    assert use["z_c"]["active_units_per_label"] == {name: 1 for name in LABELS}
    # swapping z_s swaps the whole image; swapping z_c changes nothing (this decoder ignores it)
    assert use["z_s"]["swap_change"] > 0.25 and use["z_c"]["swap_change"] == 0
    assert report["warnings"] == []


def test_collapsed_decoder_warns(shapes):
    model = CCVAEModel(len(shapes.label_names), 3, 32, z_style_dim=4)
    guide = build_guide("meanfield", num_labels=len(shapes.label_names), z_char_dim=1, z_style_dim=4, channels=3, image_size=32)
    last = model.decoder.deconv[-2]  # the last transposed convolution, before the sigmoid
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 0.3)  # every pixel of every image: sigmoid(0.3)
    report = health.check_health(
        as_representation(model, guide, shapes.label_names), shapes.valid.images, health.mean_image(shapes.train.images), shapes.label_names, torch.device("cpu")
    )
    rec = report["reconstruction"]
    x = shapes.valid.images.float() / 255
    assert rec["model_mae"] == pytest.approx(float((x - torch.sigmoid(torch.tensor(0.3))).abs().mean()), rel=1e-4)
    assert rec["ratio"] >= health.COLLAPSE_RATIO and rec["spread_ratio"] == pytest.approx(0, abs=1e-6)
    assert report["latent_use"]["z_s"]["swap_change"] == 0
    kinds = [w.split(":")[0] for w in report["warnings"]]
    assert kinds[:2] == ["decoder collapsed", "z_s unused"]
    assert "prior not recognised" not in kinds  # the untouched prior (means -2, +2) and classifier agree


def test_constant_median_image_is_caught_by_the_spread():
    """A decoder stuck on the per-pixel median beats the mean image in MAE on sparse images,
    but its reconstructions do not vary between images."""
    images = torch.zeros(40, 1, 8, 8, dtype=torch.uint8)
    images[::4, :, 2:5, 2:5] = 255  # a quarter of the images have a bright square; median: black
    code = ExactCode(len(LABELS))
    code.decode = lambda z_c, z_s: torch.zeros(*z_s.shape[:-1], 1, 8, 8)
    report = health.check_health(as_representation(code), images, health.mean_image(images), LABELS, torch.device("cpu"))
    assert report["reconstruction"]["ratio"] < health.COLLAPSE_RATIO
    assert any("hardly differ between images" in w for w in report["warnings"])


@pytest.mark.parametrize(
    "locs, bias, given_y0, given_y1",
    [
        ((-10.0, 10.0), 0.0, 1.0, 1.0),  # far apart: always recovered
        ((0.0, 0.0), 0.0, 0.5, 0.5),  # identical: a coin toss
        ((-2.0, 2.0), -2.0, norm.cdf(4.0), norm.cdf(0.0)),  # the boundary sits on the y=1 mean
    ],
)
def test_prior_recognition_by_hand(locs, bias, given_y0, given_y1):
    code = ExactCode(len(LABELS))
    with torch.no_grad():
        code.conditional_prior.loc[:, 0] = locs[0]
        code.conditional_prior.loc[:, 1] = locs[1]
        code.classifier.bias.fill_(bias)
        code.label_probs.copy_(torch.tensor([0.2, 0.8]).expand(len(LABELS), 2))
    samples = 4000
    out = health.prior_recognition(as_representation(code), samples, torch.Generator().manual_seed(0))
    tolerance = 3 * (0.25 / samples) ** 0.5  # three binomial standard errors, at worst
    for name in LABELS:
        assert out["given_y0"][name] == pytest.approx(given_y0, abs=tolerance)
        assert out["given_y1"][name] == pytest.approx(given_y1, abs=tolerance)
        assert out["balanced"][name] == pytest.approx((out["given_y0"][name] + out["given_y1"][name]) / 2)
        assert out["expected"][name] == pytest.approx(0.2 * out["given_y0"][name] + 0.8 * out["given_y1"][name])
    warned = any("prior not recognised" in w for w in health._warnings(
        {"ratio": 0.1, "spread_ratio": 1.0},
        {"z_s": {"dims": 0}, "z_c": {"active_units_per_label": {}}},
        out,
    ))  # fmt: skip
    assert warned == ((given_y0 + given_y1) / 2 < health.RECOGNITION)


def test_one_image_has_no_latent_use_to_judge():
    code = ExactCode(len(LABELS))
    images = one_channel_images(1)
    report = health.check_health(as_representation(code), images, health.mean_image(one_channel_images(9)), LABELS, torch.device("cpu"))
    use = report["latent_use"]
    assert use["z_s"]["active_units"] is None and use["z_s"]["swap_change"] is None
    assert set(use["z_c"]["active_units_per_label"].values()) == {None}
    assert report["warnings"] == []


def test_health_is_seeded_and_leaves_the_global_rng_alone():
    images = one_channel_images(20)
    code = ExactCode(len(LABELS))
    state = torch.get_rng_state()
    first = health.check_health(as_representation(code), images, health.mean_image(images), LABELS, torch.device("cpu"), seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    again = health.check_health(as_representation(code), images, health.mean_image(images), LABELS, torch.device("cpu"), seed=3)
    assert first == again


def test_train_writes_health_and_the_cli_prints_each_warning(tmp_path, monkeypatch):
    from pyro_ccvae.training import report

    real = report.check_health

    def with_warnings(*args, **kwargs):
        return {**real(*args, **kwargs), "warnings": ["first problem", "second problem"]}

    monkeypatch.setattr(report, "check_health", with_warnings)
    out = tmp_path / "run"
    args = ["train", "--out", out, "--epochs", 1, "--num-train", 64, "--batch-size", 32, "--k-samples", 4,
            "--z-style-dim", 3, "--device", "cpu", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("warning: ")] == ["warning: first problem", "warning: second problem"]
    summary = json.loads((out / "summary.json").read_text())["health"]
    assert summary["split"] == "valid" and summary["num_images"] == 12
    assert 0 < summary["reconstruction"]["model_mae"] < 1 and summary["reconstruction"]["mean_image_mae"] > 0
    assert summary["latent_use"]["z_s"]["dims"] == 3 and set(summary["prior_recognition"]["balanced"]) == set(
        json.loads((out / "config.json").read_text())["data"]["info"]["label_names"]
    )
