"""The benchmarks still run (tiny settings) and end with one JSON line; no timing is asserted."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = {
    "throughput.py": ["--batch-sizes", "2", "--repeats", "1", "--warmup", "0", "--k-samples", "2"],
    "data_cache.py": ["--n", "8", "--batch", "4", "--read-batches", "2", "--decode-batches", "1"],
    "end_to_end.py": ["--n", "40", "--repeats", "1"],
    "evaluation.py": ["--max-images", "16", "--iw-samples", "3", "--repeats", "1", "--num-train", "64"],
    "research_targets.py": [
        "--datasets", "digits", "--digits-epochs", "1", "--judge-epochs", "1", "--num-train", "64", "--iw-samples", "2",
        "--train-option=--k-samples=4",
    ],
}


def test_every_benchmark_has_tiny_options():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(TINY)


@pytest.mark.parametrize("name", sorted(set(TINY) - {"end_to_end.py"}))  # end_to_end.py: its own test below
def test_benchmark_ends_with_a_json_line(name, tmp_path):
    out = ["--out", str(tmp_path / "out")] if name == "research_targets.py" else []
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *TINY[name], *out], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures and all(v is not None for v in figures.values())


def test_end_to_end_reports_every_pipeline(tmp_path):
    """Whole-process figures of ours (cold and warm) and the authors' pipeline, all positive."""
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "end_to_end.py"), *TINY["end_to_end.py"]],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["n_train"] == 36
    for name in ("ours_cold", "ours_warm", "authors"):
        for figure in ("wall_s", "images_per_s", "epoch_s", "peak_rss_mb", "cpu_s"):
            assert figures[f"{name}_{figure}"] > 0, (name, figure)
    assert figures["authors_over_ours_warm"] > 0 and figures["authors_over_ours_cold"] > 0
    assert "| authors |" in result.stdout


def _end_to_end_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("end_to_end", BENCHMARKS / "end_to_end.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("step, encodings_per_batch", [("authors", 3), ("ours", 1)])
def test_the_authors_process_runs_the_step_asked_for(tmp_path, monkeypatch, step, encodings_per_batch):
    """The authors' objective encodes every batch three times, as their classifier_loss and trace
    do; ``--authors-step ours`` runs the library's step, which encodes it once. Both train."""
    import torch

    from pyro_ccvae.models.ccvae.guides import MeanFieldGuide

    end_to_end = _end_to_end_module()
    root, n_train, _ = end_to_end.make_celeba(tmp_path, 24)
    calls, before = [], {}
    original_init = MeanFieldGuide.__init__

    def counting_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.encoder.register_forward_hook(lambda *_: calls.append(1))
        before.update({name: p.detach().clone() for name, p in self.named_parameters()})
        counting_init.guide = self

    monkeypatch.setattr(MeanFieldGuide, "__init__", counting_init)
    figures = end_to_end.authors_epoch(root, batch_size=8, seed=0, evaluate=False, step=step, networks="ours")
    batches = -(-n_train // 8)
    assert figures["images"] == n_train and figures["step"] == step
    assert len(calls) == encodings_per_batch * batches
    assert torch.isfinite(torch.tensor(figures["loss_per_image"]))
    after = dict(counting_init.guide.named_parameters())
    assert all(not torch.equal(before[name], after[name]) for name in before), "every guide parameter trained"


def test_the_authors_process_trains_networks_of_their_size(tmp_path, monkeypatch):
    """By default the authors' process swaps in networks with the layer sizes of theirs (1.45 M
    parameters at d = 45 against the library's 0.79 M), encodes each batch three times and trains them."""
    import torch

    end_to_end = _end_to_end_module()
    root, n_train, _ = end_to_end.make_celeba(tmp_path, 24)
    built, calls = [], []
    original = end_to_end.their_size_networks

    def recording(z_dim, channels=3):
        encoder, decoder = original(z_dim, channels)
        encoder.register_forward_hook(lambda *_: calls.append(1))
        built.append((encoder, decoder, {n: p.detach().clone() for n, p in encoder.named_parameters()}))
        return encoder, decoder

    monkeypatch.setattr(end_to_end, "their_size_networks", recording)
    figures = end_to_end.authors_epoch(root, batch_size=8, seed=0, evaluate=False)
    (encoder, decoder, before), = built
    assert figures["networks"] == "theirs" and figures["network_parameters"] == 1_447_773
    assert sum(p.numel() for m in (encoder, decoder) for p in m.parameters()) == 1_447_773
    assert len(calls) == 3 * -(-n_train // 8) and torch.isfinite(torch.tensor(figures["loss_per_image"]))
    assert all(not torch.equal(before[n], p) for n, p in encoder.named_parameters()), "every encoder parameter trained"
