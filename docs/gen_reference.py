"""Write the API reference pages: one page per public module of ``pyro_ccvae``, found by walking
the package, so a module that is added, moved or renamed appears without editing the docs.

Run by mkdocs-gen-files at build time; the pages exist only in the built site.
"""
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pyro_ccvae"

nav = mkdocs_gen_files.Nav()
for source in sorted((ROOT / PACKAGE).rglob("*.py")):
    parts = source.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    elif parts[-1] == "__main__":
        continue
    if any(part.startswith("_") for part in parts):  # private modules and their children
        continue
    page = Path("reference", *parts, "index.md")
    nav[parts] = page.relative_to("reference").as_posix()
    with mkdocs_gen_files.open(page, "w") as out:
        out.write(f"::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(page, source.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as out:
    out.writelines(nav.build_literate_nav())
