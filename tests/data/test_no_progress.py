"""``--no-progress`` hides every bar, the data cache's too (issue 19, item 12): decoding CelebA's
JPEGs and resizing MNIST's images into a new cache showed a bar whatever the flag said."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from pyro_ccvae_cli.main import main

TINY = ["--epochs", "1", "--batch-size", "4", "--k-samples", "4", "--z-style-dim", "3", "--device", "cpu"]


@pytest.mark.parametrize("name, bar", [("mnist", "resizing"), ("celeba", "decoding")])
def test_no_progress_hides_the_cache_bars(request, tmp_path, name, bar):
    copy = request.getfixturevalue(name)
    data = ["--dataset", name, "--data-dir", str(copy.root)]

    def train(out: str, *flags: str) -> str:
        # each run builds its own cache, so that each would show the cache's bar
        args = ["train", *data, "--cache-dir", str(tmp_path / f"cache-{out}"), "--out", str(tmp_path / out), *TINY, *flags]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert bar in train("shown")  # the bar this test looks for does show without the flag
    quiet = train("quiet", "--no-progress")
    assert bar not in quiet and "\r" not in quiet
