"""Correctness of the CCVAE model/guide/ELBO against hand computations (docs/objective.md).

Every expected number here is computed with ``torch.distributions`` and Python loops over data
points and labels, never through the library's vectorised code: the model/guide are used only
for their networks (``model.decode``, the encoder) and their parameters. ``B != L != d_c != d_s``
so that a transposed or mis-broadcast tensor cannot pass unnoticed.
"""
from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer import SVI
from pyro.nn import PyroParam
from pyro.optim import Adam
from torch import distributions as td
from torch.nn import functional as F

from pyro_ccvae.models.ccvae import sites
from pyro_ccvae.models.ccvae.elbo import CCVAE_ELBO, log_q_labels
from pyro_ccvae.models.ccvae.guides import GUIDES, DiagonalClassifier, PriorClassifier, tie_classifier
from pyro_ccvae.models.ccvae.model import CCVAEModel

B, L, DC, DS, CH, SIZE = 5, 3, 2, 4, 1, 32
K = 6

Y = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.float)
#: a categorical spec mixing K = 3, a binary label and K = 4 (padded classes in the plate), and labels for it
CATEGORICAL = (3, 2, 4)
Y_CATEGORICAL = torch.tensor([[2, 1, 0], [0, 1, 3], [1, 0, 2], [2, 1, 1], [0, 0, 3]], dtype=torch.float)
# a row with every label seen, a row with none, and rows in between
MIXED = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
#: name -> (y, mask) as passed to model/guide
LABEL_CASES = {
    "all_seen": lambda: (Y, None),  # eq. (4)
    "y_none": lambda: (None, None),  # eq. (5)
    "none_seen": lambda: (Y, torch.zeros(B, L, dtype=torch.bool)),  # eq. (5) via a mask
    "mixed": lambda: (Y, MIXED),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is faster, and far faster on a busy 2-core box (conftest restores it)."""
    torch.set_num_threads(1)


def effective_labels(y, mask):
    """What the maths sees: a [B, L] 0/1 tensor and a [B, L] bool mask."""
    if y is None:
        return torch.zeros(B, L), torch.zeros(B, L, dtype=torch.bool)
    return y, torch.ones(B, L, dtype=torch.bool) if mask is None else mask


#: options that make the new guides far from their mean-field start: strong correlations in
#: the full-rank factor, and splines / autoregressive layers far from the identity (below).
GUIDE_OPTIONS = {"fullrank": {"off_diagonal_scale": 20.0}}


def make(guide_name: str, dtype=torch.float64, num_classes=None):
    """Model and guide with every symmetric default broken (prior locs/scales, pi, classifier)."""
    model = CCVAEModel(L, CH, SIZE, DS, z_char_dim=DC, num_classes=num_classes)
    guide = GUIDES[guide_name](
        num_labels=L, z_char_dim=DC, z_style_dim=DS, channels=CH, image_size=SIZE, num_classes=num_classes,
        **GUIDE_OPTIONS.get(guide_name, {}),
    )  # fmt: skip
    classes = max(num_classes or (2,))
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        model.conditional_prior.loc.copy_(torch.randn(L, classes, DC, generator=g))
        if num_classes is None:
            pi = torch.tensor([0.2, 0.7, 0.45])
            model.label_probs.copy_(torch.stack([1 - pi, pi], dim=-1))
        else:
            freq = torch.rand(L, classes, generator=g) + 0.2
            freq[torch.arange(classes) >= torch.tensor(num_classes).unsqueeze(-1)] = 0
            model.label_probs.copy_(freq / freq.sum(-1, keepdim=True))
        guide.classifier.weight.copy_(0.7 * torch.randn(L, classes - 1, DC, generator=g))
        guide.classifier.bias.copy_(0.5 * torch.randn(L, classes - 1, generator=g))
        if hasattr(guide, "coupling"):
            guide.coupling.copy_(0.3 * torch.randn(DS, L * DC, generator=g))
        if hasattr(guide, "char_spline"):  # knots and slopes far from the identity
            guide.char_spline.nn.layers[-1].weight.mul_(4.0)
            guide.char_spline.nn.layers[-1].bias.copy_(torch.randn(guide.char_spline.nn.layers[-1].bias.shape, generator=g))
            for flow in guide.style_flows:
                flow.nn.layers[-1].weight.mul_(4.0)
    model.conditional_prior.scale = PyroParam(
        0.5 + torch.rand(L, classes, DC, generator=g), constraint=constraints.positive
    )
    model, guide = model.to(dtype), guide.to(dtype)
    model.label_probs /= model.label_probs.sum(-1, keepdim=True)  # a distribution in this dtype too
    return model, guide


def data(dtype=torch.float64):
    return torch.rand(B, CH, SIZE, SIZE, generator=torch.Generator().manual_seed(99)).to(dtype)


class FixedNoise:
    """Stands in for the guide trace's ``z_c`` distribution: ``rsample((K,))`` returns
    ``loc + scale * eps_k`` for fixed ``eps_k`` (still reparameterised in loc and scale)."""

    def __init__(self, base, eps):
        self.base, self.eps = base, eps

    def rsample(self, sample_shape=torch.Size()):
        assert tuple(sample_shape) == (self.eps.shape[0],)
        normal = self.base.base_dist
        return normal.loc + normal.scale * self.eps


class FixedDraws:
    """Stands in for a joint or flow guide's ``z_c`` distribution: ``rsample((K,))`` returns draws
    made once from it (reparameterised), so the hand computation can use the very same ``z_k``.
    That those draws follow the marginal ``q(z_c|x)`` is checked on its own (section 6)."""

    def __init__(self, fn, k):
        self.draws = fn.rsample((k,))

    def rsample(self, sample_shape=torch.Size()):
        assert tuple(sample_shape) == (self.draws.shape[0],)
        return self.draws


def traces(elbo, model, guide, x, y, mask, eps_k, seed=0):
    pyro.set_rng_seed(seed)
    model_trace, guide_trace = elbo._get_trace(model, guide, (x, y, mask), {})
    site = guide_trace.nodes[sites.Z_C]
    if isinstance(site["fn"], td.Independent) and isinstance(site["fn"].base_dist, td.Normal):  # a Normal per block
        site["fn"] = FixedNoise(site["fn"], eps_k)
    else:
        site["fn"] = FixedDraws(site["fn"], eps_k.shape[0])
    return model_trace, guide_trace


def hand_posterior(guide, x, z_c_value, z_s_value):
    """``z_c [B, L, DC]``, ``z_s [B, DS]`` rebuilt as ``loc + scale * eps`` with ``eps`` read from
    the trace values (so they carry the reparameterised gradients), ``log q(z|x) [B]`` and the
    marginal ``q(z_c|x)``'s ``loc_c, scale_c [B, L, DC]``."""
    z_c_value, z_s_value = z_c_value.detach(), z_s_value.detach()
    if type(guide).__name__ == "MeanFieldGuide":
        loc, scale = guide._loc_scale(x)
        loc_c, loc_s = loc[:, : L * DC].reshape(B, L, DC), loc[:, L * DC :]
        scale_c, scale_s = scale[:, : L * DC].reshape(B, L, DC), scale[:, L * DC :]
        z_c = loc_c + scale_c * ((z_c_value - loc_c) / scale_c).detach()
        z_s = loc_s + scale_s * ((z_s_value - loc_s) / scale_s).detach()
        log_q = td.Normal(loc_c, scale_c).log_prob(z_c).sum((1, 2)) + td.Normal(loc_s, scale_s).log_prob(z_s).sum(1)
    elif type(guide).__name__ == "FullRankGuide":
        z_c, z_s, log_q = hand_full_rank(guide, x, z_c_value, z_s_value)
        loc_c = scale_c = None  # no per-block Normal: the K draws are given (FixedDraws)
    elif type(guide).__name__ == "FlowGuide":
        z_c, z_s, log_q = hand_flow(guide, x, z_c_value, z_s_value)
        loc_c = scale_c = None
    else:  # LowRankGuide: z_s | z_c ~ N(loc_s + A (z_c - loc_c), U U^T + D), checked as a full MVN
        loc_c, scale_c, loc_s, diag, factor = guide._params(x)
        z_c = loc_c + scale_c * ((z_c_value - loc_c) / scale_c).detach()
        z_s = z_s_value
        mean_s = loc_s + (z_c - loc_c).reshape(B, L * DC) @ guide.coupling.T
        cov = factor @ factor.transpose(-1, -2) + torch.diag_embed(diag)
        log_q = td.Normal(loc_c, scale_c).log_prob(z_c).sum((1, 2)) + td.MultivariateNormal(mean_s, cov).log_prob(z_s)
    assert torch.allclose(z_c, z_c_value, rtol=1e-9, atol=1e-9)
    assert torch.allclose(z_s, z_s_value, rtol=1e-9, atol=1e-9)
    return z_c, z_s, log_q, loc_c, scale_c


def hand_full_rank(guide, x, z_c_value, z_s_value):
    """``z = (z_c, z_s) ~ MVN(mu, S S^T)`` as one vector: ``log q(z|x)`` by torch's MVN from the
    covariance (its own Cholesky), ``z = mu + S eps`` with ``eps`` read back from the values."""
    loc, tril = guide.loc_scale_tril(x)  # the encoder's output as the guide's documented (mu, S)
    assert torch.equal(tril, tril.tril()) and (torch.diagonal(tril, dim1=-2, dim2=-1) > 0).all()
    z_value = torch.cat([z_c_value.reshape(B, L * DC), z_s_value], dim=-1)
    eps = torch.linalg.solve(tril, (z_value - loc).unsqueeze(-1)).squeeze(-1).detach()
    z = loc + (tril @ eps.unsqueeze(-1)).squeeze(-1)
    log_q = td.MultivariateNormal(loc, covariance_matrix=tril @ tril.transpose(-1, -2)).log_prob(z)
    return z[:, : L * DC].reshape(B, L, DC), z[:, L * DC :], log_q


def invert_monotone(f, y, low=-60.0, high=60.0, steps=200):
    """``x`` with ``f(x) = y`` for an elementwise increasing ``f``, by bisection (float64)."""
    low, high = torch.full_like(y, low), torch.full_like(y, high)
    with torch.no_grad():
        for _ in range(steps):
            middle = (low + high) / 2
            below = f(middle) < y
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    return (low + high) / 2


def invert_triangular(f, y, dim, steps=None):
    """``x`` with ``f(x) = y`` for an autoregressive ``f`` (output ``i`` increasing and affine in
    input ``i`` given the inputs before it, in some order): Newton steps on the diagonal of the
    Jacobian; each step makes one more coordinate exact, so ``dim`` steps suffice."""
    x = y.clone()
    for _ in range(steps or dim + 2):
        diag = torch.diagonal(jacobian_rows(f, x), dim1=-2, dim2=-1)
        x = (x - (f(x) - y) / diag).detach()
    return x


def jacobian_rows(f, x, create_graph=False):
    """``d f(x)_b / d x_b`` for every row ``b`` of ``x [B, D]`` (the map acts row by row): ``[B, D, D]``
    (``create_graph``: differentiable in ``f``'s parameters)."""
    full = torch.autograd.functional.jacobian(f, x, create_graph=create_graph)  # [B, D, B, D]
    return torch.stack([full[b, :, b] for b in range(x.shape[0])])


def hand_flow(guide, x, z_c_value, z_s_value):
    """The flow guide by the change of variables, with the guide's transforms used only as
    functions: their inverses by bisection / Newton, their Jacobians by autograd (not Pyro's
    log-determinants), the standard-Normal base by torch."""
    loc_c, scale_c, context_c, loc_s, scale_s, context_s = guide._params(x)
    spline = guide.characteristic_posterior(loc_c, scale_c, context_c).transforms[0]  # plate layout
    def char_map(eps):  # [B, L, DC] -> the standardised z_c
        return spline(eps.transpose(0, 1)).transpose(0, 1)
    u_value = ((z_c_value - loc_c) / scale_c).detach()
    eps_c = invert_monotone(char_map, u_value)
    torch.testing.assert_close(char_map(eps_c), u_value, rtol=1e-9, atol=1e-9)
    # elementwise: d u / d eps, differentiable in the spline's parameters (the log-density's gradient)
    slope = torch.autograd.functional.jacobian(lambda e: char_map(e).sum(0), eps_c, create_graph=True)
    slope = torch.stack([slope[:, :, b, :, :] for b in range(B)])  # [B, L, DC, L, DC]
    slope = torch.einsum("blclc->blc", slope)
    u = char_map(eps_c)  # reparameterised: carries the spline's and the encoder's gradients
    z_c = loc_c + scale_c * u
    log_q_c = (td.Normal(0.0, 1.0).log_prob(eps_c) - slope.log() - scale_c.log()).sum((1, 2))

    def layers(standardised):  # the autoregressive layers (the affine one is applied below)
        flow = guide.style_posterior(torch.zeros_like(loc_s), torch.ones_like(scale_s), context_s, standardised)
        return flow.transforms[:-1]

    def style_map(eps, standardised):
        for transform in layers(standardised):
            eps = transform(eps)
        return eps

    v_value = ((z_s_value - loc_s) / scale_s).detach()
    context = u.flatten(1)
    eps_s = v_value
    for transform in reversed(layers(context.detach())):  # each layer is triangular in its own order
        eps_s = invert_triangular(transform, eps_s, DS)
    torch.testing.assert_close(style_map(eps_s, context.detach()), v_value, rtol=1e-9, atol=1e-9)
    log_det = torch.linalg.slogdet(jacobian_rows(lambda e: style_map(e, context), eps_s, create_graph=True))[1]
    z_s = loc_s + scale_s * style_map(eps_s, context)
    log_q_s = td.Normal(0.0, 1.0).log_prob(eps_s).sum(1) - log_det - scale_s.log().sum(1)
    return z_c, z_s, log_q_c + log_q_s


def hand_elbo(
    model, guide, x, y, mask, z_c, z_s, log_q_z, loc_c, scale_c, eps_k, detach=True, y_sampled=None,
    detach_denominator=False, alpha=1.0, z_k=None, tied=False, detach_weight=False,
):
    """The CCVAE bound per data point, label by label (docs/objective.md).

    ``eps_k [K, L, B, DC]`` (plate layout, as drawn for :class:`FixedNoise`), or the draws ``z_k``
    themselves (plate layout, from :class:`FixedDraws`); ``y_sampled [B, L]``
    replaces the exact Jensen term by the sampled one; ``detach`` stops gradients into ``z_c``
    through the classifier in the supervised terms (eq. 8); ``detach_denominator`` stops them
    through ``q(y_o|x)`` in the weight, ``detach_weight`` through the whole weight, and ``alpha``
    weighs ``log q(y_o|x)``. ``tied``: ``q(y_i|z)`` is Bayes' rule on the conditional prior,
    ``p(z|y_i) p(y_i) / sum_k p(z|k) p(k)`` (``--label-classifier prior``).
    """
    pi = model.label_probs  # [L, K]
    prior_loc, prior_scale = model.conditional_prior.loc, model.conditional_prior.scale  # [L, K, DC]
    if not tied:
        w_cls, b_cls = guide.classifier.weight, guide.classifier.bias  # [L, K - 1, DC], [L, K - 1]
    log_px = td.Laplace(model.decode(z_c, z_s), 1.0).log_prob(x).sum((1, 2, 3))
    log_pzs = td.Normal(0.0, 1.0).log_prob(z_s).sum(1)
    num_classes = model.num_classes

    def log_q_y(i, v, z):  # q(y_i = v | z_c^i = z)
        if tied:
            joint = [log_p_z(i, k, z) + log_p_y(i, k) for k in range(num_classes[i])]
            return joint[v] - torch.logsumexp(torch.stack(joint), 0)
        if num_classes[i] == 2:  # the paper's Bernoulli classifier, sigmoid(w . z + b)
            logit = (w_cls[i, 0] * z).sum() + b_cls[i, 0]
            return F.logsigmoid(logit) if v == 1 else F.logsigmoid(-logit)
        # multinomial logistic over the label's own K_i classes, class 0 the reference
        logits = [torch.zeros((), dtype=z.dtype)] + [(w_cls[i, k - 1] * z).sum() + b_cls[i, k - 1] for k in range(1, num_classes[i])]
        logits = torch.stack(logits)
        return logits[v] - torch.logsumexp(logits, 0)

    def log_p_z(i, v, z):
        return td.Normal(prior_loc[i, v], prior_scale[i, v]).log_prob(z).sum()

    def log_p_y(i, v):
        if num_classes[i] == 2:
            return torch.log(pi[i, 1]) if v == 1 else torch.log1p(-pi[i, 1])
        return torch.log(pi[i, v])

    out = []
    for b in range(B):
        seen = [i for i in range(L) if mask[b, i]]
        unseen = [i for i in range(L) if not mask[b, i]]
        lab = {i: int(y[b, i]) for i in seen}
        z_cls = z_c[b].detach() if detach else z_c[b]
        main = log_px[b] + log_pzs[b] - log_q_z[b]
        for i in seen:
            main = main + log_p_z(i, lab[i], z_c[b, i]) - log_q_y(i, lab[i], z_cls[i])
        for i in unseen:
            if y_sampled is None:  # J_i, exactly
                for v in range(num_classes[i]):
                    lq = log_q_y(i, v, z_c[b, i])
                    main = main + lq.exp() * (log_p_z(i, v, z_c[b, i]) + log_p_y(i, v) - lq)
            else:
                v = int(y_sampled[b, i])
                main = main + log_p_z(i, v, z_c[b, i]) + log_p_y(i, v) - log_q_y(i, v, z_c[b, i])
        if not seen:  # eq. (5): no weight, no q(y_o|x)
            out.append(main)
            continue
        per_k = []
        for k in range(eps_k.shape[0]):
            z_kb = loc_c[b] + scale_c[b] * eps_k[k, :, b] if z_k is None else z_k[k, :, b]  # [L, DC]
            per_k.append(sum(log_q_y(i, lab[i], z_kb[i]) for i in seen))
        log_q_y_x = torch.logsumexp(torch.stack(per_k), 0) - math.log(len(per_k))
        denominator = log_q_y_x.detach() if detach_denominator else log_q_y_x
        weight = torch.exp(sum(log_q_y(i, lab[i], z_cls[i]) for i in seen) - denominator)
        weight = weight.detach() if detach_weight else weight
        out.append(weight * main + alpha * log_q_y_x + sum(log_p_y(i, lab[i]) for i in seen))
    return torch.stack(out)


def hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, detach=True, sampled=False, **options):
    z_c_value = guide_trace.nodes[sites.Z_C]["value"].transpose(0, 1)  # plate layout -> [B, L, DC]
    z_s_value = guide_trace.nodes[sites.Z_S]["value"]
    y_sampled = guide_trace.nodes[sites.Y_UNOBSERVED]["value"].T if sampled else None
    post = hand_posterior(guide, x, z_c_value, z_s_value)
    y_eff, mask_eff = effective_labels(y, mask)
    fn = guide_trace.nodes[sites.Z_C]["fn"]
    z_k = fn.draws if isinstance(fn, FixedDraws) else None
    return hand_elbo(model, guide, x, y_eff, mask_eff, *post, eps_k, detach=detach, y_sampled=y_sampled, z_k=z_k, **options)


