"""The documentation site builds without a warning, and what the code and the README point to exists."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the pages the code, the README and the docs themselves cite by path.
CITED_PAGES = (
    "index", "objective", "contracts", "models", "guides", "data", "training", "run-directory",
    "analysis", "api", "results", "benchmarks", "cli",
)


def test_docs_build_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link or anchor, a page missing from the navigation's
    sources or a docstring the API reference cannot render fails the build."""
    env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=480,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "cli" / "index.html").read_text().count("train-classifier") > 0
    assert (tmp_path / "site" / "reference" / "pyro_ccvae" / "index.html").exists()


def test_cited_pages_exist():
    missing = [page for page in CITED_PAGES if not (ROOT / "docs" / f"{page}.md").is_file()]
    assert not missing


def test_readme_links_exist():
    links = re.findall(r"\]\(((?:docs/)?[\w./-]+?)(?:#[\w-]+)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if not link.startswith("http")]
    assert local and not [link for link in local if not (ROOT / link).exists()]


def test_code_does_not_cite_the_design_notes():
    """``DESIGN.md`` is not part of the project: the code cites the docs pages instead."""
    citing = [
        str(path.relative_to(ROOT))
        for folder in ("pyro_ccvae", "cli", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if "DESIGN.md" in path.read_text()
    ]
    assert not citing
