"""A griffe extension for the API reference: the docstrings' Sphinx roles as Markdown code.

The docstrings follow Pyro's Sphinx style (``:class:`~pyro_ccvae.run_directory.Run```), which mkdocstrings
renders as Markdown, where a role would show as ``:class:Run``. Each role becomes inline code of
its target (its last component where the target starts with ``~``, as Sphinx shows it).
"""
import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _as_code(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_as_code, obj.docstring.value)