def cast(y, mask, dtype=torch.float64):
    return (None if y is None else y.to(dtype)), mask


# --- 1. values: eq. (4), eq. (5), mixed masks, both estimators, both guides ---------------------


@pytest.mark.parametrize("jensen", ["exact", "sampled"])
@pytest.mark.parametrize("case", list(LABEL_CASES))
@pytest.mark.parametrize("guide_name", ["meanfield", "lowrank", "fullrank", "flow"])
def test_per_datum_elbo_matches_hand_computation(guide_name, case, jensen):
    model, guide = make(guide_name)
    x = data()
    y, mask = cast(*LABEL_CASES[case]())
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K, jensen=jensen)
    model_trace, guide_trace = traces(elbo, model, guide, x, y, mask, eps_k)
    got = elbo.per_datum_elbo(model_trace, guide_trace)
    want = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, sampled=jensen == "sampled")
    assert got.shape == (B,) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("case", ["y_none", "none_seen", "mixed"])
def test_unobserved_points_have_no_weight_and_no_q_y_given_x(case):
    """With no label seen, w = 1 and log q(y_o|x) = 0: the K samples cannot matter. Where a label
    is seen they must."""
    model, guide = make("meanfield")
    x = data()
    y, mask = cast(*LABEL_CASES[case]())
    _, mask_eff = effective_labels(y, mask)
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K)
    model_trace, guide_trace = traces(elbo, model, guide, x, y, mask, eps_k)
    before = elbo.per_datum_elbo(model_trace, guide_trace)
    site = guide_trace.nodes[sites.Z_C]
    site["fn"] = FixedNoise(site["fn"].base, 10 * eps_k + 3)
    after = elbo.per_datum_elbo(model_trace, guide_trace)
    none_seen = ~mask_eff.any(1)
    assert none_seen.any()
    assert torch.equal(before[none_seen], after[none_seen])
    assert (before[~none_seen] != after[~none_seen]).all()


