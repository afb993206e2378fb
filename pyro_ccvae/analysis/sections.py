"""The sections of ``evaluate``, as one table (:data:`SECTIONS`): what ``evaluate`` computes,
what ``ccvae-pyro evaluate`` prints and what the report's summary shows all iterate it.

A row names its ``metrics.json`` section, the capabilities it needs of the model family beyond
what ``evaluate`` always needs (a family without one skips the section everywhere, named in
``evaluation.skipped`` with the capability missing), the function that computes it, its headline
numbers (the report's summary) and terminal lines (the CLI), and the figure it draws. Rows run in
the table's order, which is also the order of their random draws: a new row goes where its draws
leave the earlier sections' numbers as they were (last, unless it draws nothing).

Adding a metric: a module with ``metric(analysis) -> dict`` (:mod:`.metrics`), and a row here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch

from ..health import NEEDS as HEALTH_NEEDS, check_health, describe as describe_health, mean_image
from ..models.base import PREDICT, RECONSTRUCT
from ..run_directory import ATTRIBUTE_CLASSIFIER, Run, figure_path, read_summary
from . import figures, generation, interventions, judge_uncertainty, likelihood, locality, metrics, swap, traversal
from .classifier import ClassifierConfig, load_classifier, train_classifier
from .context import Analysis
from .fid import GENERATED_NEEDS as FID_GENERATED_NEEDS, check_count, fid_scores, load_inception, missing_weights_note
from .ground_truth import has_ground_truth, nuisance_transfer
from .judge import LabelReader
from .outputs import RELIABLE_JUDGE_ACCURACY, figure_name

#: what ``evaluate`` always needs; each section may need more (its row's ``needs``).
NEEDS = (PREDICT, RECONSTRUCT, *HEALTH_NEEDS)


class Judge(NamedTuple):
    """The classifier that reads edited and generated images: what it is (in words), its
    directory, and its reader of the run's labels."""

    description: str
    folder: Path
    reader: LabelReader


@dataclass
class Skip:
    """A section that was not computed, and why (recorded in ``evaluation.skipped``)."""

    why: str


@dataclass
class Evaluation:
    """One evaluation under way: what each section's function reads, and what it adds to.

    :param metrics: the sections computed so far, by name (a later section may read an earlier one).
    :param skipped: section (or part of one) -> why it was skipped; ``evaluation.skipped``.
    :param figures: the figures drawn so far.
    """

    run: Run
    analysis: Analysis
    iw_samples: int
    gen_samples: int
    attribute_epochs: int
    progress: bool
    fid_weights: Optional[Path]
    fid_images: int
    judge: Optional[Judge] = None
    inception: Any = None
    unreliable: Optional[list[str]] = None
    metrics: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    def figure_path(self, name: str) -> Path:
        return figure_path(self.run.path, name)


@dataclass(frozen=True)
class Section:
    """A row of :data:`SECTIONS`.

    :param name: its ``metrics.json`` section.
    :param compute: ``compute(evaluation)``: the section's dict; a :class:`Skip`; or ``None`` when it
        does not apply (no judge, no ground truth). It draws the row's figures into ``evaluation.figures``.
    :param needs: the capabilities it needs beyond :data:`NEEDS`.
    :param parts: parts of the section that need further capabilities (name -> capabilities); a
        family without them gets the rest of the section, and the part named in ``evaluation.skipped``.
    :param check: ``check(evaluation)``, run for every row the family offers before any is
        computed: bad input is refused before the slow part.
    :param headlines: ``(key path, what it is)`` of the numbers the report's summary shows.
    :param describe: ``describe(section, metrics)``: the lines ``ccvae-pyro evaluate`` prints.
    :param figure: the figure it draws (a name in ``RUN/figures``), removed when the section is
        not computed, so that an old one does not sit in the report beside numbers without it.
    :param judge: ``None``; ``"needs"``: computed only with a judge; ``"reads"``: also read per
        label by the judge (marked where the judge reads a label unreliably, and dropped, said so,
        by an evaluation without a judge).
    """

    name: str
    compute: Callable[[Evaluation], Union[dict, Skip, None]]
    needs: tuple[str, ...] = ()
    parts: dict = field(default_factory=dict)
    check: Optional[Callable[[Evaluation], None]] = None
    headlines: tuple[tuple[tuple[str, ...], str], ...] = ()
    describe: Optional[Callable[[dict, dict], list[str]]] = None
    figure: Optional[str] = None
    judge: Optional[str] = None


