"""The README's set-up commands are the ones CI runs and the ones that work; its Python runs."""
import re
from pathlib import Path

import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.training import train

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks():
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(b.strip() for b in bash_blocks() if "pytest" in b)
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_command in ci_lines


def test_readme_main_command_trains_the_built_in_data_set():
    main_command = bash_blocks()[0]
    assert "pip install" in main_command and "ccvae-pyro train" in main_command


def python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    """The notebook snippet, on a tiny run where it expects one (``runs/shapes``)."""
    config = TrainConfig.from_options(num_train=64, epochs=1, batch_size=32, k_samples=4, z_style_dim=3, device="cpu")
    train(config, tmp_path / "runs" / "shapes", progress=False)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert blocks and "api.load" in blocks[0]
    names = {}
    exec(compile(blocks[0], "README.md", "exec"), names)
    x, label_count = names["x"], len(names["run"].label_names)
    assert names["probs"].shape == (8, label_count, 2) and torch.allclose(names["probs"].sum(-1), torch.ones(8, label_count))
    assert names["recon"].shape == names["blue"].shape == x.shape
    assert names["fakes"].shape == x.shape and names["mixed"].shape == (4, *x.shape[1:])
    assert names["walk"].shape == (2, 5, *x.shape[1:])