@pytest.mark.parametrize("jensen", ["exact", "sampled"])
@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_categorical_elbo_matches_hand_computation(case, jensen):
    """K = 3 and K = 4 labels beside a binary one (d_c = 2): the same bound, with J_i summed over
    each label's own classes and the padded classes of the shorter labels contributing nothing."""
    model, guide = make("meanfield", num_classes=CATEGORICAL)
    x = data()
    y, mask = LABEL_CASES[case]()
    y = None if y is None else Y_CATEGORICAL.double()
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K, jensen=jensen)
    model_trace, guide_trace = traces(elbo, model, guide, x, y, mask, eps_k)
    got = elbo.per_datum_elbo(model_trace, guide_trace)
    want = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, sampled=jensen == "sampled")
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-9)
    if jensen == "exact":  # every gradient is finite, padded classes included
        names, params = _params(model, guide)
        for name, grad in zip(names, _grads(-got.sum(), params)):
            assert torch.isfinite(grad).all(), name


# --- the classifier tied to the prior (--label-classifier prior) and the detached weight ----------


def _tied(guide_name="meanfield", num_classes=None):
    model, guide = make(guide_name, num_classes=num_classes)
    tie_classifier(guide, model)
    return model, guide


def test_prior_classifier_is_bayes_rule_on_the_conditional_prior():
    """Each label's class probabilities are ``p(z|k) p(k)`` normalised over its own classes (the
    padded classes of the shorter labels at 0), computed point by point with torch.distributions."""
    model, guide = _tied(num_classes=CATEGORICAL)
    z = torch.randn(L, B, DC, dtype=torch.float64)
    got = torch.softmax(guide.classifier(z), -1)
    loc, scale, pi = model.conditional_prior.loc, model.conditional_prior.scale, model.label_probs
    for i, k_i in enumerate(CATEGORICAL):
        for b in range(B):
            joint = torch.stack([td.Normal(loc[i, k], scale[i, k]).log_prob(z[i, b]).sum() + pi[i, k].log() for k in range(k_i)])
            want = torch.zeros(max(CATEGORICAL), dtype=torch.float64)
            want[:k_i] = torch.softmax(joint, 0)
            torch.testing.assert_close(got[i, b], want, rtol=1e-10, atol=1e-12)


