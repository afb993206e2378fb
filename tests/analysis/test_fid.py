"""FID (``evaluate --fid-weights``, the paper's Table 4) with randomly initialised weights of
torch-fidelity's Inception v3 saved to a file (nothing is downloaded): the library's number is the
Fréchet distance computed by hand (``scipy.linalg.sqrtm``) on the features the same network
extracts; identical sets score 0; a bad weights file is one line naming it; and the section runs
through the command line on a tiny run, and through the library for every model family.

The Inception pass at 299 x 299 and the 2048 x 2048 eigenproblem take seconds on a CPU: the
2048 features FID is defined on are used by the command-line test, on a handful of images; the
hand computation reads 768 features of the same network, the per-family check 64.
"""
from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from pyro_ccvae.analysis import fid, sections, tasks
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.models import MODELS
from pyro_ccvae.models.base import SAMPLE
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train

from cli_helpers import cli  # tests/ is on the path of its top-level modules

#: a tiny run of each family (its own size options).
SMALL = {"ccvae": {"k_samples": 3, "z_style_dim": 3}, "m2": {"z_style_dim": 3}, "diva": {"z_style_dim": 3}, "mvae": {"z_dim": 6}}


def random_inception_weights(path: Path, seed: int = 0) -> Path:
    """A state dict of torch-fidelity's Inception v3 with random weights, saved to ``path``. The
    network loads its weights while it is built; an empty load keeps the random initialisation.
    Convolutions get He initialisation: PyTorch's default shrinks the features to about 1e-8
    over the network's ~90 layers (its batch norms, in evaluation mode, do not rescale)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = Unloaded("random", ["2048"], feature_extractor_weights_path=empty)
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return random_inception_weights(tmp_path_factory.mktemp("inception") / "inception.pth")


def hand_fid(real: np.ndarray, other: np.ndarray) -> float:
    """``||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))`` of two feature matrices [N, d]."""
    mu_1, mu_2 = real.mean(0), other.mean(0)
    s_1, s_2 = np.cov(real, rowvar=False), np.cov(other, rowvar=False)
    with warnings.catch_warnings():  # fewer images than features: S_1 S_2 is singular, and scipy says so
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(s_1 @ s_2)
    return float(((mu_1 - mu_2) ** 2).sum() + np.trace(s_1) + np.trace(s_2) - 2 * np.trace(root).real)


def test_fid_is_the_frechet_distance_of_the_networks_features(weights):
    # 768 features (the network but its last three blocks): scipy's sqrtm of a 2048 x 2048 matrix
    # takes most of a minute; the library's FID is the same code at every feature size.
    metric = fid.load_inception(weights, feature=768)
    generator = torch.Generator().manual_seed(1)
    grey = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=generator)  # test images: uint8, grey
    decoded = torch.rand(6, 1, 16, 16, generator=generator) ** 2 * 1.2 - 0.1  # a decoder's means, a little out of [0, 1]
    fid.set_reference(metric, [grey[:4], grey[4:]])
    value = fid.score(metric, [decoded])
    # by hand: three equal channels, the decoded floats clamped and rounded to 8 bits
    as_bytes = (decoded.clamp(0, 1) * 255).round().to(torch.uint8)
    with torch.no_grad():
        real, other = (metric.inception(x.expand(-1, 3, -1, -1)).double().numpy() for x in (grey, as_bytes))
    expected = hand_fid(real, other)
    assert expected > 1e-3 and value == pytest.approx(expected, rel=1e-5)
    # identical sets: 0, up to rounding (the reference is kept between scores)
    assert abs(fid.score(metric, [grey])) < 1e-6 * expected
    assert fid.score(metric, [decoded]) == pytest.approx(value, rel=1e-6)


def test_images_become_three_channel_bytes():
    floats = torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 1, 5)
    converted = fid.inception_input(floats)
    assert converted.dtype == torch.uint8 and converted.shape == (1, 3, 1, 5)
    assert converted[0, :, 0].tolist() == [[0, 0, 128, 255, 255]] * 3
    colour = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(fid.inception_input(colour), colour)


def test_the_missing_weights_note_says_where_the_official_file_is():
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    note = fid.missing_weights_note()
    url, prefix = fid.official_weights()
    assert url == URL_INCEPTION_V3 and prefix == "6726825d" and "\n" not in note
    assert url in note and prefix in note and "--fid-weights" in note


class NotWeights:
    """Pickled, an object that only running code rebuilds."""


@pytest.mark.parametrize("content", ["missing", "text", "object", "list", "other network", "a key short"])
def test_a_bad_weights_file_is_one_line_naming_it(weights, tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "text":
        path.write_text("not weights\n")
    elif content == "object":
        torch.save(NotWeights(), path)
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    elif content == "other network":
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    elif content == "a key short":
        state = torch.load(weights, weights_only=True)
        del state["Mixed_7c.branch_pool.conv.weight"]
        torch.save(state, path)
    with pytest.raises(ValueError) as error:
        fid.load_inception(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and len(message) < 400, message
    if content == "a key short":
        assert "Mixed_7c.branch_pool.conv.weight" in message


@pytest.fixture(scope="module", params=sorted(MODELS))
def family_run(request, tmp_path_factory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp(request.param) / "run"
    config = TrainConfig.from_options(model=request.param, num_train=48, epochs=1, batch_size=16, device="cpu", image_size=32, **SMALL[request.param])
    train(config, path, progress=False)
    return request.param, path


@pytest.fixture(scope="module")
def small_metric(weights):
    """The metric on the network's 64 early features: the per-family check in a second or two."""
    return fid.load_inception(weights, feature=64)


