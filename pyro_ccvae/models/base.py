"""What a model family brings, and the representation that training and analysis talk to.

A **family** (:class:`ModelFamily`) is one folder under ``pyro_ccvae/models/`` registered by name
(``--model NAME``): its config dataclass (the ``model`` section of a run's config), its Pyro
model and guide, its objective (a Pyro ELBO) and its :class:`Representation`.

A **representation** answers for a trained model and declares which **capabilities** it has;
analysis asks for capabilities, never for a family's internals. Latents are a pair of tensors:
the characteristic part ``z_c [..., B, L, d_c]`` (one block per label) and the style part
``z_s [..., B, d_s]``. Labels are class indices per label, ``[..., B, L]`` (0/1 for a binary
label); a label ``i`` has ``num_classes[i]`` classes, and per-label class probabilities come as
``[..., B, L, K]`` with ``K = max(num_classes)`` (classes a label lacks have probability 0).

=================  ===============================================================================
``encode``         :meth:`Representation.encode`: posterior means ``(z_c, z_s)`` of images
``predict``        :meth:`~Representation.predict` / :meth:`~Representation.classify`: per-label
                   class probabilities from images / from ``z_c``
``decode``         :meth:`~Representation.decode`: the expected image of a latent
``reconstruct``    :meth:`~Representation.reconstruct`: decode(encode(x))
``sample``         :meth:`~Representation.label_prior`, :meth:`~Representation.sample_labels`,
                   :meth:`~Representation.sample_characteristic`, :meth:`~Representation.sample_style`:
                   ``y ~ p(y)``, ``z_c ~ p(z_c | y)``, ``z_s ~ p(z_s)``
``intervene``      :meth:`~Representation.intervene`: set label ``i`` to class ``k`` in ``z_c``
``swap``           characteristic and style parts may be exchanged between images (decode
                   ``z_c`` of one with ``z_s`` of another)
``traverse``       :meth:`~Representation.class_prior`: each class's prior location and scale
                   of ``z_c^i``, between which traversals run
``likelihood``     :meth:`~Representation.log_weights`, :meth:`~Representation.unsupervised_objective`:
                   importance weights for ``log p(x)`` and ``log p(x, y_o)``
=================  ===============================================================================
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import pyro
import torch

from ..errors import UserError
from .dataset_defaults import DATASET_SETTINGS, dataset_defaults

ENCODE, PREDICT, DECODE, RECONSTRUCT, SAMPLE, INTERVENE, SWAP, TRAVERSE, LIKELIHOOD = (
    "encode", "predict", "decode", "reconstruct", "sample", "intervene", "swap", "traverse", "likelihood",
)  # fmt: skip
CAPABILITIES = (ENCODE, PREDICT, DECODE, RECONSTRUCT, SAMPLE, INTERVENE, SWAP, TRAVERSE, LIKELIHOOD)


class CapabilityError(UserError):
    """A task asked a model for a capability it does not have; the message is one line."""


class Representation:
    """A trained model as training and analysis see it (see the module doc for the capabilities).

    :param family: the family's name (for messages).
    :param label_names: the labels, in order.
    :param num_classes: classes per label (2 for a binary label).
    """

    #: the capabilities this representation offers (a subclass lists its own).
    capabilities: frozenset[str] = frozenset()
    #: whether the model's design keeps ``z_s`` free of the labels, so that ``evaluate`` warns
    #: when it is not (:func:`~pyro_ccvae.analysis.metrics.style_leakage`).
    style_is_label_free: bool = True

    def __init__(self, family: str, label_names: Sequence[str], num_classes: Sequence[int]):
        self.family = family
        self.label_names = list(label_names)
        self.num_classes = list(num_classes)

    def require(self, task: str, needs: Iterable[str]) -> None:
        """A one-line :class:`CapabilityError` naming ``task`` and the first capability in
        ``needs`` that this model lacks."""
        for need in needs:
            if need not in self.capabilities:
                raise CapabilityError(
                    f"{task} needs the capability {need!r}, which model {self.family!r} does not offer "
                    f"(it offers: {', '.join(sorted(self.capabilities)) or 'none'})"
                )

    def checked_class(self, label: int, value, like: torch.Tensor) -> torch.Tensor:
        """``value`` (a class of label ``label``, or one per image ``[B]``) as a tensor of
        ``like``'s dtype and device; a one-line :class:`~pyro_ccvae.errors.UserError` naming the
        label's classes when a value is not one of them."""
        value = torch.as_tensor(value, device=like.device, dtype=like.dtype)
        classes = self.num_classes[label]
        if ((value < 0) | (value >= classes) | (value != value.round())).any():
            raise UserError(f"label {self.label_names[label]!r} has classes 0..{classes - 1}; cannot set it to {value.tolist()}")
        return value

    def _lacks(self, capability: str):
        raise CapabilityError(f"model {self.family!r} does not offer the capability {capability!r}")

    # The verbs; a family overrides those it offers.
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._lacks(ENCODE)

    def classify(self, z_c: torch.Tensor) -> torch.Tensor:
        self._lacks(PREDICT)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Per-label class probabilities ``[B, L, K]`` of images ``x``."""
        return self.classify(self.encode(x)[0])

    def decode(self, z_c: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        self._lacks(DECODE)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the expected image at the posterior means."""
        return self.decode(*self.encode(x))

    def label_prior(self) -> torch.Tensor:
        self._lacks(SAMPLE)

    def sample_labels(self, num: int, fixed: Optional[dict[int, int]] = None) -> torch.Tensor:
        self._lacks(SAMPLE)

    def sample_characteristic(self, y: torch.Tensor, sample: bool = True) -> torch.Tensor:
        self._lacks(SAMPLE)

    def sample_style(self, shape: tuple[int, ...]) -> torch.Tensor:
        self._lacks(SAMPLE)

    def intervene(self, z_c: torch.Tensor, label: int, value: Any, sample: bool = True) -> torch.Tensor:
        self._lacks(INTERVENE)

    def class_prior(self, label: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._lacks(TRAVERSE)

    def log_weights(self, x, num_samples, y=None, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        self._lacks(LIKELIHOOD)

    def unsupervised_objective(self, x: torch.Tensor) -> torch.Tensor:
        self._lacks(LIKELIHOOD)

    @property
    def likelihood_is_density(self) -> bool:
        self._lacks(LIKELIHOOD)


class LabelPriorFromModel:
    """``label_prior`` and ``sample_labels`` of a representation whose ``self.model`` holds the
    labelled class frequencies as ``label_probs [L, K]`` (every built-in family)."""

    def label_prior(self) -> torch.Tensor:
        """``p(y_i = k)`` (for a family without ``p(y)``, the labelled class frequencies): ``[L, K]``."""
        return self.model.label_probs

    def sample_labels(self, num: int, fixed: Optional[dict[int, int]] = None) -> torch.Tensor:
        """``[num, L]`` class indices: ``fixed`` columns (label -> class) set, the others drawn from :meth:`label_prior`."""
        y = torch.distributions.Categorical(probs=self.model.label_probs.to(self.device)).sample((num,)).float()
        for column, value in (fixed or {}).items():
            y[:, column] = float(value)
        return y


class ModelFamily:
    """A model family: what training needs to build, fit and save it, and its representation.

    Subclasses set :attr:`name` and :attr:`config_class` and implement the methods below.
    """

    name: str = ""
    #: the dataclass of the ``model`` section (its first field is ``name``).
    config_class: type = object

    def fill_defaults(self, config: Any, dataset: str) -> None:
        """Fill the settings left to the data set (``None``: the likelihood, the latent sizes) from
        :mod:`pyro_ccvae.models.dataset_defaults`, before the config is saved."""
        defaults = dataset_defaults(dataset)
        for name in DATASET_SETTINGS:
            if hasattr(config, name) and getattr(config, name) is None:
                setattr(config, name, getattr(defaults, name))

    def builtin_guides(self) -> Sequence[str]:
        """Guide names that load without importing a user's code (others are ``module:attr``)."""
        return ()

    def build(self, config: Any, guide: str, info: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The Pyro model and guide for ``config`` (the ``model`` section), the guide ``guide`` and
        the data's ``info`` (label names, channels, image size)."""
        raise NotImplementedError

    def guide_options(self, guide: str, options: dict) -> dict:
        """``options`` (``--guide-option NAME=VALUE``) for the guide ``guide``, typed and checked;
        a one-line ``ValueError`` for a name the guide does not take. A family whose guides take
        none (the default) refuses any."""
        if options:
            raise UserError(f"model {self.name!r} takes no --guide-option (got {', '.join(sorted(options))})")
        return {}

    def build_run(self, config) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The model and guide of a run's config (a :class:`~pyro_ccvae.config.TrainConfig`):
        :meth:`build`, with ``guide_options=`` only when the config has guide options (so a
        family whose ``build`` takes none keeps working)."""
        options = dict(config.guide.options or {})
        if not options:
            return self.build(config.model, config.guide.name, config.data.info)
        return self.build(config.model, config.guide.name, config.data.info, guide_options=options)

    def prepare(self, model: torch.nn.Module, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """Set what the model learns from the labelled training subset before training (e.g. ``p(y)``)."""

    def before_step(self, model, guide, config: Any, step: int, steps_per_epoch: int) -> None:
        """Set what changes over training (e.g. a KL warm-up) before optimiser step ``step``
        (counted from 1 over the whole run; an epoch has ``steps_per_epoch``). It must depend on
        these numbers alone, so that a resumed run continues exactly."""

    def check(self, model, guide, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
        """Check once, on a small batch, that the guide fits the model; a one-line error if not."""

    def objective(self, config: Any) -> pyro.infer.ELBO:
        """The Pyro ELBO that training optimises with :class:`pyro.infer.SVI`."""
        raise NotImplementedError

    def learning_rate_factor(self, config: Any, param_name: str) -> float:
        """How much faster than ``--lr`` the parameter ``param_name`` learns (default 1)."""
        return 1.0

    def representation(self, model, guide, info: dict, device: torch.device, config: Any = None) -> Representation:
        """The trained model's :class:`Representation` (``config``: the ``model`` section)."""
        raise NotImplementedError