def show(value) -> str:
    """A number as the terminal shows it (``n/a`` for a missing one)."""
    return "n/a" if value is None else f"{value:.4g}"


def _fmt(value: Optional[float]) -> str:
    return "undefined" if value is None else f"{value:.3g}"


# --- classification ----------------------------------------------------------------------


def confusion_figures(run: Run, classification: dict, num_classes: Sequence[int]) -> list[Path]:
    """A labelled confusion matrix of ``q(y|x)`` for each label of more than two classes (a binary
    label's four counts are in ``metrics.json``)."""
    out = []
    for name, k in zip(run.label_names, num_classes):
        if k == 2:
            continue
        path = figure_path(run.path, figure_name("confusion", [name]))
        classes = [f"{name}={c}" for c in range(k)]
        title = (
            f"{name}: q(y|x) on test images; accuracy {_fmt(classification['accuracy'][name])}, "
            f"chance {_fmt(classification['chance'][name])}"
        )
        out.append(
            figures.plot_matrix(
                classification["confusion"][name], classes, classes, path, title, "test images",
                row_title="true class", col_title="predicted class (most probable under q(y|x))", value_format="d",
            )  # fmt: skip
        )
    return out


def _classification(e: Evaluation) -> dict:
    section = metrics.classification(e.analysis)
    e.figures += confusion_figures(e.run, section, e.analysis.num_classes)
    return section


def _latent_separation(e: Evaluation) -> dict:
    section = metrics.latent_separation(e.analysis)
    rep, analysis = e.run.representation, e.analysis
    prior_locs = [rep.class_prior(i)[0][:, 0].cpu().numpy() for i in range(analysis.num_labels)]
    e.figures.append(
        figures.plot_densities(
            metrics.characteristic_values(analysis), analysis.label_names, e.figure_path("latent_densities"),
            prior_locs=prior_locs, distances=list(section["wasserstein"].values()),
        )  # fmt: skip
    )
    return section


# --- health ------------------------------------------------------------------------------


def _reconstructions_figure(e: Evaluation) -> Path:
    """The first 16 test images, ``width`` per row, each row above its reconstructions."""
    analysis = e.analysis
    count = min(16, len(analysis))
    index = torch.arange(count)
    originals, recons = analysis.images(index), analysis.reconstruct(index)
    width = min(8, count)
    rows, row_names = [], []
    for k in range(0, count, width):
        chunk = slice(k, min(k + width, count))
        pad = width - (chunk.stop - chunk.start)
        for images, name in ((originals, f"test {k}-{chunk.stop - 1}"), (recons, "reconstruction")):
            rows.append(torch.cat([images[chunk], images.new_ones(pad, *images.shape[1:])]))
            row_names.append(name)
    return figures.save_labelled_grid(torch.stack(rows), e.figure_path("reconstructions"), row_names)


def _health(e: Evaluation) -> dict:
    run, analysis = e.run, e.analysis
    section = {
        "split": "test",
        **check_health(
            run.representation, analysis.split.images, mean_image(run.data.train.images), analysis.label_names,
            run.device, analysis.batch_size, seed=run.config.run.seed, means=analysis.posterior_means,
        ),
    }
    e.figures.append(_reconstructions_figure(e))
    return section


def _style_leakage(e: Evaluation) -> dict:
    """:func:`~.metrics.style_leakage`; a model whose design keeps ``z_s`` free of the labels gets
    a health warning when ``z_s`` alone recovers a label."""
    rep = e.run.representation
    section = metrics.style_leakage(e.analysis, seed=e.run.config.run.seed)
    section["style_is_label_free"] = rep.style_is_label_free
    warning = metrics.leakage_warning(section)
    if warning is not None and rep.style_is_label_free:
        e.metrics["health"]["warnings"].append(warning)
    return section


def _edit_locality(e: Evaluation) -> dict:
    """The mask share on data whose renderer outlines the labels, keypoints everywhere."""
    section, figure = locality.edit_locality(e.analysis, e.figure_path("locality"))
    e.figures.append(figure)
    return section


# --- the judge ---------------------------------------------------------------------------


def label_reader(run: Run, classifier: torch.nn.Module) -> LabelReader:
    """``classifier`` reading the run's labels."""
    info = run.config.data.info
    return LabelReader(classifier, run.label_names, info["channels"], info["image_size"], run.num_classes)


