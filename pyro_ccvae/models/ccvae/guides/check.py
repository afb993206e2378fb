"""The start-up check of a guide against the guide contract (docs/contracts.md): its sites'
names, shapes and supports, its classifier, and a ``z_c`` site that carries the marginal
``q(z_c | x)``."""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.util import site_is_subsample

from .. import sites
from .registry import GuideError, first_line

#: K of the start-up check's draws from the z_c site.
CHECK_DRAWS = 3


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
            f"the guide failed on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {first_line(e)}"
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
            f"guide site {sites.Y!r} carries no classifier; sample it with pyro_ccvae.models.ccvae.guides.sample_labels"
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
        raise GuideError(f"the model failed on the guide's samples: {type(e).__name__}: {first_line(e)}") from None


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
