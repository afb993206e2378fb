"""What the baseline families (M2, DIVA, MVAE) share: one inference network each, the data
set's likelihood, fast-learning distribution parameters, a one-time trace check, and the Pyro
sites of a label that may be seen for some data points and not for others."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import pyro
import torch
from pyro import poutine

from ..errors import UserError
from .base import ModelFamily
from . import sites

#: the one guide name every baseline answers to: its own inference network.
OWN_GUIDE = "meanfield"


class FamilyCheckError(UserError):
    """A model and guide that do not run together on a batch; the message is one line."""


def _first_line(error: Exception) -> str:
    # Pyro appends a table of trace shapes to errors raised inside a trace.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class BaselineFamily(ModelFamily):
    """A family whose guide is part of the model's definition (M2's ``q(y|x) q(z|x,y)``, MVAE's
    product of experts, DIVA's ``q(z|x) q(y|z_c)``): ``--guide`` must stay ``meanfield``.

    :attr:`fast_parameters`: prefixes of the parameters of distributions (not networks) that
    learn at ``lr * config.prior_lr_factor``, as the CCVAE's conditional prior and learned
    likelihood scale do, so that the comparison trains them alike.
    """

    fast_parameters: tuple[str, ...] = ("model.likelihood.",)

    def builtin_guides(self) -> Sequence[str]:
        return (OWN_GUIDE,)

    def check_guide_name(self, guide: str) -> None:
        if guide != OWN_GUIDE:
            raise UserError(f"model {self.name!r} brings its own guide ({OWN_GUIDE!r}); --guide {guide!r} is for the ccvae")

    def check(self, model, guide, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        """Trace the guide and replay the model on its samples once; a one-line
        :class:`FamilyCheckError` if either fails."""
        try:
            guide_trace = poutine.trace(guide).get_trace(x, y, mask)
        except Exception as e:
            raise FamilyCheckError(f"the {self.name} guide failed on a batch of shape {tuple(x.shape)}: {type(e).__name__}: {_first_line(e)}") from None
        try:
            poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y, mask)
        except Exception as e:
            raise FamilyCheckError(f"the {self.name} model failed on its guide's samples: {type(e).__name__}: {_first_line(e)}") from None

    def learning_rate_factor(self, config: Any, param_name: str) -> float:
        return config.prior_lr_factor if param_name.startswith(self.fast_parameters) else 1.0


def seen_pattern(mask: torch.Tensor) -> tuple[list[bool], list[bool]]:
    """Per label, whether it is seen for every data point of the batch and for any
    (``mask [B, L]``; one host sync each): the sites a label needs depend on it."""
    return mask.all(0).tolist(), mask.any(0).tolist()


def observe_label(name: str, fn, value: torch.Tensor, seen: torch.Tensor, all_seen: bool, any_seen: bool) -> torch.Tensor:
    """The model's site(s) of a label, ``fn`` its prior: ``{name}_observed`` where it is seen and
    the latent ``{name}_unobserved`` where not, as Pyro's ``obs_mask`` splits a site (without its
    extra deterministic site, whose float32 zero log-density breaks enumeration in float64); and
    only the part that exists when the whole batch is seen or unseen (``all_seen``, ``any_seen``),
    so that a supervised batch enumerates nothing. Returns the values, unseen ones from the latent."""
    observed = unobserved = None
    if any_seen:
        with poutine.mask(mask=seen):
            observed = pyro.sample(sites.observed(name), fn, obs=value)
    if not all_seen:
        with poutine.mask(mask=~seen):
            unobserved = pyro.sample(sites.unobserved(name), fn)
    if unobserved is None:
        return observed
    return unobserved if observed is None else torch.where(seen, observed.to(unobserved.dtype), unobserved)


def guess_label(name: str, fn, value: torch.Tensor, seen: torch.Tensor, all_seen: bool, infer: Optional[dict] = None) -> torch.Tensor:
    """The guide's counterpart of :func:`observe_label`: ``{name}_unobserved ~ fn`` where the
    label is not seen (masked out where it is); returns the label's values, seen ones as given."""
    if all_seen:
        return value
    with poutine.mask(mask=~seen):
        guessed = pyro.sample(sites.unobserved(name), fn, infer=dict(infer or {}))
    return torch.where(seen, value, guessed.to(value.dtype))