def attribute_classifier(run: Run, epochs: int, progress: bool = True) -> tuple[Path, torch.nn.Module]:
    """The ground-truth judge for data with known factors (``shapes``): a classifier trained on
    every training label of the run's data (not only the run's labelled subset), kept in
    ``RUN/attribute_classifier`` and reused while its settings match."""
    folder = run.path / ATTRIBUTE_CLASSIFIER
    wanted = ClassifierConfig.like_run(run.config, epochs=epochs, device=str(run.device))
    if (folder / "classifier.pt").exists():
        try:
            saved = ClassifierConfig.load(folder / "config.json")
            saved.device, saved.info = wanted.device, {}
            net = load_classifier(folder, run.device) if saved == wanted else None
        except ValueError:  # incomplete or damaged (a kill while it was written): trained again below
            net = None
        # one trained before the data's labels became categorical reads them as binary: retrain it
        if net is not None and [net.num_classes[i] for i in net.columns(run.label_names)] == run.num_classes:
            return folder, net
    train_classifier(wanted, folder, progress=progress)
    return folder, load_classifier(folder, run.device)


def _judge_summary(folder: Path, key: str, label_names: Sequence[str]) -> dict[str, Optional[float]]:
    """The judge's ``summary.json[key]`` (``test_accuracy``, ``test_chance``) for each of the run's
    labels (``None`` where its summary lacks it)."""
    values = read_summary(folder).get(key, {})
    return {name: values.get(name) for name in label_names}


def _evaluation(e: Evaluation) -> dict:
    """What this evaluation used: the split, the judge and its accuracy, and what it skipped.
    Without a judge, on data with ground-truth factors, it trains one (:func:`attribute_classifier`)."""
    run, analysis = e.run, e.analysis
    if e.judge is None and analysis.split.attributes is not None and e.attribute_epochs > 0:
        folder, net = attribute_classifier(run, e.attribute_epochs, e.progress)
        e.judge = Judge("ground-truth attribute classifier trained by evaluate", folder, label_reader(run, net))
    judge = e.judge
    accuracy = None if judge is None else _judge_summary(judge.folder, "test_accuracy", analysis.label_names)
    # labels the judge reads badly (or of unknown accuracy): their judged metrics measure the judge
    if judge is not None:
        e.unreliable = [name for name, value in accuracy.items() if value is None or value < RELIABLE_JUDGE_ACCURACY]
        analysis.classifier = judge.reader
    return {
        "split": "test",
        "num_images": len(analysis),
        "iw_samples": e.iw_samples,
        "judge": None if judge is None else judge.description,
        "classifier": None if judge is None else str(judge.folder),
        "judge_test_accuracy": accuracy,
        # what always answering the most frequent class scores (judges trained before it was saved: null)
        "judge_test_chance": None if judge is None else _judge_summary(judge.folder, "test_chance", analysis.label_names),
        "unreliable_labels": e.unreliable,
        "reliable_judge_accuracy": RELIABLE_JUDGE_ACCURACY,
        "skipped": e.skipped,
    }


def _single_interventions(e: Evaluation) -> dict:
    section = interventions.single_interventions(e.analysis)
    names = e.analysis.label_names
    e.figures.append(
        figures.plot_matrix(
            interventions.matrix_array(section), names, names, e.figure_path("intervention_matrix"),
            title=f"single interventions (condition number {_fmt(section['condition_number'])})",
            colour_label="mean |change| of the judge's log-probability",
            row_title="label intervened on (z_c^i set to another class's prior mean)",
            col_title="label read by the judge",
        )  # fmt: skip
    )
    return section


def _generation_accuracy(e: Evaluation) -> dict:
    section = generation.generation_accuracy(e.analysis, e.gen_samples)
    train = e.run.data.train
    if generation.is_one_hot(train.labels, train.mask):
        section["one_hot"] = generation.class_generation_accuracy(e.analysis)
    requested = generation.requested_class_accuracy(e.analysis)
    if requested is not None:
        section["categorical"] = requested
    return section


def _judge_uncertainty(e: Evaluation) -> Union[dict, Skip]:
    """Table 7: the judge's MI on generated images beside real ones; skipped for a judge without a GP head."""
    section, why = judge_uncertainty.judge_uncertainty(e.analysis, e.judge.folder)
    return Skip(why) if section is None else section


# --- FID ---------------------------------------------------------------------------------


