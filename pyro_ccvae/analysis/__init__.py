"""Analysis of trained runs: metrics and figures (read a run directory, never training internals).

Each command reads ``RUN`` (from ``ccvae-pyro train``) and writes ``RUN/figures/*.png``,
sections of ``RUN/metrics.json`` and ``RUN/report.html`` (:mod:`.tasks`):

=====================  ==========================================================================
``evaluate``           accuracy beside chance, confusion matrices and AUROC per label (Table 1),
                       importance-weighted ``log p(x)`` and ``log p(x, y)`` with the ELBO
                       (:mod:`.likelihood`), Wasserstein distances between the classes of each
                       ``z_c^i`` with their densities, reconstructions, the health checks
                       (:mod:`pyro_ccvae.health`); with ``--classifier`` the single-intervention
                       matrix and its condition number (D.1), the swap metric (Table 2) and the
                       conditional-generation accuracy (Table 5), and the judge's uncertainty
                       on generated images beside real ones (Table 7, :mod:`.judge_uncertainty`)
``traverse``           1-D and 2-D traversals of the characteristic latents (Fig. 3; the triangle
                       or path between the class means of a label of more classes, Fig. 21)
``generate``           conditional generation from ``p(z_c | y)`` (Fig. 4)
``intervene``          label switches and class settings (Fig. 11), diversity maps (Fig. 5) and
                       draws per class with ``z_s`` fixed (Fig. 22)
``swap``               characteristic swaps (Figs. 6-7)
``train-classifier``   the independent CNN that judges edited and generated images (stopping on a
                       validation plateau, resumable), and its GP heads
=====================  ==========================================================================

Labels are class indices; label ``i`` has ``K_i`` classes (binary: 2). Binary labels keep the
paper's binary measures; labels of more classes get their multi-class forms beside them (see
:mod:`.metrics`, :mod:`.interventions`, :mod:`.traversal`).

On data with known ground truth (``ImageSet.attributes``: the built-in ``shapes``), ``evaluate``
without ``--classifier`` trains a small CNN on the true labels of every training image (kept in
``RUN/attribute_classifier``) and reports, per label, how often setting ``z_c^i`` to another
class's prior mean changes exactly that label and no other in the CNN's reading. The renderer is
not used: an edited image has no factor values to render from, so some classifier must read it;
one trained on ground truth of the same renderer is the most faithful reader available.

Every run-level metric has one signature, ``metric(analysis: Analysis) -> dict``
(:mod:`.metrics`). Analysis talks only to the run's representation
(:mod:`pyro_ccvae.models.base`: encode, predict, decode, sample, intervene, ...), never to a
model's internals, so every guide works; each task declares the capabilities it needs (its
``needs``), and a model without one of them is refused in one line naming both.

``evaluate``'s sections are one table (:data:`.sections.SECTIONS`): each row names the section,
the capabilities it needs, the function computing it, its headline numbers and terminal lines,
and its figure. ``evaluate``, the report and ``ccvae-pyro evaluate`` iterate it, so a family
without a capability skips the section everywhere (``evaluation.skipped`` says why).
"""