def test_prior_classifier_keeps_the_prior_parameters_the_models():
    """The tied classifier owns no parameter: the prior's live in the model alone (one name in
    Pyro's parameter store and in a checkpoint), and the guide's state has no classifier left."""
    model, guide = _tied()
    assert isinstance(guide.classifier, PriorClassifier)
    assert not [n for n in guide.state_dict() if "classifier" in n or "conditional_prior" in n]
    pyro.clear_param_store()
    x = data()
    elbo = CCVAE_ELBO(k_samples=K)
    SVI(model, guide, Adam({"lr": 1e-3}), elbo).step(x, Y.double())
    names = list(pyro.get_param_store().keys())
    assert "model.conditional_prior.loc" in names and "model.conditional_prior.scale" in names
    assert not [n for n in names if n.startswith("guide.") and ("conditional_prior" in n or "classifier" in n)]


def test_tie_classifier_refuses_a_guide_without_a_classifier_module():
    model, _ = make("meanfield")
    with pytest.raises(ValueError, match="has no 'classifier' module"):
        tie_classifier(torch.nn.Linear(1, 1), model)


@pytest.mark.parametrize("num_classes", [None, CATEGORICAL], ids=["binary", "categorical"])
@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_tied_classifier_elbo_and_gradients_match_hand_computation(case, num_classes):
    """The bound with ``q(y|z_c)`` tied to the prior, and every gradient (encoder, decoder, the
    prior's locations and scales, which now also receive the classification terms' gradients),
    with the whole weight detached as the default objective does, and without."""
    model, guide = _tied(num_classes=num_classes)
    x = data()
    y, mask = cast(*LABEL_CASES[case]())
    if y is not None and num_classes is not None:
        y = Y_CATEGORICAL.double()
    names, params = _params(model, guide)
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    model_trace, guide_trace = traces(CCVAE_ELBO(k_samples=K), model, guide, x, y, mask, eps_k)
    for detach_weight in (False, True):
        elbo = CCVAE_ELBO(k_samples=K, detach_weight=detach_weight, classifier_weight=5.0)
        got = elbo.per_datum_elbo(model_trace, guide_trace)
        want = hand_from_traces(
            model, guide, x, y, mask, model_trace, guide_trace, eps_k, tied=True, detach_weight=detach_weight, alpha=5.0
        )  # fmt: skip
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-9)
        for name, a, b in zip(names, _grads(-got.sum(), params), _grads(-want.sum(), params)):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name}: {m}")
        prior = [g for n, g in zip(names, _grads(-got.sum(), params)) if n.startswith("model.conditional_prior")]
        assert prior and all(g.abs().max() > 0 for g in prior)


