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
from ..errors import UserError
from ..run_directory import Run, check_results, figure_path, read_metrics, results_lock, update_metrics
from . import figures, generation, interventions, sections, swap as swaps, traversal
from .classifier import load_classifier
from .context import Analysis
from .fid import LEAST_IMAGES as FID_LEAST_IMAGES
from .generation import generate as generate_images, sample_labels
from .interventions import class_draws, class_variance, diversity_maps, intervention_columns, mean_variance, switch_grid
from .labels import describe_vector, parse_label_list, parse_label_vectors, parse_pairs
from .outputs import figure_name, slug
from .report import write_report
from .swap import swap_grid
from .traversal import (
    class_legs, most_visible, path_captions, traversal_values, traverse as traverse_images, traverse_pair, traverse_simplex,
)  # fmt: skip

#: how many test images ``traverse`` looks through for the one its 2-D traversals show.
VISIBLE_CANDIDATES = 256


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
    run's own Pyro parameter store (see :meth:`pyro_ccvae.run_directory.Run.scope`). Its sizes are checked
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


@_task(sections.NEEDS, lower="--batch-size, --max-images or --iw-samples")
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
            raise UserError(f"{name} must be at least {least}, got {value}")
    evaluation = sections.Evaluation(
        run, Analysis.from_run(run, "test", max_images, batch_size, progress), iw_samples, gen_samples, attribute_epochs, progress,
        fid_weights, fid_images,
    )  # fmt: skip
    # The judge is loaded and checked against the run first: bad input fails before the slow part.
    if classifier_dir is not None:
        reader = sections.label_reader(run, load_classifier(classifier_dir, run.device))
        evaluation.judge = sections.Judge("independent classifier", Path(classifier_dir), reader)
    sections.run_sections(evaluation)
    written = Written(figures=evaluation.figures, metrics=evaluation.metrics)
    earlier = read_metrics(run.path)  # under the results lock: what _finish removes is what was there
    written.dropped = [name for name in sections.JUDGED_SECTIONS if name in earlier and name not in written.metrics]
    return _finish(run, written, remove=sections.NAMES)


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
        raise UserError(f"--images must be at least 1, got {images}")
    if image is not None and not 0 <= image < len(analysis):
        raise UserError(f"--image must be a test image index from 0 to {len(analysis) - 1}, got {image}")
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
        raise UserError(f"--samples and --rows must be at least 1, got {samples} and {rows}")
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
        raise UserError(f"--images must be at least 1, got {images}")
    if draws < 1:
        raise UserError(f"--draws must be at least 1, got {draws}")
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
        raise UserError(f"--images must be at least 1, got {images}")
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
