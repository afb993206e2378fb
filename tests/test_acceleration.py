"""The fast path on the CPU: bf16 autocast keeps the ELBO within its tolerance of fp32 and stops in
one line when it does not (a resume in fp32 goes on); the step never reads the device (meta);
torch.compile trains to the eager parameters (slow: set PYRO_CCVAE_SLOW_TESTS=1)."""
import json
import os

import pyro
import pytest
import torch

from pyro_ccvae import acceleration
from pyro_ccvae.acceleration import BF16_ELBO_TOLERANCE, PrecisionError, accelerate, networks
from pyro_ccvae.config import TrainConfig
from pyro_ccvae.distributed import DataParallelSVI, World
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO
from pyro_ccvae.models.ccvae.guides import build_guide
from pyro_ccvae.models.ccvae.model import CCVAEModel
from pyro_ccvae.run_directory import CHECKPOINT, METRICS
from pyro_ccvae.training import Trainer, train


def tiny(**overrides):
    options = dict(num_train=64, epochs=2, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
    return TrainConfig.from_options(**{**options, **overrides})


def test_bf16_networks_compute_in_bf16_and_return_fp32():
    model = CCVAEModel(2, 3, 32, 3)
    guide = build_guide("meanfield", num_labels=2, z_char_dim=1, z_style_dim=3, channels=3, image_size=32)
    x = torch.rand(4, 3, 32, 32)
    before = guide.encoder(x)
    nets = accelerate((model, guide), torch.device("cpu"), precision="bf16")
    assert {type(n).__name__ for n in nets} == {"ConvEncoder", "ConvDecoder"}
    after = guide.encoder(x)
    assert after.dtype == torch.float32 and not torch.equal(after, before)
    assert torch.allclose(after, before, atol=0.05)
    with acceleration.full_precision(nets):
        assert torch.equal(guide.encoder(x), before)
    assert all(p.dtype == torch.float32 for p in guide.parameters())


def test_bf16_training_stays_within_the_tolerance_of_fp32(tmp_path):
    train(tiny(precision="bf16"), tmp_path / "bf16", progress=False)
    train(tiny(), tmp_path / "fp32", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "bf16" / METRICS).read_text().splitlines()]
    gaps = [line["bf16_elbo_gap"] for line in lines]
    assert all(0 < gap <= BF16_ELBO_TOLERANCE for gap in gaps), gaps
    fp32 = [json.loads(line)["loss"] for line in (tmp_path / "fp32" / METRICS).read_text().splitlines()]
    assert [line["loss"] for line in lines] == pytest.approx(fp32, rel=0.02)  # same seed, different rounding
    low, full = (torch.load(tmp_path / name / CHECKPOINT, weights_only=True)["guide"] for name in ("bf16", "fp32"))
    assert low.keys() == full.keys() and all(v.dtype == full[k].dtype for k, v in low.items())


def test_bf16_that_moves_the_elbo_too_far_stops_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(acceleration, "BF16_ELBO_TOLERANCE", 0.0)
    with pytest.raises(PrecisionError, match="before the first step .* --precision fp32") as info:
        Trainer(tiny(precision="bf16"), tmp_path / "start", progress=False)
    assert "\n" not in str(info.value)
    monkeypatch.undo()

    gaps = iter([0.0, 0.5])  # fine before the first step, too far after epoch 1

    def gap(*args, **kwargs):
        return next(gaps)

    monkeypatch.setattr("pyro_ccvae.training.loop.precision_gap", gap)
    trainer = Trainer(tiny(precision="bf16"), tmp_path / "drift", progress=False)
    with pytest.raises(PrecisionError, match=r"after epoch 1 \(saved\)"):
        trainer.fit()
    monkeypatch.undo()
    assert torch.load(tmp_path / "drift" / CHECKPOINT, weights_only=True)["position"]["epoch"] == 1
    train(tiny(precision="fp32"), tmp_path / "drift", resume=True, progress=False, explicit={"precision": "--precision"})
    assert json.loads((tmp_path / "drift" / "config.json").read_text())["execution"]["precision"] == "fp32"
    assert torch.load(tmp_path / "drift" / CHECKPOINT, weights_only=True)["position"]["epoch"] == 2


def test_a_training_step_never_reads_the_device():
    """On ``meta`` every read of a value (``.item()``, ``float()``, ``if tensor``) raises: the
    step (objective, backward, optimiser) runs there and returns its loss unread, where stock
    SVI's step (which reads its loss) fails. Validation off, as in training (it reads values)."""
    pyro.enable_validation(False)
    meta = torch.device("meta")
    model = CCVAEModel(3, 3, 32, 4, z_char_dim=2).to(meta)
    guide = build_guide("meanfield", num_labels=3, z_char_dim=2, z_style_dim=4, channels=3, image_size=32).to(meta)
    x = torch.empty(5, 3, 32, 32, device=meta)
    y = torch.empty(5, 3, dtype=torch.long, device=meta)
    mask = torch.empty(5, 3, dtype=torch.bool, device=meta)
    svi = DataParallelSVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), CCVAE_ELBO(k_samples=4), World())
    for _ in range(2):  # the second step also runs Adam's update with its state
        loss = svi.step(x, y, mask)
        assert loss.device == meta and loss.shape == ()
    assert all(p.device == meta for p in guide.parameters())
    with pytest.raises((RuntimeError, NotImplementedError)):
        pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), CCVAE_ELBO(k_samples=4)).step(x, y, mask)


@pytest.mark.skipif(not os.environ.get("PYRO_CCVAE_SLOW_TESTS"), reason="torch.compile on the CPU takes about a minute; set PYRO_CCVAE_SLOW_TESTS=1")
# Dynamo itself touches .grad of its non-leaf inputs while tracing (a torch-internal warning).
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_compiled_networks_train_to_the_eager_parameters(tmp_path):
    train(tiny(epochs=1, compile=True), tmp_path / "compiled", progress=False)
    train(tiny(epochs=1), tmp_path / "eager", progress=False)
    compiled, eager = (torch.load(tmp_path / n / CHECKPOINT, weights_only=True)["guide"] for n in ("compiled", "eager"))
    assert compiled.keys() == eager.keys()  # nn.Module.compile keeps the names
    for name in eager:
        assert torch.allclose(compiled[name], eager[name], rtol=1e-3, atol=1e-5), name


def test_networks_finds_each_shared_network_once():
    model = CCVAEModel(2, 1, 32, 3)
    guide = build_guide("lowrank", num_labels=2, z_char_dim=1, z_style_dim=3, channels=1, image_size=32)
    assert len(networks(model, guide, model)) == 2
