"""The research tasks behind the analysis commands: each reads a loaded run, writes its figures
into ``RUN/figures``, its metrics into ``RUN/metrics.json``, rewrites ``RUN/report.html``, and
returns what it wrote. The CLI (``ccvae-pyro evaluate|traverse|generate|intervene|swap``) only
parses options, loads the run and calls these.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from .. import sizes
from ..health import NEEDS as HEALTH_NEEDS, check_health, mean_image
from ..models.base import PREDICT, RECONSTRUCT
from ..run import ATTRIBUTE_CLASSIFIER, Run, check_results, figure_path, read_metrics, read_summary, results_lock, update_metrics
from . import figures, metrics
from .classifier import ClassifierConfig, load_classifier, train_classifier
from .context import Analysis
from .judge import LabelReader
from .fid import GENERATED_NEEDS as FID_GENERATED_NEEDS, LEAST_IMAGES as FID_LEAST_IMAGES, check_count, fid_scores, load_inception, missing_weights_note
from .ground_truth import has_ground_truth, nuisance_transfer
from . import generation, interventions, judge_uncertainty, likelihood, locality, swap as swaps, traversal
from .generation import (
    class_generation_accuracy, generation_accuracy, generate as generate_images, is_one_hot, requested_class_accuracy, sample_labels,
)  # fmt: skip
from .interventions import (
    class_draws, class_variance, diversity_maps, intervention_columns, matrix_array, mean_variance, single_interventions, switch_grid,
)  # fmt: skip
from .labels import describe_vector, parse_label_list, parse_label_vectors, parse_pairs
from .likelihood import importance_weighted
from .outputs import JUDGED_SECTIONS, RELIABLE_JUDGE_ACCURACY, figure_name, slug
from .report import write_report
from .swap import swap_grid, swap_metric
from .traversal import (
    class_legs, most_visible, path_captions, traversal_values, traverse as traverse_images, traverse_pair, traverse_simplex,
)  # fmt: skip

#: how many test images ``traverse`` looks through for the one its 2-D traversals show.
VISIBLE_CANDIDATES = 256
#: the metrics.json sections ``evaluate`` owns (replaced or removed on every evaluation).
EVALUATE_SECTIONS = (
    "evaluation", "health", "classification", "likelihood", "latent_separation", "style_leakage",
    *JUDGED_SECTIONS, "nuisance_transfer", "edit_locality", "fid", "judge_uncertainty",
)  # fmt: skip


@dataclass
class Written:
    """What a task wrote: figure paths, the metrics sections, and the report; ``dropped``: the
    sections of ``metrics.json`` from an earlier command that it removed without replacing them
    (``evaluate`` without a judge drops the judged ones, which its new numbers would not match)."""

    figures: list[Path] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    report: Optional[Path] = None
    dropped: list[str] = field(default_factory=list)


def _task(*needs: Sequence[str], lower: str):
    """A task that asks the run's model for the capabilities in ``needs`` (a one-line
    :class:`~pyro_ccvae.models.CapabilityError` naming both if it lacks one) and runs with the
    run's own Pyro parameter store (see :meth:`pyro_ccvae.run.Run.scope`). Its sizes are checked
    before it allocates (:mod:`pyro_ccvae.sizes`); running out of memory all the same is a
    one-line :class:`~pyro_ccvae.sizes.SizeError` naming ``lower``, the options that size it."""
    wanted = tuple(dict.fromkeys(c for group in needs for c in group))

    def decorate(function):
        @functools.wraps(function)
        def wrapper(run: Run, *args, **kwargs) -> Written:
            run.representation.require(f"`{function.__name__}`", wanted)
            # One command at a time writes a run's results: figures, metrics.json and the report agree.
            with results_lock(run.path), run.scope():
                check_results(run.path)
                with sizes.out_of_memory_says(f"`{function.__name__}`", lower, run.device):
                    return function(run, *args, **kwargs)

        wrapper.needs = wanted
        return wrapper

    return decorate


def _finish(run: Run, written: Written, remove: Sequence[str] = ()) -> Written:
    update_metrics(
        run.path, written.metrics, remove=[r for r in remove if r not in written.metrics],
        checkpoint=getattr(run, "checkpoint", None), figures=written.figures,
    )  # fmt: skip
    written.report = write_report(run.path)
    return written


def _reader(run: Run, classifier: torch.nn.Module) -> LabelReader:
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


#: what ``evaluate`` always needs; each further section needs its own (see :data:`EVALUATE_OPTIONAL`).
EVALUATE_NEEDS = (PREDICT, RECONSTRUCT, *HEALTH_NEEDS)
#: sections of ``evaluate`` a model may lack the capabilities for: skipped, and named in
#: ``evaluation.skipped`` with the capability missing.
EVALUATE_OPTIONAL = {
    "likelihood": likelihood.NEEDS,
    "latent_separation": traversal.NEEDS,  # the class priors' locations mark the densities
    "single_interventions": interventions.NEEDS,
    "characteristic_swap": swaps.NEEDS,
    "generation_accuracy": generation.NEEDS,
    "edit_locality": locality.NEEDS,
    "fid_generated": FID_GENERATED_NEEDS,  # the reconstructions' FID needs only EVALUATE_NEEDS
    "judge_uncertainty": generation.NEEDS,  # reads generated images
}


@_task(EVALUATE_NEEDS, lower="--batch-size, --max-images or --iw-samples")
def evaluate(
    run: Run,
    iw_samples: int = 100,
    classifier_dir: Optional[Path] = None,
    batch_size: int = 256,
    max_images: Optional[int] = None,
    gen_samples: int = 1000,
    attribute_epochs: int = 10,
    progress: bool = True,
    fid_weights: Optional[Path] = None,
    fid_images: int = 500,
) -> Written:
    """Classification (Table 1), the importance-weighted ``log p(x)``, latent separation,
    reconstructions, the health checks (:func:`~pyro_ccvae.health.check_health`, and a warning
    from :func:`~.metrics.style_leakage` when ``z_s`` alone recovers a label of a model whose
    design keeps ``z_s`` free of the labels); with an
    independent classifier in ``classifier_dir`` also the single-intervention matrix, the swap
    metric (Table 2), generation accuracy (Table 5) and, when the judge has GP heads, its
    uncertainty on generated images (Table 7, :mod:`.judge_uncertainty`), with the labels the judge reads below
    :data:`~.outputs.RELIABLE_JUDGE_ACCURACY` listed as ``unreliable_labels``. Without a judge the
    judged sections of earlier evaluations are dropped, not kept beside numbers they do not match.

    Without one, on data with ground-truth factors (``ImageSet.attributes``, e.g. ``shapes``)
    and ``attribute_epochs > 0``, a classifier is trained on the ground-truth labels (see
    :func:`attribute_classifier`) to judge interventions, swaps and generation. Such data
    also get :func:`~.ground_truth.nuisance_transfer`, which needs no judge.

    With ``fid_weights`` (torch-fidelity's Inception v3 weights, a file), the FID of generated
    images, reconstructions and training images against the first ``fid_images`` test images
    (Table 4, :func:`~.fid.fid_scores`); without, the ``fid`` section is skipped, saying where
    the weights are published.
    """
    for name, value, least in (("--iw-samples", iw_samples, 1), ("--gen-samples", gen_samples, 1), ("--attribute-epochs", attribute_epochs, 0), ("--fid-images", fid_images, FID_LEAST_IMAGES)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    analysis = Analysis.from_run(run, "test", max_images, batch_size, progress)
    # The judge is loaded and checked against the run first: bad input fails before the slow part.
    judge = None
    if classifier_dir is not None:
        judge = ("independent classifier", Path(classifier_dir), _reader(run, load_classifier(classifier_dir, run.device)))
    if fid_weights is not None:  # a bad file, or too few images, fail here too
        check_count(min(fid_images, len(analysis)))
    inception = None if fid_weights is None else load_inception(fid_weights, run.device)
    written = Written()
    m = written.metrics
    rep = run.representation
    skipped = {
        section: next(need for need in needs if need not in rep.capabilities)
        for section, needs in EVALUATE_OPTIONAL.items()
        if not set(needs) <= rep.capabilities
    }
    if "likelihood" not in skipped:  # a huge --iw-samples is refused (or said to take long) before the slow part
        likelihood.check_cost(analysis, iw_samples)
    m["classification"] = metrics.classification(analysis)
    if "likelihood" not in skipped:
        m["likelihood"] = importance_weighted(analysis, iw_samples)
    if "latent_separation" not in skipped:
        m["latent_separation"] = metrics.latent_separation(analysis)
    m["health"] = {
        "split": "test",
        **check_health(
            run.representation, analysis.split.images, mean_image(run.data.train.images), analysis.label_names,
            run.device, batch_size, seed=run.config.run.seed, means=analysis.posterior_means,
        ),
    }
    m["style_leakage"] = metrics.style_leakage(analysis, seed=run.config.run.seed)
    m["style_leakage"]["style_is_label_free"] = rep.style_is_label_free
    warning = metrics.leakage_warning(m["style_leakage"])
    if warning is not None and rep.style_is_label_free:
        m["health"]["warnings"].append(warning)

    count = min(16, len(analysis))
    index = torch.arange(count)
    originals, recons = analysis.images(index), analysis.reconstruct(index)
    width = min(8, count)
    rows, row_names = [], []
    for k in range(0, count, width):  # originals above their reconstructions, `width` per row
        chunk = slice(k, min(k + width, count))
        pad = width - (chunk.stop - chunk.start)
        for images, name in ((originals, f"test {k}-{chunk.stop - 1}"), (recons, "reconstruction")):
            rows.append(torch.cat([images[chunk], images.new_ones(pad, *images.shape[1:])]))
            row_names.append(name)
    path = figure_path(run.path, "reconstructions")
    written.figures.append(figures.save_labelled_grid(torch.stack(rows), path, row_names))
    if "latent_separation" not in skipped:
        prior_locs = [rep.class_prior(i)[0][:, 0].cpu().numpy() for i in range(analysis.num_labels)]
        written.figures.append(
            figures.plot_densities(
                metrics.characteristic_values(analysis),
                analysis.label_names,
                figure_path(run.path, "latent_densities"),
                prior_locs=prior_locs,
                distances=list(m["latent_separation"]["wasserstein"].values()),
            )
        )
    written.figures += _confusion_figures(run, m["classification"], analysis.num_classes)

    if has_ground_truth(analysis):
        m["nuisance_transfer"] = nuisance_transfer(analysis)
    if "edit_locality" not in skipped:  # the mask share on data whose renderer outlines the labels, keypoints everywhere
        m["edit_locality"], figure = locality.edit_locality(analysis, figure_path(run.path, "locality"))
        written.figures.append(figure)
    else:
        figure_path(run.path, "locality").unlink(missing_ok=True)
    if judge is None and analysis.split.attributes is not None and attribute_epochs > 0:
        folder, net = attribute_classifier(run, attribute_epochs, progress)
        judge = ("ground-truth attribute classifier trained by evaluate", folder, _reader(run, net))
    judge_accuracy = None if judge is None else _judge_summary(judge[1], "test_accuracy", analysis.label_names)
    # labels the judge reads badly (or of unknown accuracy): their judged metrics measure the judge
    unreliable = None if judge is None else [
        name for name, value in judge_accuracy.items() if value is None or value < RELIABLE_JUDGE_ACCURACY
    ]  # fmt: skip
    m["evaluation"] = {
        "split": "test",
        "num_images": len(analysis),
        "iw_samples": iw_samples,
        "judge": None if judge is None else judge[0],
        "classifier": None if judge is None else str(judge[1]),
        "judge_test_accuracy": judge_accuracy,
        # what always answering the most frequent class scores (judges trained before it was saved: null)
        "judge_test_chance": None if judge is None else _judge_summary(judge[1], "test_chance", analysis.label_names),
        "unreliable_labels": unreliable,
        "reliable_judge_accuracy": RELIABLE_JUDGE_ACCURACY,
        "skipped": {section: f"needs the capability {need!r}, which model {rep.family!r} does not offer" for section, need in skipped.items()},
    }
    if inception is None:
        m["evaluation"]["skipped"]["fid"] = missing_weights_note()
    if judge is not None:
        analysis.classifier = judge[2]
    if judge is not None and "single_interventions" not in skipped:
        m["single_interventions"] = single_interventions(analysis)
        written.figures.append(
            figures.plot_matrix(
                matrix_array(m["single_interventions"]),
                analysis.label_names,
                analysis.label_names,
                figure_path(run.path, "intervention_matrix"),
                title=f"single interventions (condition number {_fmt(m['single_interventions']['condition_number'])})",
                colour_label="mean |change| of the judge's log-probability",
                row_title="label intervened on (z_c^i set to another class's prior mean)",
                col_title="label read by the judge",
            )
        )
    else:  # an older matrix would sit in the report beside metrics that no longer mention it
        figure_path(run.path, "intervention_matrix").unlink(missing_ok=True)
    if "latent_separation" in skipped:
        figure_path(run.path, "latent_densities").unlink(missing_ok=True)
    if judge is not None and "characteristic_swap" not in skipped:
        m["characteristic_swap"] = swap_metric(analysis)
    if judge is not None and "generation_accuracy" not in skipped:
        m["generation_accuracy"] = generation_accuracy(analysis, gen_samples)
        if is_one_hot(run.data.train.labels, run.data.train.mask):
            m["generation_accuracy"]["one_hot"] = class_generation_accuracy(analysis)
        requested = requested_class_accuracy(analysis)
        if requested is not None:
            m["generation_accuracy"]["categorical"] = requested
    if judge is not None and "judge_uncertainty" not in skipped:  # Table 7: the judge's MI on generated images beside real ones
        section, why = judge_uncertainty.judge_uncertainty(analysis, judge[1])
        if section is not None:
            m["judge_uncertainty"] = section
        else:
            m["evaluation"]["skipped"]["judge_uncertainty"] = why
    for name in JUDGED_SECTIONS:
        if name in m:
            m[name]["unreliable_labels"] = unreliable
    if inception is not None:  # last: the other sections' random draws stay what they were without it
        m["fid"] = fid_scores(analysis, inception, fid_images, generated="fid_generated" not in skipped)
    earlier = read_metrics(run.path)  # under the results lock: what _finish removes is what was there
    written.dropped = [name for name in JUDGED_SECTIONS if name in earlier and name not in m]
    return _finish(run, written, remove=EVALUATE_SECTIONS)


def _judge_summary(folder: Path, key: str, label_names: Sequence[str]) -> dict[str, Optional[float]]:
    """The judge's ``summary.json[key]`` (``test_accuracy``, ``test_chance``) for each of the run's
    labels (``None`` where its summary lacks it)."""
    values = read_summary(folder).get(key, {})
    return {name: values.get(name) for name in label_names}


def _confusion_figures(run: Run, classification: dict, num_classes: Sequence[int]) -> list[Path]:
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


def _fmt(value: Optional[float]) -> str:
    return "undefined" if value is None else f"{value:.3g}"


def _value_text(values: torch.Tensor) -> list[str]:
    return [f"{v:.2f}".replace("-0.00", "0.00") for v in values[:, 0].tolist()]


def _steps_text(run: Run, label: int, values: torch.Tensor, steps: int) -> list[str]:
    """Captions of a traversal's steps: the first-dim values (binary), the classes at their means (``K > 2``)."""
    k = run.num_classes[label]
    return _value_text(values) if k == 2 else path_captions(run.label_names[label], k, steps)


def _triangle_figure(run: Run, z_c: torch.Tensor, z_s: torch.Tensor, label: int, steps: int, path: Path) -> Path:
    """Fig. 21 for a label of 3 classes: each image's triangle of barycentric mixes of the class
    means, one below the other; rows and columns name the weights, the title the corners."""
    name = run.label_names[label]
    grid = torch.cat([traverse_simplex(run.representation, z_c[b], z_s[b], label, steps) for b in range(len(z_c))])
    rows = [f"test {b}: w({name}=0) {1 - r / (steps - 1):.2f}" for b in range(len(z_c)) for r in range(steps)]
    cols = [f"w({name}=2) {c / (steps - 1):.2f}" for c in range(steps)]
    title = (
        f"{name}: z_c^i = w0 mu({name}=0) + w1 mu({name}=1) + w2 mu({name}=2), the class means of p(z_c|y); "
        f"corners: top {name}=0, bottom left {name}=1, bottom right {name}=2"
    )
    return figures.save_labelled_grid(grid, path, rows, cols, title)


def _path_figure(run: Run, z_c: torch.Tensor, z_s: torch.Tensor, label: int, steps: int, path: Path) -> Path:
    """Fig. 21 for a label of more than 3 classes: a row per image and leg of the path through
    the class means (from class ``c`` to ``c + 1``)."""
    name, k = run.label_names[label], run.num_classes[label]
    legs = class_legs(run.representation.class_prior(label)[0], steps)  # [K-1, steps, d_c]
    grid = torch.stack([traverse_images(run.representation, z_c, z_s, label, leg) for leg in legs], dim=1)  # [B, K-1, steps, ...]
    rows = [f"test {b}: {name}={c} to {c + 1}" for b in range(len(z_c)) for c in range(k - 1)]
    cols = ["from"] + [f"{t / (steps - 1):.2f}" for t in range(1, steps - 1)] + ["to"]
    title = f"{name}: z_c^i along the path through the class means of p(z_c|y), {name}=0 to {name}={k - 1}; a row per leg"
    return figures.save_labelled_grid(grid.flatten(0, 1), path, rows, cols, title)


def _check_traverse_sizes(run: Run, chosen: Sequence[int], pairs: Sequence[tuple[int, int]], points: dict, images: int, steps: int) -> None:
    """Refuse, before decoding, a traversal figure that cannot be drawn or held (``traverse
    --steps 100000``). ``points``: the traversal's points per label (``steps``, or the class
    path's for a label of more than two classes)."""
    info = run.config.data.info
    channels, size = info["channels"], info["image_size"]
    for i in chosen:
        k, name = run.num_classes[i], run.label_names[i]
        if k == 2:
            rows, cols, decoded = images, steps, images * steps
        elif k == 3:  # a triangle of steps x steps cells per image, the images one below the other
            rows, cols, decoded = images * steps, steps, images * steps * steps
        else:  # a row per image and leg
            rows, cols, decoded = images * (k - 1), steps, images * (k - 1) * steps
        what = f"traverse's figure of {name} ({rows} x {cols} images)"
        sizes.require_figure(rows, cols, channels, size, what, "--steps (or --images)", run.device, decoded=decoded)
    for a, b in pairs:
        rows, cols = points[a], points[b]
        what = f"traverse's 2-D figure of {run.label_names[a]} and {run.label_names[b]} ({rows} x {cols} images)"
        sizes.require_figure(rows, cols, channels, size, what, "--steps", run.device)


@_task(traversal.NEEDS, lower="--steps or --images")
def traverse(
    run: Run,
    labels: Optional[str] = None,
    steps: int = 9,
    pairs: Optional[str] = None,
    images: int = 4,
    extend: float = 1.0,
    image: Optional[int] = None,
) -> Written:
    """1-D traversals of each label in ``labels`` (``"A,B"``; default all) for the first
    ``images`` test images, and 2-D traversals of one test image for each of ``pairs``
    (``"A:B,..."``; default the first two of ``labels``). See :mod:`.traversal`: a binary label walks
    from beyond one class mean to beyond the other; a label of 3 classes gets the triangle of
    barycentric mixes of its class means (rows of each image's triangle below each other), one of
    more classes the path through its class means (a row per leg). In a 2-D traversal a label of
    more than two classes walks its class path.

    :param image: the test image of the 2-D traversals; default the one among the first
        :data:`VISIBLE_CANDIDATES` whose reconstruction shows most (:func:`~.traversal.most_visible`)."""
    analysis = Analysis.from_run(run, "test", max_images=None, progress=False)
    names = analysis.label_names
    chosen = parse_label_list(labels, names)
    # Without --pairs, the pair is the first two labels asked for: --labels red,large draws red and large only.
    chosen_pairs = parse_pairs(pairs, names) if pairs is not None else [tuple(chosen[:2])] if len(chosen) >= 2 else []
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")
    if image is not None and not 0 <= image < len(analysis):
        raise ValueError(f"--image must be a test image index from 0 to {len(analysis) - 1}, got {image}")
    index = torch.arange(min(images, len(analysis))).to(analysis.device)
    values = {i: traversal_values(run.representation, i, steps, extend) for i in {*chosen, *(x for p in chosen_pairs for x in p)}}
    _check_traverse_sizes(run, chosen, chosen_pairs, {i: len(v) for i, v in values.items()}, len(index), steps)
    z_c, z_s = (z[index] for z in analysis.posterior_means)
    written = Written()
    ranges = {}
    categorical = {}
    for i in chosen:
        path = figure_path(run.path, f"traverse_{slug(names[i])}")
        k, name = run.num_classes[i], names[i]
        if k == 2:
            grid = traverse_images(run.representation, z_c, z_s, i, values[i])
            title = f"{name}: z_c from y=0 side to y=1 side (first dim)"
            figure = figures.save_labelled_grid(grid, path, [f"test {b}" for b in range(len(index))], _value_text(values[i]), title)
        else:
            figure = (_triangle_figure if k == 3 else _path_figure)(run, z_c, z_s, i, steps, path)
            categorical[name] = {"figure": "triangle" if k == 3 else "path", "class_means": run.representation.class_prior(i)[0].tolist()}
        written.figures.append(figure)
        ranges[name] = [float(values[i][0, 0]), float(values[i][-1, 0])]
    pair_image = None
    if chosen_pairs:
        if image is None:
            image = most_visible(analysis.reconstruct(torch.arange(min(VISIBLE_CANDIDATES, len(analysis)))))
            pair_image = {"index": image, "chosen": f"the most visible reconstruction of the first {VISIBLE_CANDIDATES}"}
        else:
            pair_image = {"index": image, "chosen": "--image"}
        z_c_pair, z_s_pair = (z[image] for z in analysis.posterior_means)
    for a, b in chosen_pairs:
        grid = traverse_pair(run.representation, z_c_pair, z_s_pair, (a, b), (values[a], values[b]))
        path = figure_path(run.path, f"traverse_pair_{slug(names[a])}_{slug(names[b])}")
        rows = [f"{names[a]} {t}" if run.num_classes[a] == 2 else t for t in _steps_text(run, a, values[a], steps)]
        cols = _steps_text(run, b, values[b], steps)
        title = f"test image {image}; rows: z_c of {names[a]}, columns: z_c of {names[b]}"
        written.figures.append(figures.save_labelled_grid(grid, path, rows, cols, title))
    written.metrics["traversal"] = {"steps": steps, "extend_prior_std": extend, "range": ranges, "pair_image": pair_image}
    if categorical:
        written.metrics["traversal"]["categorical"] = categorical
    return _finish(run, written)


@_task(generation.NEEDS, lower="--samples or --rows")
def generate(run: Run, label_specs: Sequence[str] = (), samples: int = 8, rows: int = 1) -> Written:
    """Conditional generation (Fig. 4). Each label vector (see
    :func:`~.labels.parse_label_vectors`; default: every label at each of its classes, the rest
    from ``p(y)``) gets ``rows`` rows of ``samples`` images. Row ``r`` of every vector uses the
    same ``z_s`` along the whole row, so rows differ only in ``y`` and ``z_c``."""
    names, num_classes = run.label_names, run.num_classes
    if label_specs:
        vectors = parse_label_vectors(label_specs, names, num_classes)
    else:
        vectors = [{i: v} for i in range(len(names)) for v in range(num_classes[i])]
    if samples < 1 or rows < 1:
        raise ValueError(f"--samples and --rows must be at least 1, got {samples} and {rows}")
    info = run.config.data.info
    sizes.require_figure(
        len(vectors) * rows, samples, info["channels"], info["image_size"],
        f"generate's figure of {len(vectors) * rows} row(s) of {samples} images", "--samples (or --rows)", run.device,
    )  # fmt: skip
    rep = run.representation
    z_s = rep.sample_style((rows,))  # one style per row, shared by every vector
    grid, row_names = [], []
    for fixed in vectors:
        y = sample_labels(rep, rows * samples, fixed).reshape(rows, samples, -1)
        grid.append(generate_images(rep, y, z_s.unsqueeze(1).expand(rows, samples, -1)))
        text = describe_vector(fixed, names)
        row_names += [text if rows == 1 else f"{text} #{r}" for r in range(rows)]
    described = [describe_vector(v, names) for v in vectors]
    path = figure_path(run.path, figure_name("generate", described if label_specs else ()))
    written = Written(figures=[figures.save_labelled_grid(torch.cat(grid), path, row_names, None, "z_c ~ p(z_c|y), z_s fixed along a row")])
    written.metrics["generation"] = {"vectors": described, "samples": samples, "rows": rows, "figure": path.name}
    return _finish(run, written)


def _check_intervene_sizes(run: Run, analysis: Analysis, chosen: Sequence[int], images: int, samples: int, draws: int) -> None:
    """Refuse, before decoding, what ``intervene``'s sizes cannot fit: the draws of one diversity
    map (``samples x images`` decoded at once), the switch grid and the class-draws grids."""
    info = run.config.data.info
    channels, size = info["channels"], info["image_size"]
    columns = 2 + len(intervention_columns(analysis.label_names, analysis.num_classes, chosen))
    sizes.require_figure(images, columns, channels, size, f"intervene's grid of {images} x {columns} images", "--images", run.device)
    sizes.require(
        sizes.decoded_bytes(samples * images, channels, size),
        f"each of intervene's diversity maps ({samples} draws of {images} images decoded at once)", "--samples (or --images)", run.device,
    )  # fmt: skip
    for i in (i for i in chosen if analysis.num_classes[i] > 2):
        k = analysis.num_classes[i]
        what = f"intervene's class draws of {analysis.label_names[i]} ({k} x {draws} images)"
        sizes.require_figure(k, draws, channels, size, what, "--draws", run.device)


@_task(interventions.NEEDS, lower="--samples, --images or --draws")
def intervene(run: Run, labels: Optional[str] = None, images: int = 8, samples: int = 32, draws: int = 8) -> Written:
    """Switch each binary label in turn, and set each label of more classes to each of its
    classes, for the first ``images`` test images (Fig. 11); the per-pixel variance over
    ``samples`` intervened draws as heat maps (Fig. 5); and for each label of more than two
    classes, ``draws`` draws of ``z_c^i`` per class decoded with the first test image's ``z_s``
    (Fig. 22, :func:`~.interventions.class_draws`)."""
    analysis = Analysis.from_run(run, "test", max_images=None, progress=False)
    names = analysis.label_names
    chosen = parse_label_list(labels, names)
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")
    if draws < 1:
        raise ValueError(f"--draws must be at least 1, got {draws}")
    _check_intervene_sizes(run, analysis, chosen, min(images, len(analysis)), samples, draws)
    written = Written()
    grid = switch_grid(analysis, chosen, images)
    rows = [f"test {k}" for k in range(grid.shape[0])]
    cols = ["original", "recon", *(caption for _, _, caption in intervention_columns(names, analysis.num_classes, chosen))]
    requested = [names[i] for i in chosen] if labels and labels.strip() else []
    written.figures.append(figures.save_labelled_grid(grid, figure_path(run.path, figure_name("intervene", requested)), rows, cols))
    maps, recon = diversity_maps(analysis, chosen, images, samples)
    # One colour scale for the figure, so labels compare; floored so that numerical noise in a
    # model whose switches change nothing (std < 0.01, below 3 grey levels) is not painted as heat.
    vmax = max(float(maps.max()), 1e-4)
    overlays = torch.stack([figures.heat_overlay(recon, maps[:, k], vmax) for k in range(len(chosen))], dim=1)
    recon = recon.clamp(0, 1).cpu()
    recon = recon.expand(-1, 3, -1, -1) if recon.shape[1] == 1 else recon  # overlays are RGB
    cells = torch.cat([recon.unsqueeze(1), overlays], dim=1)
    written.figures.append(
        figures.save_labelled_grid(
            cells, figure_path(run.path, figure_name("diversity", requested)), rows, ["recon", *(names[i] for i in chosen)],
            f"per-pixel variance over {samples} draws of the intervened z_c^i (max {vmax:.3g})",
            colour_scale=(vmax, "per-pixel variance (opacity grows with it)"),
        )
    )
    per_class = {}
    for i in (i for i in chosen if analysis.num_classes[i] > 2):
        cells = class_draws(analysis, i, 0, draws)
        per_class[names[i]] = class_variance(cells)
        written.figures.append(
            figures.save_labelled_grid(
                cells, figure_path(run.path, figure_name("class_draws", [names[i]])),
                [f"{names[i]}={k}" for k in range(len(cells))], [f"draw {d + 1}" for d in range(draws)],
                f"test image 0: z_c^{names[i]} ~ p(z_c | {names[i]} = row's class), z_s and the other z_c fixed",
            )  # fmt: skip
        )
    written.metrics["diversity"] = {
        "mean_pixel_variance": mean_variance(maps, names, chosen),
        "max_pixel_variance": vmax,
        "samples": samples,
        "num_images": grid.shape[0],
        "figures": [p.name for p in written.figures],
    }
    if per_class:
        written.metrics["diversity"]["class_pixel_variance"] = per_class
        written.metrics["diversity"]["draws"] = draws
    return _finish(run, written)


@_task(swaps.NEEDS, lower="--images")
def swap(run: Run, images: int = 6) -> Written:
    """Characteristic swaps among the first ``images`` test images (Figs. 6-7): the first row
    and column show the originals, cell ``(r, c)`` decodes ``z_c`` of row ``r``'s image with
    ``z_s`` of column ``c``'s."""
    analysis = Analysis.from_run(run, "test", max_images=None, progress=False)
    if images < 1:
        raise ValueError(f"--images must be at least 1, got {images}")
    index = torch.arange(min(images, len(analysis)))
    info = run.config.data.info
    n = len(index)
    sizes.require_figure(n + 1, n + 1, info["channels"], info["image_size"], f"swap's grid of {n} x {n} images", "--images", run.device)
    z_c, z_s = (z[index.to(analysis.device)] for z in analysis.posterior_means)
    cells = swap_grid(run.representation, z_c, z_s).cpu()  # [N, N, C, H, W]
    originals = analysis.images(index).cpu()
    n = len(index)
    blank = torch.ones_like(originals[:1])
    top = torch.cat([blank, originals]).unsqueeze(0)  # [1, N+1, ...]
    body = torch.cat([originals.unsqueeze(1), cells], dim=1)  # [N, N+1, ...]
    grid = torch.cat([top, body])
    rows = ["z_s from:", *(f"z_c of {k}" for k in range(n))]
    cols = ["", *(f"test {k}" for k in range(n))]
    path = figure_path(run.path, "swap")
    return _finish(run, Written(figures=[figures.save_labelled_grid(grid, path, rows, cols)]))
