"""The Python API's one-line refusals (issue 19, item 12): what a notebook user passes wrongly is
a ``ValueError`` that names the argument and what the run takes, not torch's error from deep
inside a network (``mat1 and mat2 shapes cannot be multiplied``, ``cannot sample n_sample <= 0``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_ccvae import api
from pyro_ccvae.run_directory import RunError


@pytest.fixture(scope="module")
def loaded(run_dir):
    return api.load(run_dir)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda run: run.generate({"red": 1}, count=0), "count must be a whole number of images, at least 1, got 0"),
        (lambda run: run.generate(count=-2), "at least 1, got -2"),
        (lambda run: run.generate(count=True), "count must be a whole number"),
        (lambda run: run.generate({"red": True}, 2), "class True of label 'red' must be a class index 0..1, not a bool"),
        (lambda run: run.intervene(run.images(2), "red", False), "not a bool"),
        (lambda run: run.generate(torch.zeros(3, 2)), "labels as a tensor must be class indices [N, 6]"),
        (lambda run: run.generate(count=2, style=torch.zeros(3, 4)), "style must be z_s [N, d_s] with one row per generated image"),
        (lambda run: run.generate(count=10**12), "generating 1000000000000 images needs about"),  # refused before allocating
        (lambda run: run.encode(torch.zeros(2, 1, 32, 32)), "this run takes images [B, 3, 32, 32] (batch, channels, height, width), got [2, 1, 32, 32]"),
        (lambda run: run.reconstruct(torch.zeros(2, 3, 64, 64)), "got [2, 3, 64, 64]"),
        (lambda run: run.predict(torch.zeros(3, 32, 32)), "got one image [3, 32, 32]; pass x[None] for a batch of one"),
        (lambda run: run.encode(np.zeros((2, 3, 32, 32))), "as a torch tensor, got ndarray"),
        (lambda run: run.swap(run.images(2), run.images(3)), "give as many of each, got 2 and 3"),
        (lambda run: run.decode(torch.zeros(2, 6, 1), torch.zeros(3, 4)), "this run decodes z_c [B, 6, 1] and z_s [B, 4] (as encode returns them), got z_c [2, 6, 1] and z_s [3, 4]"),
        (lambda run: run.decode(torch.zeros(2, 5, 1), torch.zeros(2, 4)), "got z_c [2, 5, 1]"),
        (lambda run: run.decode(torch.zeros(6, 1), torch.zeros(4)), "got the latents of one image; pass z_c[None], z_s[None] for a batch of one"),
        (lambda run: run.decode(np.zeros((2, 6, 1)), torch.zeros(2, 4)), "as torch tensors, got ndarray"),
        (lambda run: run.decode(torch.zeros(2, 6, 1, dtype=torch.long), torch.zeros(2, 4)), "as floats, got torch.int64"),
        (lambda run: run.labels(2, split="validation"), "split must be 'train', 'valid' or 'test', got 'validation'"),
    ],
)
def test_wrong_arguments_are_one_line_value_errors(loaded, call, fragment):
    with pytest.raises(ValueError) as error:
        call(loaded)
    assert fragment in one_line(error)


def test_right_arguments_still_work(loaded):
    x = loaded.images(2)
    assert loaded.generate({"red": 1}, np.int64(2)).shape == (2, 3, 32, 32)  # a numpy count is a count
    assert loaded.predict(x[0][None]).shape[0] == 1
    assert torch.allclose(loaded.predict((x * 255).round().to(torch.uint8)), loaded.predict(x), atol=1e-2)


def test_load_of_a_file_says_it_is_not_a_run_directory(run_dir):
    with pytest.raises(RunError) as error:
        api.load(run_dir / "config.json")
    assert "is a file, not a run directory" in one_line(error)
