"""--tensorboard: event files with losses, validation accuracy and a reconstruction grid beside
metrics.jsonl, a resumed run that does not log steps twice, and a one-line error without the package."""
import sys

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.run_directory import tensorboard_dir
from pyro_ccvae.tracking import TrackingError, image_grid
from pyro_ccvae.training import Trainer, train


def tiny(**overrides):
    options = dict(num_train=64, epochs=2, batch_size=32, k_samples=4, z_style_dim=3, device="cpu", tensorboard=True)
    return TrainConfig.from_options(**{**options, **overrides})


def test_image_grid_puts_rows_over_each_other():
    top, bottom = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    top[1] = 0.5
    grid = image_grid([top, bottom])
    assert grid.shape == (1, 4, 6)
    assert torch.equal(grid[:, :2, 2:4], torch.full((1, 2, 2), 0.5)) and torch.equal(grid[:, 2:], torch.ones(1, 2, 6))


def test_without_the_package_the_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(TrackingError, match=r"pip install 'pyro-ccvae\[tracking\]'") as info:
        Trainer(tiny(), tmp_path, progress=False)
    assert "\n" not in str(info.value)


def test_event_files_hold_losses_accuracy_and_reconstructions(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(epochs=1), tmp_path, progress=False)
    train(tiny(epochs=2), tmp_path, resume=True, progress=False)
    events = EventAccumulator(str(tensorboard_dir(tmp_path)), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_per_image", "epoch/loss_per_image", "epoch/images_per_s", "valid/accuracy_mean"} <= scalars
    assert any(tag.startswith("valid/accuracy/") for tag in scalars)
    steps = [event.step for event in events.Scalars("train/loss_per_image")]
    assert steps == [1, 2, 3, 4]  # two steps per epoch, each once across the resume
    assert [event.step for event in events.Scalars("epoch/loss_per_image")] == [1, 2]
    grids = events.Images("reconstructions")
    assert [g.step for g in grids] == [1, 2] and grids[0].height == 2 * 32 and grids[0].width == 8 * 32
