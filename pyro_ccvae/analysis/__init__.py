"""Analysis of trained runs: metrics and figures (read a run directory, never training internals).

Each command reads ``RUN`` (from ``ccvae-pyro train``) and writes ``RUN/figures/*.png``,
sections of ``RUN/metrics.json`` and ``RUN/report.html`` (:mod:`.tasks`):

=====================  ==========================================================================
``evaluate``           accuracy/AUROC per label (Table 1), importance-weighted ``log p(x)`` and
                       ``log p(x, y)`` with the ELBO (:mod:`.likelihood`), Wasserstein distance
                       between ``z_c^i | y_i = 0`` and ``| y_i = 1`` with their densities,
                       reconstructions, the health checks (:mod:`pyro_ccvae.health`);
                       with ``--classifier`` the single-intervention matrix and
                       its condition number (D.1), the swap metric (Table 2) and the
                       conditional-generation accuracy (Table 5)
``traverse``           1-D and 2-D traversals of the characteristic latents (Fig. 3)
``generate``           conditional generation from ``p(z_c | y)`` (Fig. 4)
``intervene``          label switches (Fig. 11) and diversity maps (Fig. 5)
``swap``               characteristic swaps (Figs. 6-7)
``train-classifier``   the independent CNN that judges edited and generated images
=====================  ==========================================================================

On data with known ground truth (``ImageSet.attributes``: the built-in ``shapes``), ``evaluate``
without ``--classifier`` trains a small CNN on the true labels of every training image (kept in
``RUN/attribute_classifier``) and reports, per label, how often switching ``z_c^i`` to the other
class's prior mean flips exactly that label and no other in the CNN's reading. The renderer is
not used: an edited image has no factor values to render from, so some classifier must read it;
one trained on ground truth of the same renderer is the most faithful reader available.

Every run-level metric has one signature, ``metric(analysis: Analysis) -> dict``
(:mod:`.metrics`). Analysis talks only to the run's representation
(:mod:`pyro_ccvae.models.base`: encode, predict, decode, sample, intervene, ...), never to a
model's internals, so every guide works; each task declares the capabilities it needs (its
``needs``), and a model without one of them is refused in one line naming both.
"""
