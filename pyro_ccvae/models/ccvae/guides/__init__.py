"""Swappable guides (DESIGN.md §3): built-ins by name, a user's own by ``module:attr``."""
from __future__ import annotations

import importlib
import inspect
from typing import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints

from .. import sites
from .base import CCVAEGuide, DiagonalClassifier, labels_plate, sample_labels
from .lowrank import LowRankGuide
from .meanfield import MeanFieldGuide

#: name -> guide class; the CLI's ``--guide`` takes these names or ``package.module:Class``.
GUIDES: dict[str, Callable[..., CCVAEGuide]] = {"meanfield": MeanFieldGuide, "lowrank": LowRankGuide}


class GuideError(ValueError):
    """A guide that cannot be found or does not fit the model; the message is one line."""


def resolve_guide(spec: str) -> Callable[..., CCVAEGuide]:
    """The guide class (or factory) for a built-in name or a ``module:attr`` import path."""
    if spec in GUIDES:
        return GUIDES[spec]
    if ":" not in spec:
        raise GuideError(f"unknown guide {spec!r}; use one of {', '.join(GUIDES)} or an import path 'module:attr'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as e:  # also an empty or relative module name
        raise GuideError(f"cannot import module {module_name!r} for guide {spec!r}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GuideError(f"module {module_name!r} has no attribute {attr!r} (guide {spec!r})") from None


def build_guide(spec: str, **dims) -> torch.nn.Module:
    """Instantiate a guide with the model's dimensions (``num_labels, num_classes, z_char_dim,
    z_style_dim, channels, image_size``).

    A guide written before categorical labels (its factory takes no ``num_classes``) is built
    without it, which is right only when every label is binary.
    """
    factory = resolve_guide(spec)
    if not _accepts(factory, "num_classes"):
        num_classes = dims.pop("num_classes", None)
        if num_classes is not None and any(k != 2 for k in num_classes):
            raise GuideError(
                f"guide {spec!r} takes no num_classes, but this data has labels with {max(num_classes)} classes; "
                "add a num_classes argument and pass it on to CCVAEGuide.__init__"
            )
    try:
        return factory(**dims)
    except TypeError as e:
        raise GuideError(f"guide {spec!r} cannot be built from {sorted(dims)}: {e}") from None


def _accepts(factory: Callable, name: str) -> bool:
    """Whether ``factory`` takes a keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def check_guide(model, guide, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    """Run ``guide`` and ``model`` once on a small batch and check the guide's sites.

    Raises :class:`GuideError` naming the first site whose name, shape or support does not fit.
    """
    batch, num_labels = y.shape
    expected = {  # site: (value shape, batch shape)
        sites.Z_C: ((num_labels, batch, model.z_char_dim), (num_labels, batch)),
        sites.Z_S: ((batch, model.z_style_dim), (batch,)),
        sites.Y_UNOBSERVED: ((num_labels, batch), (num_labels, batch)),
    }
    try:
        guide_trace = poutine.trace(guide).get_trace(x, y, mask)
    except Exception as e:  # a user's guide can fail in any way; report it in one line
        raise GuideError(
            f"the guide failed on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {_first_line(e)}"
        ) from None
    for name, (shape, batch_shape) in expected.items():
        site = guide_trace.nodes.get(name)
        if site is None or site["type"] != "sample":
            raise GuideError(f"guide has no sample site {name!r} (expected value shape {shape})")
        if tuple(site["value"].shape) != shape:
            raise GuideError(f"guide site {name!r} has shape {tuple(site['value'].shape)}, expected {shape}")
        if tuple(site["fn"].batch_shape) != batch_shape:
            raise GuideError(
                f"guide site {name!r} has batch shape {tuple(site['fn'].batch_shape)}, expected {batch_shape}: "
                "sample it inside the data (and labels) plate, with .to_event for the latent dims"
            )
    for name in (sites.Z_C, sites.Z_S):
        support = guide_trace.nodes[name]["fn"].support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        if support is not constraints.real:
            raise GuideError(f"guide site {name!r} has support {support}, expected real numbers")
    if not callable(guide_trace.nodes[sites.Y_UNOBSERVED]["infer"].get(sites.CLASSIFIER)):
        raise GuideError(
            f"guide site {sites.Y!r} carries no classifier; sample it with pyro_ccvae.guides.sample_labels"
        )
    classes = max(model.num_classes)
    q_y = guide_trace.nodes[sites.Y_UNOBSERVED]["fn"]
    if not isinstance(q_y, dist.Categorical) or q_y.logits.shape[-1] != classes:
        got = q_y.logits.shape[-1] if isinstance(q_y, dist.Categorical) else type(q_y).__name__
        raise GuideError(
            f"guide site {sites.Y!r} must be a Categorical over the {classes} classes of the labels, got {got}; "
            "build its classifier with the model's num_classes (CCVAEGuide does)"
        )
    try:
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y, mask)
    except Exception as e:
        raise GuideError(f"the model failed on the guide's samples: {type(e).__name__}: {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    # Pyro appends a table of trace shapes to errors raised inside a trace.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = [
    "GUIDES",
    "CCVAEGuide",
    "DiagonalClassifier",
    "GuideError",
    "LowRankGuide",
    "MeanFieldGuide",
    "build_guide",
    "check_guide",
    "labels_plate",
    "resolve_guide",
    "sample_labels",
]
