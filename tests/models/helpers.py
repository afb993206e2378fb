"""Test helpers for the model families' objectives."""
from __future__ import annotations

from pyro.poutine.messenger import Messenger


class FixLatents(Messenger):
    """Give the named guide sites fixed values while they stay latent: unlike
    ``poutine.condition`` (which makes them observed), the ELBO still reads ``log q`` at the value
    and replays it into the model, so its value at those samples can be computed by hand."""

    def __init__(self, values: dict):
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg):
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]]