def test_tied_classifier_jensen_term_is_the_log_density_of_the_prior_mixture():
    """With ``q(y|z_c)`` the prior's own posterior there is no Jensen gap: an unseen label's term
    is ``log sum_k p(z_c|k) p(k)`` exactly."""
    model, guide = _tied()
    x = data()
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    model_trace, guide_trace = traces(CCVAE_ELBO(k_samples=K), model, guide, x, None, None, eps_k)
    got = CCVAE_ELBO(k_samples=K).per_datum_elbo(model_trace, guide_trace)
    z_c = guide_trace.nodes[sites.Z_C]["value"]  # [L, B, DC]
    loc, scale, pi = model.conditional_prior.loc, model.conditional_prior.scale, model.label_probs
    mixture = torch.stack([
        td.Normal(loc[:, k].unsqueeze(1), scale[:, k].unsqueeze(1)).log_prob(z_c).sum(-1) + pi[:, k].log().unsqueeze(1)
        for k in range(2)
    ]).logsumexp(0).sum(0)  # [B]
    rest = (
        model_trace.nodes[sites.X]["unscaled_log_prob"] + model_trace.nodes[sites.Z_S]["unscaled_log_prob"]
        - guide_trace.nodes[sites.Z_S]["unscaled_log_prob"] - guide_trace.nodes[sites.Z_C]["unscaled_log_prob"].sum(0)
    )  # fmt: skip
    torch.testing.assert_close(got, rest + mixture, rtol=1e-10, atol=1e-9)


def test_binary_parameters_of_earlier_runs_load_into_the_categorical_layout():
    """Runs written before categorical labels saved ``p(y_i = 1)`` as ``[L]`` and the classifier
    as ``[L, d_c]`` and ``[L]``; they load into ``[L, 2]``, ``[L, 1, d_c]`` and ``[L, 1]`` and give
    the same bound (which :func:`test_per_datum_elbo_matches_hand_computation` checks against the
    Bernoulli form, logsigmoid and ``log1p(-pi)``)."""
    model, guide = make("meanfield")
    old_model = {k: v.clone() for k, v in model.state_dict().items()}
    old_model["label_probs"] = old_model["label_probs"][:, 1]
    old_guide = {k: v.clone() for k, v in guide.state_dict().items()}
    old_guide["classifier.weight"] = old_guide["classifier.weight"][:, 0]
    old_guide["classifier.bias"] = old_guide["classifier.bias"][:, 0]
    fresh_model, fresh_guide = make("meanfield")
    with torch.no_grad():
        fresh_guide.classifier.weight.zero_()
        fresh_model.label_probs.fill_(0.5)
    fresh_model.load_state_dict(old_model)
    fresh_guide.load_state_dict(old_guide)
    x = data()
    y, mask = cast(*LABEL_CASES["mixed"]())
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K)
    want = elbo.per_datum_elbo(*traces(elbo, model, guide, x, y, mask, eps_k))
    got = elbo.per_datum_elbo(*traces(elbo, fresh_model, fresh_guide, x, y, mask, eps_k))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)


# --- 2. the exact Jensen term is the mean of the sampled estimator ------------------------------


def test_exact_jensen_is_the_mean_of_the_sampled_estimator():
    model, guide = make("meanfield")
    x = data()
    full = poutine.trace(guide).get_trace(x, None, None)
    partial = poutine.Trace()
    for name in (sites.Z_C, sites.Z_S):
        partial.add_node(name, **full.nodes[name])
    fixed_z = poutine.replay(guide, trace=partial)
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)

    exact = CCVAE_ELBO(k_samples=K, jensen="exact")
    mt, gt = traces(exact, model, fixed_z, x, None, None, eps_k)
    assert torch.equal(gt.nodes[sites.Z_C]["value"], full.nodes[sites.Z_C]["value"])
    exact_value = exact.per_datum_elbo(mt, gt).detach()
    hand = hand_from_traces(model, guide, x, None, None, mt, gt, eps_k).detach()
    torch.testing.assert_close(exact_value, hand, rtol=1e-10, atol=1e-9)

    sampled = CCVAE_ELBO(k_samples=K, jensen="sampled")
    n = 500
    draws = []
    with torch.no_grad():
        for i in range(n):
            mt, gt = sampled._get_trace(model, fixed_z, (x, None, None), {})
            draws.append(sampled.per_datum_elbo(mt, gt))
    draws = torch.stack(draws)  # [n, B]
    mean, se = draws.mean(0), draws.std(0) / n**0.5
    assert (se > 0).all()
    # Sensitive enough to see a missing log p(y) (>= 0.36 per label here) or a wrong q(y|z) weighting.
    assert (4 * se < 0.5).all(), se
    assert ((mean - exact_value).abs() < 4 * se).all(), (mean - exact_value, se)


# --- 3. the K-sample estimate of log q(y_o|x) against quadrature --------------------------------


def _gauss_hermite_expectation(mu, sigma, f, n=120):
    """E_{N(mu, sigma)}[f(z)] for 1-D z, by Gauss-Hermite quadrature (float64 numpy)."""
    nodes, weights = np.polynomial.hermite.hermgauss(n)
    return (weights * f(mu + math.sqrt(2) * sigma * nodes)).sum() / math.sqrt(math.pi)