def test_every_family_gets_fid_of_its_generated_images_and_reconstructions(family_run, small_metric):
    name, path = family_run
    run = load_run(path, "cpu")
    analysis = Analysis.from_run(run, progress=False)
    with run.scope():
        scores = fid.fid_scores(analysis, small_metric, num_images=5)
    assert {"generated", "reconstructions", "training_images"} <= set(scores)
    assert all(scores[k] > 0 and np.isfinite(scores[k]) for k in ("generated", "reconstructions", "training_images"))
    assert scores["num_images"] == scores["num_training_images"] == 5 and scores["official_weights"] is False
    assert "not the official file" in scores["note"] and "64 features" in scores["network"]


@pytest.mark.parametrize("family_run", ["ccvae"], indirect=True)  # the capability decides, not the family
def test_a_family_that_cannot_sample_gets_the_reconstructions_fid_and_the_reason(family_run, weights, monkeypatch):
    name, path = family_run
    run = load_run(path, "cpu")
    partial = copy.copy(run.representation)
    partial.family, partial.capabilities = "partial", run.representation.capabilities - {SAMPLE}
    monkeypatch.setattr(run, "representation", partial)
    monkeypatch.setattr(sections, "load_inception", lambda weights, device: fid.load_inception(weights, device, feature=64))
    written = tasks.evaluate(run, iw_samples=2, max_images=6, attribute_epochs=0, progress=False, fid_weights=weights, fid_images=4)
    metrics = written.metrics
    assert "generated" not in metrics["fid"] and metrics["fid"]["reconstructions"] > 0
    assert metrics["evaluation"]["skipped"]["fid_generated"] == "needs the capability 'sample', which model 'partial' does not offer"


def test_evaluate_reports_fid_through_the_command_line(tmp_path, weights):
    run_dir = tmp_path / "run"
    data = ["--dataset", "shapes", "--num-train", "48", "--image-size", "32", "--labels", "square,red"]
    assert cli("train", "--out", run_dir, *data, "--epochs", "1", "--batch-size", "16", "--z-style-dim", "3", "--k-samples", "3", "--device", "cpu", "--no-progress").exit_code == 0
    evaluate = ["evaluate", run_dir, "--device", "cpu", "--iw-samples", "2", "--max-images", "8", "--attribute-epochs", "0", "--no-progress"]

    result = cli(*evaluate, "--fid-weights", weights, "--fid-images", "3")
    assert result.exit_code == 0, result.output
    section = json.loads((run_dir / "metrics.json").read_text())["fid"]
    assert section["num_images"] == 3 and section["official_weights"] is False and "2048 features" in section["network"]
    line = [line for line in result.output.splitlines() if line.startswith("FID against 3 test images")]
    assert len(line) == 1 and f"generated {section['generated']:.4g}" in line[0] and "not the official weights" in line[0]
    report = (run_dir / "report.html").read_text()
    assert "FID of generated images against the test images" in report and "images per FID set" in report

    without = cli(*evaluate)
    assert without.exit_code == 0, without.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "fid" not in metrics  # an earlier FID is not left beside numbers of another evaluation
    url, prefix = fid.official_weights()
    assert f"skipped fid: {metrics['evaluation']['skipped']['fid']}" in without.output.splitlines()
    assert url in metrics["evaluation"]["skipped"]["fid"] and prefix in metrics["evaluation"]["skipped"]["fid"]

    bad = tmp_path / "not-weights.pth"
    bad.write_text("not weights\n")
    for path in (bad, tmp_path / "absent.pth"):
        refused = cli(*evaluate, "--fid-weights", path)
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert refused.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: --fid-weights ") and str(path) in lines[0], refused.output


def test_a_reference_of_the_same_digest_is_read_once(weights):
    """Several runs of one data set scored with one metric (examples/compare_baselines.py): the
    test images' features are computed for the first, kept for the others."""
    metric = fid.load_inception(weights, feature=64)
    grey = torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    fid.set_reference(metric, [grey[:4]], digest="test images")
    first = fid.score(metric, [grey[2:]])

    def unread():
        raise AssertionError("the reference was read again")
        yield

    fid.set_reference(metric, unread(), digest="test images")
    assert fid.score(metric, [grey[2:]]) == first
    fid.set_reference(metric, [grey[2:]], digest="other images")  # another digest: replaced
    assert abs(fid.score(metric, [grey[2:]])) < abs(first)
