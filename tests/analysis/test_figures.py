"""The image grid is laid out as torchvision's ``make_grid`` (which the figures no longer import)."""
import pytest
import torch
from torchvision.utils import make_grid

from pyro_ccvae.analysis.figures import PAD, image_grid


@pytest.mark.parametrize("channels, count, nrow", [(3, 5, 3), (1, 4, 2), (3, 2, 8)])
def test_image_grid_matches_torchvision(channels, count, nrow):
    images = torch.rand(count, channels, 6, 7, generator=torch.Generator().manual_seed(count))
    expected = make_grid(images, nrow=nrow, padding=PAD, pad_value=1.0)
    assert torch.equal(image_grid(images, nrow), expected)