def test_log_q_labels_converges_to_quadrature():
    mu = torch.tensor([[0.3, 0.2, 1.2], [-0.5, 0.9, 0.1]], dtype=torch.float64)  # [L=2, B=3]
    sigma = torch.tensor([[1.2, 1.6, 1.5], [0.9, 1.1, 0.6]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    seen = torch.tensor([[True, True, False], [True, False, False]])  # point 2: no seen label
    w, bias = np.array([2.0, -1.5]), np.array([0.3, -0.2])
    classifier = DiagonalClassifier(2, 1).double()
    with torch.no_grad():
        classifier.weight.copy_(torch.from_numpy(w).reshape(2, 1, 1))
        classifier.bias.copy_(torch.from_numpy(bias).unsqueeze(-1))

    def q(i, b):  # q(y_ib | z) as a function of z
        sign = 1.0 if y[i, b] == 1 else -1.0
        return lambda z: 1.0 / (1.0 + np.exp(-sign * (w[i] * z + bias[i])))

    # E[f], E[f^2], E[log f] for f(z) = prod_{i seen} q(y_i | z_i), z_i independent.
    log_ef, var_ratio, e_log_f = np.zeros(3), np.zeros(3), np.zeros(3)
    for b in range(3):
        ef, ef2 = 1.0, 1.0
        for i in range(2):
            if seen[i, b]:
                m, s = float(mu[i, b]), float(sigma[i, b])
                ef *= _gauss_hermite_expectation(m, s, q(i, b))
                ef2 *= _gauss_hermite_expectation(m, s, lambda z: q(i, b)(z) ** 2)
                e_log_f[b] += _gauss_hermite_expectation(m, s, lambda z: np.log(q(i, b)(z)))
        log_ef[b], var_ratio[b] = math.log(ef), ef2 / ef**2 - 1
    exact = torch.from_numpy(log_ef)

    def estimate(k):
        reps = 1000 if k > 100 else 4000
        q_z_c = td.Normal(mu.repeat(1, reps).unsqueeze(-1), sigma.repeat(1, reps).unsqueeze(-1))
        out = log_q_labels(classifier, td.Independent(q_z_c, 1), y.repeat(1, reps), seen.repeat(1, reps), k)
        return out.detach().reshape(reps, 3)

    for k in (1, 10, 1000):
        est = estimate(k)
        assert torch.equal(est[:, 2], torch.zeros(len(est), dtype=torch.float64))
        mean, se = est[:, :2].mean(0), est[:, :2].std(0) / len(est) ** 0.5
        if k == 1:  # log of a single sample: E[log f] exactly
            torch.testing.assert_close(mean, torch.from_numpy(e_log_f[:2]), rtol=0, atol=float(4 * se.max()))
            continue
        # O(1/K) bias, to first order -Var[f] / (2 K E[f]^2)
        predicted = torch.from_numpy(-var_ratio[:2] / (2 * k))
        bias = mean - exact[:2]
        assert ((bias - predicted).abs() < 4 * se + 0.25 * predicted.abs()).all(), (k, bias, predicted, se)
        if k == 1000:
            assert (bias.abs() < 0.01).all()
        else:
            assert (bias + 4 * se < 0).all()  # the K=10 bias is really there: the check above has power


# --- 4. gradients (eq. 8) -----------------------------------------------------------------------


def _params(model, guide):
    named = [("model." + n, p) for n, p in model.named_parameters()]
    named += [("guide." + n, p) for n, p in guide.named_parameters()]
    return [n for n, _ in named], [p for _, p in named]


def _grads(loss, params):
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _traced_case(case):
    """The mean-field model and guide traced once on a label case, with their named parameters."""
    model, guide = make("meanfield")
    x = data()
    y, mask = cast(*LABEL_CASES[case]())
    names, params = _params(model, guide)
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    model_trace, guide_trace = traces(CCVAE_ELBO(k_samples=K), model, guide, x, y, mask, eps_k)
    return model, guide, x, y, mask, names, params, eps_k, model_trace, guide_trace


@pytest.mark.parametrize("case", ["all_seen", "mixed"])
def test_gradients_match_the_eq8_surrogate(case):
    model, guide, x, y, mask, names, params, eps_k, model_trace, guide_trace = _traced_case(case)

    def library(detach):
        elbo = CCVAE_ELBO(k_samples=K, detach_classifier_input=detach)
        return _grads(-elbo.per_datum_elbo(model_trace, guide_trace).sum(), params)

    def hand(detach):
        value = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, detach=detach)
        return _grads(-value.sum(), params)

    lib_on, hand_on, lib_off, hand_off = library(True), hand(True), library(False), hand(False)
    for name, a, b, c, d in zip(names, lib_on, hand_on, lib_off, hand_off):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name} (detached): {m}")
        torch.testing.assert_close(c, d, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name} (not detached): {m}")
    # every parameter learns something, and the detach switch is visible in the encoder's gradients
    for name, g in zip(names, lib_on):
        assert g.abs().max() > 0, name
    encoder = [i for i, n in enumerate(names) if n.startswith("guide.encoder")]
    diff = max(float((lib_on[i] - lib_off[i]).abs().max()) for i in encoder)
    scale = max(float(lib_on[i].abs().max()) for i in encoder)
    assert diff > 1e-4 * scale
    # the decoder and the prior do not see the switch
    for i, n in enumerate(names):
        if n.startswith("model."):
            torch.testing.assert_close(lib_on[i], lib_off[i], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("case", ["all_seen", "mixed", "none_seen"])
def test_detached_denominator_and_classifier_weight_match_the_hand_surrogate(case):
    """Value and every gradient of ``w_sg * main + alpha log q(y_o|x) + log p(y_o)``, where
    ``w_sg`` stops the gradient through ``q(y_o|x)``; at ``alpha = 1`` the value is the bound."""
    model, guide, x, y, mask, names, params, eps_k, model_trace, guide_trace = _traced_case(case)
    alpha = 7.0
    elbo = CCVAE_ELBO(k_samples=K, detach_weight_denominator=True, classifier_weight=alpha)
    value = elbo.per_datum_elbo(model_trace, guide_trace)
    hand = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, detach_denominator=True, alpha=alpha)
    torch.testing.assert_close(value, hand, rtol=1e-9, atol=1e-9)
    for name, a, b in zip(names, _grads(-value.sum(), params), _grads(-hand.sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg=lambda m: f"{name}: {m}")
    bound = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k)
    detached_only = CCVAE_ELBO(k_samples=K, detach_weight_denominator=True).per_datum_elbo(model_trace, guide_trace)
    torch.testing.assert_close(detached_only, bound, rtol=1e-9, atol=1e-9)


def test_classifier_and_encoder_learn_from_log_q_y_given_x_alone():
    model, guide = make("meanfield")
    x = data()
    loc, scale = guide._loc_scale(x)
    loc_c, scale_c = loc[:, : L * DC].reshape(B, L, DC), scale[:, : L * DC].reshape(B, L, DC)
    q_z_c = td.Independent(td.Normal(loc_c.transpose(0, 1), scale_c.transpose(0, 1)), 1)
    value = log_q_labels(guide.classifier, q_z_c, Y.double().T, MIXED.T, 50)
    g_w, g_b, g_loc = torch.autograd.grad(value.sum(), [guide.classifier.weight, guide.classifier.bias, loc])
    assert (g_w.abs() > 0).all() and (g_b.abs() > 0).all()
    g_loc_c, g_loc_s = g_loc[:, : L * DC].reshape(B, L, DC), g_loc[:, L * DC :]
    assert (g_loc_c[MIXED].abs() > 0).all()  # seen labels pull on their own block ...
    assert (g_loc_c[~MIXED] == 0).all()  # ... and on nothing else
    assert (g_loc_s == 0).all()