def _check_fid(e: Evaluation) -> None:
    """A bad weights file, or too few images, are refused before the slow part."""
    if e.fid_weights is not None:
        check_count(min(e.fid_images, len(e.analysis)))
        e.inception = load_inception(e.fid_weights, e.run.device)


def _fid(e: Evaluation) -> Union[dict, Skip]:
    if e.inception is None:
        return Skip(missing_weights_note())
    return fid_scores(e.analysis, e.inception, e.fid_images, generated="fid_generated" not in e.skipped)


def fid_line(fid: dict) -> str:
    """``evaluate``'s FID in one line, with the count it depends on and the training images' FID, a perfect generator's."""
    scores = ", ".join(f"{kind} {show(fid[kind])}" for kind in ("generated", "reconstructions") if kind in fid)
    official = "" if fid["official_weights"] else "; not the official weights: not comparable with published FIDs"
    reference = f"; {fid['num_training_images']} training images {show(fid.get('training_images'))} (a perfect generator's FID at this count)"
    return f"FID against {fid['num_images']} test images (lower is better): {scores}{reference}{official}"


def _generation_lines(section: dict, m: dict) -> list[str]:
    lines = [f"conditional-generation accuracy: {show(section['accuracy_mean'])}"]
    requested = section.get("categorical")
    if requested:
        rates = ", ".join(f"{name} {show(rate)}" for name, rate in requested["requested_class_rate_mean"].items())
        lines.append(f"requested class read by the judge (mean over classes): {rates}")
    return lines


def _uncertainty_line(section: dict, m: dict) -> list[str]:
    mi = ", ".join(
        f"{name} {show(section['mutual_information_generated_mean'][name])} vs {show(value)}"
        for name, value in section["mutual_information_test"].items()
    )
    return [f"judge's uncertainty (MI, nats; generated vs real test images): {mi}"]


#: ``evaluate``'s sections, in the order they are computed (the order of their random draws).
SECTIONS = (
    Section(
        "classification", _classification,
        headlines=((("accuracy_mean",), "test accuracy of q(y|x), mean over labels"), (("auroc_mean",), "AUROC, mean over labels")),
        describe=lambda s, m: [f"accuracy (mean over labels): {show(s['accuracy_mean'])}   AUROC: {show(s['auroc_mean'])}"],
    ),
    Section(
        "likelihood", lambda e: likelihood.importance_weighted(e.analysis, e.iw_samples), needs=likelihood.NEEDS,
        # a huge --iw-samples is refused (or said to take long) before the slow part
        check=lambda e: likelihood.check_cost(e.analysis, e.iw_samples),
        headlines=((("bits_per_dim_px_iwae",), "-log p(x) from the IWAE bound, bits/dim (lower is better)"),),
        describe=lambda s, m: [
            f"log p(x) >= {show(s['log_px_iwae'])} nats/image (IWAE, K={s['num_samples']}; "
            f"{show(s['bits_per_dim_px_iwae'])} bits/dim); ELBO {show(s['log_px_elbo'])}; CCVAE objective {show(s['log_px_ccvae_elbo'])}"
        ],
    ),
    Section(
        "latent_separation", _latent_separation, needs=traversal.NEEDS,  # the class priors' locations mark the densities
        headlines=((("wasserstein_mean",), "Wasserstein distance of z_c between classes, mean over labels"),),
        describe=lambda s, m: [f"Wasserstein distance of z_c between classes (mean over labels): {show(s['wasserstein_mean'])}"],
        figure="latent_densities",
    ),
    Section(
        "health", _health,
        headlines=(
            (("reconstruction", "model_mae"), "reconstruction error per pixel (MAE)"),
            (("reconstruction", "mean_image_mae"), "error of the mean training image (MAE), for comparison"),
        ),
        describe=lambda s, m: [f"health (test split): {describe_health(s)}"],
    ),
    Section("style_leakage", _style_leakage),
    Section("nuisance_transfer", lambda e: nuisance_transfer(e.analysis) if has_ground_truth(e.analysis) else None),
    Section(
        "edit_locality", _edit_locality, needs=locality.NEEDS,
        describe=lambda s, m: [f"edit locality: {locality.describe(s)}"], figure="locality",
    ),
    Section("evaluation", _evaluation),
    Section(
        "single_interventions", _single_interventions, needs=interventions.NEEDS, judge="reads",
        headlines=(
            (("condition_number",), "condition number of the single-intervention matrix (1 is best)"),
            (("exact_rate_mean",), "fraction of single interventions that change exactly the intended label"),
        ),
        describe=lambda s, m: [
            f"single interventions ({m['evaluation']['judge']}): condition number {show(s['condition_number'])}, "
            f"only the intended label changes in {show(s['exact_rate_mean'])} of cases"
        ],
        figure="intervention_matrix",
    ),
    Section(
        "characteristic_swap", lambda e: swap.swap_metric(e.analysis), needs=swap.NEEDS, judge="reads",
        headlines=((("log_prob_change_mean",), "characteristic-swap metric (lower is better)"),),
        describe=lambda s, m: [f"characteristic swap: mean |change of log-prob| {show(s['log_prob_change_mean'])}"],
    ),
    Section(
        "generation_accuracy", _generation_accuracy, needs=generation.NEEDS, judge="reads",
        headlines=((("accuracy_mean",), "conditional-generation accuracy"),), describe=_generation_lines,
    ),
    Section("judge_uncertainty", _judge_uncertainty, needs=generation.NEEDS, judge="needs", describe=_uncertainty_line),  # reads generated images
    Section(
        # last: the other sections' random draws stay what they were without it
        "fid", _fid, parts={"fid_generated": FID_GENERATED_NEEDS}, check=_check_fid,  # the reconstructions' FID needs only NEEDS
        headlines=(  # FID depends on the count of images: the count and the floor it sets go beside it
            (("generated",), "FID of generated images against the test images (lower is better)"),
            (("reconstructions",), "FID of reconstructions against the test images (lower is better)"),
            (("training_images",), "FID of training images against the test images: a perfect generator's at this count"),
            (("num_images",), "images per FID set (FID grows as the count shrinks)"),
        ),
        describe=lambda s, m: [fid_line(s)],
    ),
)  # fmt: skip

