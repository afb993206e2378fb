"""Swappable guides (DESIGN.md §3): built-ins by name, a user's own by ``module:attr``."""
from __future__ import annotations

import importlib
import inspect
import json
import typing
from typing import Any, Callable, Mapping, Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.util import site_is_subsample

from .. import sites
from .base import CCVAEGuide, DiagonalClassifier, JointOverLabels, PriorClassifier, labels_plate, sample_labels
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
#: K of the start-up check's draws from the z_c site.
CHECK_DRAWS = 3


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
        raise GuideError(f"guide {spec!r}: {_first_line(e)}") from None


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


def check_guide(model, guide, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    """Run ``guide`` and ``model`` once on a small batch and check the guide's sites against the
    contract (:mod:`.base`): names, shapes, supports, the classifier, every latent site inside the
    data plate, and a ``z_c`` site that carries the marginal ``q(z_c | x)`` (it can be drawn ``K``
    times, its draws differ, and it depends on no latent site sampled before it).

    Raises :class:`GuideError` naming the first site that does not fit.
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
        if not _real_support(guide_trace.nodes[name]["fn"]):
            raise GuideError(f"guide site {name!r} has support {guide_trace.nodes[name]['fn'].support}, expected real numbers")
    for name, site in guide_trace.nodes.items():
        if _is_latent(site) and name not in expected:
            raise GuideError(
                f"guide site {name!r} is a latent the model does not have: its log-density would enter log q(z|x) "
                "with nothing in p to balance it (the objective grows without bound as its entropy does), and z_c "
                "drawn after it would not be the marginal q(z_c|x); compute it without pyro.sample, or fold it "
                f"into the z_c or z_s site"
            )
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
    _check_no_hidden_randomness(guide, guide_trace, x, y, mask)  # first: hidden draws also look like a dependence on z_s
    _check_characteristic_marginal(guide, guide_trace, x, y, mask)
    try:
        poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y, mask)
    except Exception as e:
        raise GuideError(f"the model failed on the guide's samples: {type(e).__name__}: {_first_line(e)}") from None


@torch.no_grad()
def _check_characteristic_marginal(guide, guide_trace, x, y, mask) -> None:
    """The ELBO draws ``K`` samples for ``q(y_o | x)`` from the ``z_c`` site: it must be the
    marginal ``q(z_c | x)``, reparameterisable, with draws that differ."""
    site = guide_trace.nodes[sites.Z_C]
    q_z_c, value = site["fn"], site["value"]
    fix = "the ELBO draws its K samples for q(y|x) from it, so it must carry the marginal q(z_c|x): sample z_c from its marginal first, then z_s given z_c"
    if isinstance(_innermost(q_z_c), dist.Delta):
        raise GuideError(f"guide site {sites.Z_C!r} is a Delta (a jointly sampled z, as in AutoContinuous guides); {fix}")
    if not q_z_c.has_rsample:
        raise GuideError(f"guide site {sites.Z_C!r} has a {type(q_z_c).__name__} without rsample; {fix}")
    try:
        draws = q_z_c.rsample((CHECK_DRAWS,))
    except NotImplementedError:
        raise GuideError(f"guide site {sites.Z_C!r}'s {type(q_z_c).__name__} cannot rsample; {fix}") from None
    if tuple(draws.shape) != (CHECK_DRAWS,) + tuple(value.shape):
        raise GuideError(
            f"guide site {sites.Z_C!r} gives {CHECK_DRAWS} draws of shape {tuple(draws.shape)}, expected "
            f"{(CHECK_DRAWS,) + tuple(value.shape)}; {fix}"
        )
    identical = (draws == draws[:1]).all(0).all(-1)  # [L, B]: a block that never moves
    if identical.any():
        label = int(identical.any(-1).nonzero()[0])
        raise GuideError(
            f"guide site {sites.Z_C!r} gives {CHECK_DRAWS} identical draws (a point mass) in the block of label {label}; {fix}"
        )
    # A z_c distribution that reads an earlier latent site is a conditional, not the marginal.
    log_q = q_z_c.log_prob(value)
    for name, earlier in guide_trace.nodes.items():
        if name == sites.Z_C:
            break
        if not _is_latent(earlier) or not _real_support(earlier["fn"]):
            continue
        shifted = poutine.trace(poutine.condition(guide, data={name: earlier["value"] + 1.0})).get_trace(x, y, mask)
        if not torch.allclose(shifted.nodes[sites.Z_C]["fn"].log_prob(value), log_q, rtol=1e-5, atol=1e-5):
            raise GuideError(
                f"guide site {sites.Z_C!r} depends on the latent site {name!r} sampled before it, so its distribution "
                f"is a conditional, not q(z_c|x); {fix}"
            )


@torch.no_grad()
def _check_no_hidden_randomness(guide, guide_trace, x, y, mask) -> None:
    """The ``z_c`` site's distribution must be a function of the images: a guide that draws
    randomness outside Pyro's sample sites (``torch.randn``, a draw cached from a joint sample)
    and registers ``z_c ~ Normal(draw, small)`` hides the real ``q(z_c|x)``, and its ``K`` samples
    would all sit at the one draw (``w = 1``). Run again on the same images, such a site moves."""
    site = guide_trace.nodes[sites.Z_C]
    value = site["value"].clone()  # not the very tensor drawn, so neither run uses a cache of its draw
    # Replayed: every sample site keeps its value, so only randomness outside them can move z_c.
    again = poutine.trace(poutine.replay(guide, trace=guide_trace)).get_trace(x, y, mask).nodes[sites.Z_C]["fn"]
    if not torch.allclose(again.log_prob(value), site["fn"].log_prob(value), rtol=1e-4, atol=1e-4):
        raise GuideError(
            f"guide site {sites.Z_C!r} has another distribution each time the guide runs on the same images: it "
            "depends on randomness drawn outside a Pyro sample site (torch.randn, a cached joint draw), so it is a "
            "conditional, not q(z_c|x), and the ELBO's K samples for q(y|x) would be wrong; draw z_c from its "
            "marginal at the z_c site"
        )


def _is_latent(site: dict) -> bool:
    """A latent sample site of the guide other than the enumerated labels (those enter log q(z|x))."""
    return (
        site["type"] == "sample" and not site["is_observed"] and site["name"] != sites.Y_UNOBSERVED
        and not site_is_subsample(site)
    )  # fmt: skip


def _real_support(fn) -> bool:
    support = fn.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def _innermost(fn):
    """The distribution under Pyro's wrappers (``Independent``, ``Masked``, ``Expanded``)."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _first_line(error: Exception) -> str:
    # Pyro appends a table of trace shapes to errors raised inside a trace.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = [
    "GUIDES",
    "CCVAEGuide",
    "DiagonalClassifier",
    "FlowGuide",
    "FullRankGuide",
    "GuideError",
    "JointOverLabels",
    "LowRankGuide",
    "MeanFieldGuide",
    "PriorClassifier",
    "build_guide",
    "check_guide",
    "guide_options",
    "labels_plate",
    "resolve_guide",
    "sample_labels",
    "tie_classifier",
]