@pytest.mark.parametrize("detach", [True, False])
def test_main_term_classifier_gives_no_gradient_to_z_c_when_detached(detach):
    """The classifier terms of the main term (the weight's numerator, -log q(y_o|z_c)) are the only
    readers of the z_c *value* in per_datum_elbo (the decoder/prior/guide log-densities were
    computed in the traces): with z_c's value swapped for a fresh leaf, its gradient isolates them."""
    model, guide = make("meanfield")
    x = data()
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K, detach_classifier_input=detach)
    model_trace, guide_trace = traces(elbo, model, guide, x, Y.double(), MIXED, eps_k)
    leaf = guide_trace.nodes[sites.Z_C]["value"].detach().clone().requires_grad_()
    guide_trace.nodes[sites.Z_C]["value"] = leaf
    (g,) = torch.autograd.grad(elbo.per_datum_elbo(model_trace, guide_trace).sum(), [leaf], allow_unused=True)
    if detach:
        assert g is None or (g == 0).all()
    else:
        assert (g[MIXED.T].abs() > 0).all()  # reparameterised variant: seen labels do get gradient


# --- 5. loss / differentiable_loss / loss_and_grads agree; SVI steps ----------------------------


@pytest.mark.parametrize("case", ["y_none", "all_seen", "mixed"])
@pytest.mark.parametrize("jensen", ["exact", "sampled"])
@pytest.mark.parametrize("guide_name", ["meanfield", "lowrank", "fullrank", "flow"])
def test_loss_entry_points_agree_and_svi_steps(guide_name, jensen, case):
    model, guide = make(guide_name, dtype=torch.float32)
    x = data(torch.float32)
    y, mask = LABEL_CASES[case]()
    elbo = CCVAE_ELBO(k_samples=K, jensen=jensen)
    params = list(model.parameters()) + list(guide.parameters())

    pyro.set_rng_seed(5)
    loss = elbo.loss(model, guide, x, y, mask)
    pyro.set_rng_seed(5)
    diff = elbo.differentiable_loss(model, guide, x, y, mask)
    expected_grads = _grads(diff, params)
    pyro.set_rng_seed(5)
    for p in params:
        p.grad = None
    loss_and_grads = elbo.loss_and_grads(model, guide, x, y, mask)
    pyro.set_rng_seed(5)
    module_loss = elbo(model, guide)(x, y, mask)
    assert isinstance(loss, float) and isinstance(loss_and_grads, float) and math.isfinite(loss)
    assert loss == pytest.approx(diff.item(), rel=1e-6)
    assert loss_and_grads == pytest.approx(loss, rel=1e-6)
    assert module_loss.item() == pytest.approx(loss, rel=1e-6)
    for p, g in zip(params, expected_grads):
        torch.testing.assert_close(p.grad if p.grad is not None else torch.zeros_like(p), g)
    pyro.set_rng_seed(6)
    assert elbo.loss(model, guide, x, y, mask) != loss  # a new seed is a new sample

    before = {n: p.detach().clone() for n, p in _named(model, guide)}
    svi = SVI(model, guide, Adam({"lr": 1e-2}), elbo)
    step_loss = svi.step(x, y, mask)
    assert math.isfinite(step_loss)
    changed = {n for n, p in _named(model, guide) if not torch.equal(p.detach(), before[n])}
    assert changed == set(before), set(before) - changed


def test_loss_carries_the_data_scale():
    """A scale on the data (poutine.scale, as a plate's subsampling would set) multiplies the loss."""
    model, guide = make("meanfield", dtype=torch.float32)
    x = data(torch.float32)
    elbo = CCVAE_ELBO(k_samples=K)
    pyro.set_rng_seed(3)
    plain = elbo.loss(model, guide, x, Y, MIXED)
    pyro.set_rng_seed(3)
    scaled = elbo.loss(poutine.scale(model, scale=7.0), poutine.scale(guide, scale=7.0), x, Y, MIXED)
    assert scaled == pytest.approx(7.0 * plain, rel=1e-5)


def _named(model, guide):
    return [("model." + n, p) for n, p in model.named_parameters()] + [
        ("guide." + n, p) for n, p in guide.named_parameters()
    ]


# --- 6. the joint guides: gradients, and the z_c site is the marginal q(z_c|x) -------------------


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("guide_name", ["fullrank", "flow"])
def test_joint_guide_gradients_match_the_hand_computation(guide_name, detach):
    """Every parameter's gradient, the encoder's through the Cholesky factor or the flows included."""
    model, guide = make(guide_name)
    x = data()
    y, mask = cast(*LABEL_CASES["mixed"]())
    eps_k = torch.randn(K, L, B, DC, dtype=torch.float64)
    elbo = CCVAE_ELBO(k_samples=K, detach_classifier_input=detach)
    model_trace, guide_trace = traces(elbo, model, guide, x, y, mask, eps_k)
    names, params = _params(model, guide)
    got = _grads(-elbo.per_datum_elbo(model_trace, guide_trace).sum(), params)
    hand = hand_from_traces(model, guide, x, y, mask, model_trace, guide_trace, eps_k, detach=detach)
    want = _grads(-hand.sum(), params)
    for name, a, b in zip(names, got, want):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=lambda m: f"{name}: {m}")
    encoder = [g for n, g in zip(names, got) if n.startswith("guide.") and "classifier" not in n]
    assert all(g.abs().max() > 0 for g in encoder)  # the Cholesky factor / every flow learns


N_DRAWS = 2000


