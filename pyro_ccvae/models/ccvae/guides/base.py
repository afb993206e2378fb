"""What every CCVAE guide shares: the plates, the diagonal classifier and the ``y`` site.

A guide subclasses :class:`CCVAEGuide` and implements :meth:`CCVAEGuide.sample_latents`
(sample ``z_s`` and ``z_c``, the latter inside the labels plate it is given) and :meth:`CCVAEGuide.mean`.
Neither the model nor the ELBO changes when the guide does (docs/guides.md).

The guide contract, which :func:`~pyro_ccvae.models.ccvae.guides.check_guide` enforces:

- The ``z_c`` site's distribution **is the marginal** ``q(z_c | x)``: the ELBO draws its ``K``
  extra samples for ``q(y_o | x)`` from it with ``rsample((K,))``. So it must have ``rsample``,
  its draws must differ (not a ``Delta``, as Pyro's ``AutoContinuous`` guides and a flow sampled
  jointly would expose), and it may depend on no latent site sampled before it (sample ``z_c``
  first, then ``z_s | z_c``).
- The guide's latent sites are the model's, ``z_c`` and ``z_s`` (and the enumerated
  ``y_unobserved``): a further latent has no term in ``p`` to balance its entropy, so the
  objective would grow without bound. ``log q(z | x)`` is the sum of their log-densities, per
  data point, inside the data plate. The ``z_c`` site's distribution is a function of the images:
  no randomness drawn outside a sample site (``torch.randn``, a cached joint draw) may move it.
- A guide that correlates the labels' blocks of ``z_c`` (a joint Gaussian, a flow over all of
  ``z_c``) samples it from :class:`JointOverLabels`, which lays a joint distribution over
  ``[B, L * d_c]`` out in the labels plate.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution, constraints
from pyro.nn import PyroModule

from .. import sites
from ....data.label_spec import check_num_classes
from ..model import class_padding, fill_labels, initial_class_locations


def labels_plate(num_labels: int):
    """The labels plate, nested inside the data plate (per-label sites have batch shape ``(L, B)``)."""
    return pyro.plate(sites.LABELS_PLATE, num_labels, dim=sites.LABELS_DIM)


class DiagonalClassifier(torch.nn.Module):
    """``q_varphi(y_i | z_c^i) = Categorical(logits = F_i(z_c^i))``: label ``i`` sees only its block.

    ``F_i`` is multinomial-logistic with class 0 as the reference: ``logit_0 = 0`` and
    ``logit_k = w_ik . z_c^i + b_ik`` for ``k = 1..K_i - 1``, so a binary label is exactly the
    Bernoulli classifier ``sigmoid(w_i . z_c^i + b_i)``. Labels with fewer classes than
    ``K = max K_i`` get ``-inf`` logits for the classes they lack (probability 0), so every label
    shares the labels plate.

    :param num_classes: ``K_i`` per label (default: every label binary).
    :param class_locations: ``[L, K, d_c]`` prior class means to start from (default: the
        model's :func:`~pyro_ccvae.models.ccvae.model.initial_class_locations`); the weights
        start at a quarter of the equal-variance Gaussian discriminant of those means, which for
        a binary label is ``w = 1, b = 0``.
    """

    def __init__(
        self,
        num_labels: int,
        z_char_dim: int,
        num_classes: Optional[Sequence[int]] = None,
        class_locations: Optional[torch.Tensor] = None,
    ):
        super().__init__()
        self.num_classes = check_num_classes(num_classes, num_labels)
        if class_locations is None:
            class_locations = initial_class_locations(self.num_classes, z_char_dim)
        reference = class_locations[:, :1]  # [L, 1, d_c]
        others = class_locations[:, 1:]
        self.weight = torch.nn.Parameter((others - reference) / 4)  # [L, K - 1, d_c]
        self.bias = torch.nn.Parameter(-(others.square().sum(-1) - reference.square().sum(-1)) / 8)  # [L, K - 1]
        self.register_buffer("padding", class_padding(self.num_classes), persistent=False)

    def forward(self, z_c: torch.Tensor) -> torch.Tensor:
        """``z_c [..., L, B, d_c]`` (plate layout) -> class logits ``[..., L, B, K]``."""
        logits = torch.einsum("...lbd,lkd->...lbk", z_c, self.weight) + self.bias.unsqueeze(-2)
        logits = torch.cat([torch.zeros_like(logits[..., :1]), logits], dim=-1)
        return logits + self.padding.unsqueeze(-2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs written before categorical labels stored the binary weights as [L, d_c] and [L].
        for name, dims in (("weight", 3), ("bias", 2)):
            value = state_dict.get(prefix + name)
            if value is not None and value.dim() == dims - 1:
                state_dict[prefix + name] = value.unsqueeze(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class PriorClassifier(torch.nn.Module):
    """``q(y_i | z_c^i) = p_psi(z_c^i | y_i) p(y_i) / sum_k p_psi(z_c^i | k) p(k)``: the Bayes
    classifier of the model's own conditional prior (``--label-classifier prior``).

    Classifier and conditional prior are then one object: the labels the classifier reads from
    ``z_c`` are those whose prior covers it, so a draw of ``p(z_c | y)`` is read as ``y`` by
    construction, and the classification terms of the objective move the prior itself towards the
    posteriors of the labelled points. It is a valid choice of ``q(y | z_c)``: with it each
    unobserved label's Jensen term ``J_i`` is exactly ``log sum_k p(z_c^i | k) p(k)``, the
    log-density of the prior's mixture (no Jensen gap). Label ``i`` still reads only its own block.

    The model's parameters stay the model's (they are not a submodule here, so they have one
    owner and one name in Pyro's parameter store and in checkpoints).

    :param model: a :class:`~pyro_ccvae.models.ccvae.model.CCVAEModel` (its ``conditional_prior``
        and ``label_probs``).
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.__dict__["model"] = model  # a plain attribute: not registered as a submodule

    def forward(self, z_c: torch.Tensor) -> torch.Tensor:
        """``z_c [..., L, B, d_c]`` (plate layout) -> class logits ``[..., L, B, K]`` (unnormalised:
        ``log p(z_c^i | k) + log p(k)``; ``-inf`` for the classes a label lacks)."""
        prior = self.model.conditional_prior
        loc, scale = prior.loc.unsqueeze(-3), prior.scale.unsqueeze(-3)  # [L, 1, K, d_c]
        log_p_z = dist.Normal(loc, scale).log_prob(z_c.unsqueeze(-2)).sum(-1)  # [..., L, B, K]
        return log_p_z + self.model.label_probs.log().unsqueeze(-2)


class JointOverLabels(TorchDistribution):
    """A joint ``q(z_c | x)`` over all labels' blocks, laid out in the labels plate.

    ``joint`` is any distribution with batch shape ``(B,)`` and event shape ``(L * d_c,)``, block
    ``i`` being dims ``i*d_c .. (i+1)*d_c - 1`` (e.g. a full-covariance
    :class:`~pyro.distributions.MultivariateNormal`, or a flow over all of ``z_c``). This
    distribution has batch shape ``(L, B)`` and event shape ``(d_c,)``, as the model's ``z_c``;
    ``rsample`` draws jointly. The joint does not factorise over labels, so each label's entry of
    :meth:`log_prob` holds an equal share, ``log q(z_c | x) / L``: only the sum over labels has a
    meaning, and that sum is all the ELBO and the analysis read. (The labels plate is then a
    layout for ``z_c``, not an independence claim; a per-label mask of ``z_c`` would be
    meaningless, and none is applied.)

    Like a Pyro transform with ``cache_size=1`` it remembers its last draw: the log-density of that
    draw is evaluated on the very tensor the joint produced, so a joint that caches its noise
    (a :class:`~pyro.distributions.TransformedDistribution` with cached transforms) computes it
    from that noise, not from an inverse that an ill-conditioned factor makes imprecise in float32.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, joint: dist.Distribution, num_labels: int, validate_args=None):
        if len(joint.batch_shape) != 1 or len(joint.event_shape) != 1 or joint.event_shape[0] % num_labels:
            raise ValueError(
                f"JointOverLabels needs a joint of batch shape (B,) and event shape (L * d_c,) with L = {num_labels}, "
                f"got batch {tuple(joint.batch_shape)} and event {tuple(joint.event_shape)}"
            )
        self.joint, self.num_labels = joint, num_labels
        self._last_draw: tuple = (None, None)  # (plate layout, flat), as drawn
        (batch,), (flat,) = joint.batch_shape, joint.event_shape
        super().__init__(torch.Size([num_labels, batch]), torch.Size([flat // num_labels]), validate_args=False)

    @property
    def has_rsample(self) -> bool:
        return self.joint.has_rsample

    def _to_plate(self, flat: torch.Tensor) -> torch.Tensor:
        """``[..., B, L * d_c]`` -> ``[..., L, B, d_c]``."""
        return flat.reshape(flat.shape[:-1] + (self.num_labels, -1)).transpose(-3, -2)

    def flat(self, value: torch.Tensor) -> torch.Tensor:
        """``[..., L, B, d_c]`` -> ``[..., B, L * d_c]``: for this distribution's last draw, the very
        tensor the joint drew (so the joint's caches apply)."""
        plate, flat = self._last_draw
        if value is plate:
            return flat
        return value.transpose(-3, -2).flatten(-2)

    def _remember(self, flat: torch.Tensor) -> torch.Tensor:
        plate = self._to_plate(flat)
        self._last_draw = (plate, flat)
        return plate

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._remember(self.joint.rsample(sample_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._remember(self.joint.sample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``[..., L, B]``: each label's entry is ``log q(z_c | x) / L``."""
        log_q = self.joint.log_prob(self.flat(value)) / self.num_labels  # [..., B]
        return log_q.unsqueeze(-2).expand(log_q.shape[:-1] + self.batch_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self._to_plate(self.joint.mean)

    def expand(self, batch_shape, _instance=None):
        if tuple(batch_shape) == tuple(self.batch_shape):
            return self
        raise NotImplementedError(
            f"JointOverLabels has batch shape {tuple(self.batch_shape)} and cannot be broadcast to {tuple(batch_shape)}"
        )


def label_probs(classifier: torch.nn.Module, z_c: torch.Tensor) -> torch.Tensor:
    """``q(y_i = k | z_c^i)`` for ``z_c [..., B, L, d_c]`` (data-major): ``[..., B, L, K]``."""
    return torch.softmax(classifier(z_c.transpose(-3, -2)), dim=-1).transpose(-3, -2)


def sample_labels(classifier: torch.nn.Module, z_c: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    """The guide's ``y`` sites, inside both plates: ``y ~ q(y | z_c)`` split by the label mask.

    ``y`` (class indices) and ``mask`` are in plate layout ``[L, B]``. As with Pyro's
    ``obs_mask``, the seen part is ``y_observed`` (auxiliary: it only feeds the ELBO's supervised
    terms) and the unseen part ``y_unobserved``, which the exact ELBO enumerates over the ``K``
    classes. (``pyro.sample(..., obs_mask=...)`` drops ``infer``, so the split is written out.)
    The classifier travels in the sites' ``infer`` so the ELBO can evaluate it on detached and
    extra ``z_c`` samples.
    """
    q_y = dist.Categorical(logits=classifier(z_c))
    with poutine.mask(mask=mask):
        pyro.sample(sites.Y_OBSERVED, q_y, obs=y, infer={"is_auxiliary": True, sites.CLASSIFIER: classifier})
    with poutine.mask(mask=~mask):
        pyro.sample(sites.Y_UNOBSERVED, q_y, infer={"enumerate": "parallel", sites.CLASSIFIER: classifier})


class CCVAEGuide(PyroModule):
    """Base class of the guides ``q(z | x) q(y | z_c)``.

    :param num_labels: ``L``; :param z_char_dim: ``d_c``; :param z_style_dim: ``d_s``;
    :param num_classes: ``K_i`` per label (default: every label binary).
    """

    def __init__(
        self, num_labels: int, z_char_dim: int, z_style_dim: int, num_classes: Optional[Sequence[int]] = None, **unused
    ):
        super().__init__(name="guide")
        self.num_labels, self.z_char_dim, self.z_style_dim = num_labels, z_char_dim, z_style_dim
        self.num_classes = check_num_classes(num_classes, num_labels)
        self.classifier = DiagonalClassifier(num_labels, z_char_dim, self.num_classes)

    def sample_latents(self, x: torch.Tensor, labels: pyro.plate) -> torch.Tensor:
        """Inside the data plate, sample ``z_s`` (``[B, d_s]``) and, inside the ``labels`` plate,
        ``z_c`` (``[L, B, d_c]``); return ``z_c``.

        The ``z_c`` site's distribution must be the marginal ``q(z_c | x)`` (see the module doc):
        the ELBO draws its K extra samples for ``q(y | x)`` from it. Sample ``z_c`` first if
        ``z_s`` depends on it.
        """
        raise NotImplementedError

    def mean(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``z_c [B, L, d_c]`` and ``z_s [B, d_s]`` (for analysis and classification)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``q(y_i = k | x)`` evaluated at the posterior mean of ``z_c``: ``[B, L, K]`` probabilities."""
        return label_probs(self.classifier, self.mean(x)[0])

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None):
        y, mask = fill_labels(x, y, mask, self.num_labels)
        with pyro.plate(sites.DATA_PLATE, x.shape[0], dim=sites.DATA_DIM):
            labels = labels_plate(self.num_labels)
            z_c = self.sample_latents(x, labels)
            with labels:
                sample_labels(self.classifier, z_c, y.T, mask.T)
