"""The guides' registry (:data:`GUIDES`: built-ins by name, a user's own by ``module:attr``),
their options, typed from a guide's constructor, and how a guide is built for a model."""
from __future__ import annotations

import importlib
import inspect
import json
import typing
from typing import Any, Callable, Mapping, Optional

import torch

from ....errors import UserError
from .base import CCVAEGuide, PriorClassifier
from .flow import FlowGuide
from .fullrank import FullRankGuide
from .lowrank import LowRankGuide
from .meanfield import MeanFieldGuide

#: name -> guide class; the CLI's ``--guide`` takes these names or ``package.module:Class``.
GUIDES: dict[str, Callable[..., CCVAEGuide]] = {
    "meanfield": MeanFieldGuide,
    "lowrank": LowRankGuide,
    "fullrank": FullRankGuide,
    "flow": FlowGuide,
}

#: the arguments ``build_guide`` fills in from the model and the data; every other keyword
#: argument of a guide's constructor is a guide option (``--guide-option NAME=VALUE``).
MODEL_DIMS = ("num_labels", "num_classes", "z_char_dim", "z_style_dim", "channels", "image_size")


class GuideError(UserError):
    """A guide that cannot be found or does not fit the model; the message is one line."""


def resolve_guide(spec: str) -> Callable[..., CCVAEGuide]:
    """The guide class (or factory) for a built-in name or a ``module:attr`` import path."""
    if spec in GUIDES:
        return GUIDES[spec]
    if ":" not in spec:
        raise GuideError(f"unknown guide {spec!r}; use one of {', '.join(GUIDES)} or an import path 'module:attr'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(_moved_module(module_name))
    except (ImportError, ValueError, TypeError) as e:  # also an empty or relative module name
        raise GuideError(f"cannot import module {module_name!r} for guide {spec!r}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GuideError(f"module {module_name!r} has no attribute {attr!r} (guide {spec!r})") from None


#: where the built-in guides' modules lived before they moved into the CCVAE family: a run's
#: ``config.json`` may name its guide by an import path under the old name.
MOVED = ("pyro_ccvae.guides", "pyro_ccvae.models.ccvae.guides")


def _moved_module(module_name: str) -> str:
    """``module_name`` under the guides' current package if it names their old one (or a module in it)."""
    old, new = MOVED
    return new + module_name[len(old):] if module_name == old or module_name.startswith(old + ".") else module_name


def guide_options(spec: str, options: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The options of guide ``spec`` (``NAME -> value``) typed from its constructor: by the
    parameter's annotation, else by its default's type (``"8"`` -> ``8`` for ``rank: int = 4``).

    An option the constructor does not take is a one-line :class:`GuideError` listing those it
    does (a constructor with ``**kwargs`` takes any name; those values stay as given).
    """
    options = dict(options or {})
    if not options:
        return {}
    factory = resolve_guide(spec)
    accepted = _option_parameters(factory)
    takes_any = _accepts_any_keyword(factory)
    typed = {}
    for name, value in options.items():
        if name not in accepted:
            if takes_any:
                typed[name] = value
                continue
            known = ", ".join(sorted(accepted)) or "none"
            raise GuideError(f"guide {spec!r} has no option {name!r}; its options: {known}")
        typed[name] = _typed_option(spec, name, value, accepted[name])
    return typed


def _option_parameters(factory: Callable) -> dict[str, Any]:
    """Option name -> its type (annotation, else the default's type, else ``Any``)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: fall back on the defaults
        hints = {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    types = {}
    for p in signature.parameters.values():
        if p.kind in kinds and p.name not in MODEL_DIMS and p.name != "self":
            default_type = type(p.default) if p.default not in (inspect.Parameter.empty, None) else Any
            types[p.name] = hints.get(p.name, default_type)
    return types


def _accepts_any_keyword(factory: Callable) -> bool:
    try:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return False


def _typed_option(spec: str, name: str, value: Any, kind: Any) -> Any:
    """``value`` (from the command line: a string; from ``config.json``: JSON) as ``kind``."""
    optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
    if optional:
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = rest[0] if len(rest) == 1 else Any
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return words[str(value).lower()]
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            return str(value)
    except (KeyError, ValueError, TypeError):
        raise GuideError(f"guide {spec!r} option {name}={value!r} is not a valid {kind.__name__}") from None
    if isinstance(value, str):  # another type (a list, a dict, Any): read the string as JSON where it parses
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def build_guide(spec: str, options: Optional[Mapping[str, Any]] = None, **dims) -> torch.nn.Module:
    """Instantiate a guide with the model's dimensions (``num_labels, num_classes, z_char_dim,
    z_style_dim, channels, image_size``) and its ``options`` (see :func:`guide_options`).

    A guide written before categorical labels (its factory takes no ``num_classes``) is built
    without it, which is right only when every label is binary.
    """
    factory = resolve_guide(spec)
    options = guide_options(spec, options)
    if not _accepts(factory, "num_classes"):
        num_classes = dims.pop("num_classes", None)
        if num_classes is not None and any(k != 2 for k in num_classes):
            raise GuideError(
                f"guide {spec!r} takes no num_classes, but this data has labels with {max(num_classes)} classes; "
                "add a num_classes argument and pass it on to CCVAEGuide.__init__"
            )
    try:
        return factory(**dims, **options)
    except TypeError as e:
        raise GuideError(f"guide {spec!r} cannot be built from {sorted(dims) + sorted(options)}: {e}") from None
    except ValueError as e:  # the guide's own check of its dims or options
        raise GuideError(f"guide {spec!r}: {first_line(e)}") from None


def tie_classifier(guide: torch.nn.Module, model: torch.nn.Module) -> None:
    """Make ``guide``'s ``q(y | z_c)`` the Bayes classifier of ``model``'s conditional prior
    (:class:`.base.PriorClassifier`): the guide's ``classifier`` attribute is replaced."""
    if not isinstance(getattr(guide, "classifier", None), torch.nn.Module):
        raise GuideError(
            f"--label-classifier prior replaces the guide's classifier, and guide {type(guide).__name__} has no "
            "'classifier' module; subclass CCVAEGuide, or use --label-classifier linear"
        )
    guide.classifier = PriorClassifier(model)


def _accepts(factory: Callable, name: str) -> bool:
    """Whether ``factory`` takes a keyword ``name`` (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)



def first_line(error: Exception) -> str:
    """The first line of ``error``'s message: Pyro appends a table of trace shapes to errors raised inside a trace."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