#: the metrics.json sections ``evaluate`` owns (replaced or removed on every evaluation).
NAMES = tuple(section.name for section in SECTIONS)
#: the sections read per label by a judge (a classifier reading edited or generated images).
JUDGED_SECTIONS = tuple(section.name for section in SECTIONS if section.judge == "reads")
#: the sections and parts a family may lack the capabilities for -> the capabilities they need.
OPTIONAL = {
    name: needs
    for section in SECTIONS
    for name, needs in ((section.name, section.needs), *section.parts.items())
    if needs
}  # fmt: skip


def missing(capabilities: frozenset) -> dict[str, str]:
    """The sections and parts (:data:`OPTIONAL`) a family with ``capabilities`` lacks -> the first capability missing."""
    return {name: next(need for need in needs if need not in capabilities) for name, needs in OPTIONAL.items() if not set(needs) <= capabilities}


def run_sections(e: Evaluation) -> None:
    """Every section of :data:`SECTIONS` the family offers, into ``e.metrics``; the figures of
    those not computed are removed."""
    family = e.run.representation.family
    lacking = missing(e.run.representation.capabilities)
    e.skipped.update({name: f"needs the capability {need!r}, which model {family!r} does not offer" for name, need in lacking.items()})
    offered = [section for section in SECTIONS if section.name not in lacking]
    for section in offered:
        if section.check is not None:
            section.check(e)
    for section in offered:
        if section.judge is not None and e.judge is None:
            continue
        outcome = section.compute(e)
        if isinstance(outcome, Skip):
            e.skipped[section.name] = outcome.why
        elif outcome is not None:
            if section.judge == "reads":
                outcome["unreliable_labels"] = e.unreliable
            e.metrics[section.name] = outcome
    for section in SECTIONS:
        if section.figure is not None and section.name not in e.metrics:
            e.figure_path(section.figure).unlink(missing_ok=True)


def headlines() -> list[tuple[str, tuple[str, ...], str]]:
    """The report's headline numbers: ``(section, key path, what it is)``, in the table's order."""
    return [(section.name, path, text) for section in SECTIONS for path, text in section.headlines]


def terminal_lines(m: dict) -> list[str]:
    """What ``ccvae-pyro evaluate`` prints of ``evaluate``'s metrics ``m``: the lines of each section
    computed, then one per section skipped."""
    lines = [line for section in SECTIONS if section.name in m and section.describe for line in section.describe(m[section.name], m)]
    return lines + [f"skipped {name}: {why}" for name, why in m["evaluation"].get("skipped", {}).items()]