def test_full_rank_z_c_site_is_the_marginal_and_the_sites_the_joint():
    """z_c's site is MVN(mu_c, Sigma_cc) with Sigma = S S^T: log-density by hand, and its draws'
    covariance; the two sites' samples together have the joint covariance Sigma."""
    _, guide = make("fullrank")
    x = data()[:1].repeat(N_DRAWS, 1, 1, 1)  # draws for one image, in one pass
    loc, tril = (t[0].detach() for t in guide.loc_scale_tril(x[:1]))
    sigma = tril @ tril.T
    n = L * DC
    assert (sigma[:n, :n] - torch.diag(sigma.diagonal()[:n])).abs().max() > 0.1  # strongly correlated labels
    guide_trace = poutine.trace(guide).get_trace(x)
    q_z_c = guide_trace.nodes[sites.Z_C]["fn"]
    draws = q_z_c.rsample((3,))  # [3, L, N_DRAWS, DC]
    flat = draws[:, :, :5].transpose(-3, -2).reshape(3, 5, n)
    marginal = td.MultivariateNormal(loc[:n], covariance_matrix=sigma[:n, :n])
    got = q_z_c.log_prob(draws).sum(-2)[:, :5]
    torch.testing.assert_close(got, marginal.log_prob(flat), rtol=1e-10, atol=1e-10)
    # Monte Carlo: the K draws' covariance is Sigma_cc (a covariance's standard error is at most
    # sqrt(2 s_ii s_jj / N): the tolerance is 6 of them)
    many = q_z_c.rsample((1,))[0].transpose(0, 1).reshape(N_DRAWS, n).detach()
    tol = 6 * (2 * sigma[:n, :n].diagonal().unsqueeze(0) * sigma[:n, :n].diagonal().unsqueeze(1)).sqrt() / N_DRAWS**0.5
    assert ((torch.cov(many.T) - sigma[:n, :n]).abs() < tol).all()
    # the main samples of (z_c, z_s) have the joint covariance
    joint = torch.cat([guide_trace.nodes[sites.Z_C]["value"].transpose(0, 1).reshape(N_DRAWS, n), guide_trace.nodes[sites.Z_S]["value"]], -1).detach()
    tol = 6 * (2 * sigma.diagonal().unsqueeze(0) * sigma.diagonal().unsqueeze(1)).sqrt() / N_DRAWS**0.5
    assert ((torch.cov(joint.T) - sigma).abs() < tol).all()
    torch.testing.assert_close(joint.mean(0), loc, rtol=0, atol=float(5 * sigma.diagonal().sqrt().max() / N_DRAWS**0.5))


def test_flow_z_c_site_is_the_marginal():
    """Each block's marginal is mu + sigma * Spline(eps): the site's log-density against the change
    of variables by hand, its draws' mean against quadrature over the spline, and its median (what
    guide.mean returns) against the draws."""
    _, guide = make("flow")
    x = data()
    guide_trace = poutine.trace(guide).get_trace(x)
    q_z_c = guide_trace.nodes[sites.Z_C]["fn"]
    loc_c, scale_c, context_c, _, _, _ = (t.detach() for t in guide._params(x))
    spline = guide.characteristic_posterior(loc_c, scale_c, context_c).transforms[0]

    def standardised(eps):  # [B, L, DC] -> [B, L, DC]
        return spline(eps.transpose(0, 1)).transpose(0, 1).detach()

    draws = q_z_c.rsample((4,)).detach()  # [4, L, B, DC]
    for draw in draws:
        u = ((draw.transpose(0, 1) - loc_c) / scale_c)
        eps = invert_monotone(standardised, u)
        step = 1e-6
        slope = (standardised(eps + step) - standardised(eps - step)) / (2 * step)  # elementwise
        hand = (td.Normal(0.0, 1.0).log_prob(eps) - slope.log() - scale_c.log()).sum(-1).T  # [L, B]
        torch.testing.assert_close(q_z_c.log_prob(draw), hand, rtol=1e-6, atol=1e-6)
    # mean of the marginal by Gauss-Hermite quadrature over the spline, against 20000 draws
    nodes, weights = np.polynomial.hermite.hermgauss(80)
    nodes = torch.from_numpy(nodes * math.sqrt(2))
    weights = torch.from_numpy(weights / math.sqrt(math.pi))
    values = torch.stack([standardised(torch.full_like(loc_c, float(v))) for v in nodes])  # [80, B, L, DC]
    mean_u = (weights.reshape(-1, 1, 1, 1) * values).sum(0)
    second_u = (weights.reshape(-1, 1, 1, 1) * values.square()).sum(0)
    want_mean = loc_c + scale_c * mean_u
    want_sd = scale_c * (second_u - mean_u.square()).sqrt()
    assert (mean_u.abs() > 0.05).any()  # the spline really moves the mean off mu_c
    many = q_z_c.rsample((20000,)).detach().transpose(1, 2)  # [N, B, L, DC]
    assert ((many.mean(0) - want_mean).abs() < 5 * want_sd / 20000**0.5).all()
    # the median: half the draws below guide.mean's z_c
    median, _ = guide.mean(x)
    torch.testing.assert_close(median.detach(), loc_c + scale_c * standardised(torch.zeros_like(loc_c)))
    below = (many < median.detach()).double().mean(0)
    assert ((below - 0.5).abs() < 5 * 0.5 / 20000**0.5).all()


def test_full_rank_log_density_of_its_own_draw_survives_an_ill_conditioned_factor_in_float32():
    """Training can drive the Cholesky factor to condition numbers of 1e8 (seen on digits): a
    re-solved S^{-1}(z - mu) then loses every digit in float32. The guide's log q of its own draw
    is log N(eps) - log|det S| for the noise eps that made it (read from the transforms' cache),
    and the two sites' noises do make the draw."""
    _, guide = make("fullrank", dtype=torch.float32)
    x = data(torch.float32)
    g = torch.Generator().manual_seed(5)
    dim, n = L * DC + DS, L * DC
    tril = torch.eye(dim).expand(B, dim, dim).clone() + torch.randn(B, dim, dim, generator=g).tril(-1)
    tril[:, 2, 2] = tril[:, 7, 7] = 1e-4  # two nearly deterministic directions
    loc = torch.randn(B, dim, generator=g)
    assert torch.linalg.cond(tril).min() > 1e6
    guide.loc_scale_tril = lambda images: (loc, tril)
    trace = poutine.trace(guide).get_trace(x)
    trace.compute_log_prob()
    eps = []
    for name in (sites.Z_C, sites.Z_S):
        fn = trace.nodes[name]["fn"]
        (affine,) = (fn.joint if name == sites.Z_C else fn).transforms
        eps.append(affine._cached_x_y[0])
    eps = torch.cat(eps, -1).double()
    got = trace.nodes[sites.Z_C]["log_prob"].sum(0) + trace.nodes[sites.Z_S]["log_prob"]
    want = td.Normal(0.0, 1.0).log_prob(eps).sum(-1) - torch.diagonal(tril, dim1=-2, dim2=-1).double().log().sum(-1)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-3)
    z = torch.cat([trace.nodes[sites.Z_C]["value"].transpose(0, 1).reshape(B, n), trace.nodes[sites.Z_S]["value"]], -1)
    made = loc.double() + (tril.double() @ eps.unsqueeze(-1)).squeeze(-1)  # the joint's z = mu + S eps
    torch.testing.assert_close(z.double(), made, rtol=0, atol=1e-5)
    resolved = td.MultivariateNormal(loc, scale_tril=tril).log_prob(z)  # what re-solving would give
    assert (resolved.double() - want).abs().max() > 1.0  # the test has teeth
