"""Edit locality: how much of an intervention's change falls where the intervened attribute lives.

An intervention on label ``i`` sets ``z_c^i`` to the prior mean of a target class (the other
class of a binary label; each other class in turn for a label of ``K_i > 2``, the measures
averaging over them) and decodes, as in :mod:`.interventions`. Its *change* is ``|intervened -
reconstruction|`` per pixel, summed over channels. Two measures read it:

- :func:`mask_share` (data whose renderer knows where each attribute is drawn: ``shapes``): the
  share of the change inside the attribute's *region*, beside the region's share of the image,
  which is what a change spread evenly over the image would score. The region is where the
  renderer draws what the label changes (:data:`pyro_ccvae.data.shapes.LABEL_REGIONS`): the
  object for the object's labels, the stripe for ``stripe``, the background (neither object nor
  stripe) for ``dark_background``, each the union of the region before and after the edit (a
  moved object changes both places), every pixel it touches counted whole. The renderer's own
  counterfactual (:func:`~pyro_ccvae.data.shapes.render` with the label set to the target) scores
  exactly 1.
- :func:`keypoint_matches` (any data): ORB keypoints and descriptors matched between the
  reconstruction and the intervened image, beside those matched between the image and its
  reconstruction as the reference: an edit that leaves the rest of the image alone keeps its
  keypoints, so it should keep about as many as the reconstruction keeps of the image.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from matplotlib import colormaps

from ..errors import UserError
from . import figures
from .context import Analysis
from .ground_truth import has_ground_truth
from .interventions import NEEDS as INTERVENTION_NEEDS, switched, target_classes

#: what the measures ask of a model: the interventions' capabilities.
NEEDS = INTERVENTION_NEEDS
#: an image whose intervention changes its pixels by less than this in all (summed |change|) has
#: no share to speak of: counted in ``unchanged_images``, left out of the mean.
MIN_TOTAL_CHANGE = 1e-6

# ORB (Rublee et al. 2011, scikit-image's implementation). Its descriptor is read in a 31-pixel
# patch and keypoints nearer the border than that are dropped, so images are first upscaled
# (bilinear) by the smallest whole factor that makes their shorter side at least ORB_SIDE: x4 at
# 32 px, x2 at 64 px. On shapes, 256 px found about twice the keypoints at three times the cost,
# and more matches between unrelated images.
ORB_SIDE = 128
#: at most this many keypoints per image (the strongest by Harris response), over 8 scales of 1.2.
ORB_KEYPOINTS = 200
#: FAST's intensity threshold (grey levels in [0, 1]); scikit-image's default 0.08 finds almost no
#: corners on the flat synthetic images of ``shapes``.
ORB_FAST_THRESHOLD = 0.02
#: a match: mutual nearest neighbours (cross-check) whose descriptors differ in at most this
#: fraction of their 256 bits (unrelated descriptors differ in about half)...
MAX_DESCRIPTOR_DISTANCE = 0.25
#: ...at keypoints at most this many source pixels apart. An edit keeps everything else in place,
#: so a match elsewhere is two look-alike corners, not one point kept (without it, unrelated shapes
#: images matched about as often as an image and its blurred copy).
MAX_KEYPOINT_SHIFT = 2.0
#: the first images of the split the keypoint measure reads (ORB costs ~30 ms an image on one core).
KEYPOINT_IMAGES = 64
#: test images shown per label in the figure.
FIGURE_IMAGES = 2


def change_share(change: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per image, ``sum(change * region) / sum(change)`` of ``change [B, H, W] >= 0`` and a
    ``region [B, H, W]`` of 0s and 1s: the share of the change inside it; NaN where the image's
    total change is below :data:`MIN_TOTAL_CHANGE`."""
    total = change.flatten(1).sum(1)
    inside = (change * region).flatten(1).sum(1)
    return torch.where(total >= MIN_TOTAL_CHANGE, inside / total.clamp_min(MIN_TOTAL_CHANGE), torch.full_like(total, math.nan))


def _targets(analysis: Analysis, label: int):
    """The offsets of label ``label``'s target classes (see :func:`.interventions.target_classes`)."""
    return range(1, analysis.num_classes[label])


def _intervened(analysis: Analysis, index: torch.Tensor, label: int, offset: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reconstructions of the images at ``index``, the images decoded after setting ``z_c^label``
    to the prior mean of the target class at ``offset``, and that class (long), on the device."""
    where = index.to(analysis.device)
    z_c, z_s = (z[where] for z in analysis.posterior_means)
    current = analysis.current_labels[where]
    rep = analysis.representation
    after = rep.decode(switched(rep, z_c, current, label, sample=False, offset=offset), z_s)
    return rep.decode(z_c, z_s), after, target_classes(current, label, analysis.num_classes[label], offset)


def has_regions(analysis: Analysis) -> bool:
    """Whether the analysed data's renderer outlines the labels' regions (``shapes``)."""
    return has_ground_truth(analysis) and analysis.run.data.name == "shapes"


def label_regions(analysis: Analysis, index: torch.Tensor, label: int, target: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` of 0s and 1s on the device: the pixels the renderer changes when label
    ``label`` of the images at ``index`` is set to ``target`` (the union of its region before and
    after, every pixel the region touches)."""
    from ..data.shapes import LABEL_REGIONS, region_mask

    data = analysis.run.data
    name = analysis.label_names[label]
    before = analysis.split.attributes[index]
    after = before.clone()
    after[:, data.attribute_names.index(name)] = target.to(after.dtype).cpu()
    size = analysis.split.images.shape[-1]
    masks = [region_mask(a, size, data.attribute_names, LABEL_REGIONS[name]) for a in (before, after)]
    return (torch.maximum(*masks) > 0).float().to(analysis.device)


@torch.no_grad()
def mask_share(analysis: Analysis) -> dict:
    """Per label, over the split's images (and the target classes of a label of ``K_i > 2``):
    ``share``, the mean share of the intervention's change inside the label's region;
    ``area_fraction``, the region's mean share of the image over the same images (the share of a
    change spread evenly: the reference); ``mean_abs_change``, the change per pixel and channel
    (a share of almost nothing means little); ``region``, which region; ``unchanged_images``,
    images left out for changing by less than :data:`MIN_TOTAL_CHANGE`."""
    if not has_regions(analysis):
        raise UserError(f"the {analysis.run.data.name} data set has no renderer that outlines its labels; the mask share needs one (shapes)")
    from ..data.shapes import LABEL_REGIONS

    names = analysis.label_names
    out = {key: {} for key in ("share", "area_fraction", "mean_abs_change", "unchanged_images")}
    for i, name in enumerate(names):
        shares, areas, change_sum, unchanged, tries = 0.0, 0.0, 0.0, 0, 0
        for index in analysis.index_batches(f"mask share of {name}"):
            for offset in _targets(analysis, i):
                recon, after, target = _intervened(analysis, index, i, offset)
                change = (after - recon).abs()
                region = label_regions(analysis, index, i, target)
                share = change_share(change.sum(1), region)
                defined = ~share.isnan()
                shares += float(share[defined].sum())
                areas += float(region.flatten(1).mean(1)[defined].sum())
                change_sum += float(change.mean((1, 2, 3)).sum())
                unchanged += int((~defined).sum())
                tries += len(index)
        counted = tries - unchanged
        out["share"][name] = shares / counted if counted else None
        out["area_fraction"][name] = areas / counted if counted else None
        out["mean_abs_change"][name] = change_sum / tries
        out["unchanged_images"][name] = unchanged / max(len(_targets(analysis, i)), 1)
    out["region"] = {name: LABEL_REGIONS[name] for name in names}
    out["num_images"] = len(analysis)
    return out


def orb_scale(height: int, width: int) -> int:
    """The whole upscaling factor that makes the shorter side at least :data:`ORB_SIDE`."""
    return max(1, -(-ORB_SIDE // min(height, width)))


def orb_features(images: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """ORB keypoints and descriptors of ``images [B, C, H, W]`` in [0, 1] (grey: the channels'
    mean), upscaled by :func:`orb_scale`: per image ``(keypoints [K, 2]`` as (row, column) in the
    source image's pixels, ``descriptors [K, 256]`` bool), ``K = 0`` where ORB finds none."""
    from skimage.feature import ORB

    scale = orb_scale(*images.shape[-2:])
    grey = images.detach().float().clamp(0, 1).mean(1, keepdim=True)
    big = torch.nn.functional.interpolate(grey, scale_factor=scale, mode="bilinear", align_corners=False)
    out = []
    for image in big[:, 0].cpu().double().numpy():
        orb = ORB(n_keypoints=ORB_KEYPOINTS, fast_threshold=ORB_FAST_THRESHOLD)
        try:
            orb.detect_and_extract(image)
        except RuntimeError:  # scikit-image's answer to an image without a corner (a blank one)
            out.append((np.zeros((0, 2)), np.zeros((0, 256), dtype=bool)))
            continue
        out.append((orb.keypoints / scale, orb.descriptors))
    return out


def count_matches(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]) -> int:
    """Matches between two images' :func:`orb_features`: mutual nearest descriptors (Hamming)
    within :data:`MAX_DESCRIPTOR_DISTANCE`, at keypoints within :data:`MAX_KEYPOINT_SHIFT` pixels."""
    from skimage.feature import match_descriptors

    if len(first[1]) == 0 or len(second[1]) == 0:
        return 0
    pairs = match_descriptors(first[1], second[1], metric="hamming", cross_check=True, max_distance=MAX_DESCRIPTOR_DISTANCE)
    shift = np.linalg.norm(first[0][pairs[:, 0]] - second[0][pairs[:, 1]], axis=1)
    return int((shift <= MAX_KEYPOINT_SHIFT).sum())


@torch.no_grad()
def keypoint_matches(analysis: Analysis, count: int = KEYPOINT_IMAGES) -> dict:
    """Over the first ``count`` images: per label ``matches``, the mean ORB matches between the
    reconstruction and the intervened image (a label of ``K_i > 2``: averaged over the target
    classes); ``reference_matches``, the mean matches between the image and its reconstruction
    (what a faithful decoder keeps); ``reconstruction_keypoints``, the mean keypoints found in a
    reconstruction (the most an image can match)."""
    names = analysis.label_names
    matches = dict.fromkeys(names, 0.0)
    reference, keypoints, seen = 0, 0, 0
    for index in analysis.index_batches("keypoint matches", count):
        recon_features = orb_features(analysis.reconstruct(index))
        for kept, found in zip(orb_features(analysis.images(index)), recon_features):
            reference += count_matches(kept, found)
            keypoints += len(found[1])
        seen += len(index)
        for i, name in enumerate(names):
            offsets = _targets(analysis, i)
            for offset in offsets:
                _, after, _ = _intervened(analysis, index, i, offset)
                found = sum(count_matches(a, b) for a, b in zip(recon_features, orb_features(after)))
                matches[name] += found / len(offsets)
    return {
        "matches": {name: value / seen for name, value in matches.items()},
        "reference_matches": reference / seen,
        "reconstruction_keypoints": keypoints / seen,
        "num_images": seen,
        "orb": {
            "upscale": orb_scale(*analysis.split.images.shape[-2:]), "n_keypoints": ORB_KEYPOINTS,
            "fast_threshold": ORB_FAST_THRESHOLD, "max_descriptor_distance": MAX_DESCRIPTOR_DISTANCE,
            "max_keypoint_shift": MAX_KEYPOINT_SHIFT,
        },
    }  # fmt: skip


def _colour_map(change: torch.Tensor, vmax: float) -> torch.Tensor:
    """``change [B, H, W]`` -> ``[B, 3, H, W]`` in :data:`~.figures.HEAT_MAP` from 0 to ``vmax``."""
    level = (change.detach().float().cpu() / max(vmax, 1e-12)).clamp(0, 1).numpy()
    return torch.from_numpy(colormaps[figures.HEAT_MAP](level)[..., :3]).float().permute(0, 3, 1, 2)


@torch.no_grad()
def locality_figure(analysis: Analysis, path: Path, count: int = FIGURE_IMAGES) -> Path:
    """For each label and each of the first ``count`` images, a row: the image, its
    reconstruction, the image decoded after the intervention (a label of ``K_i > 2``: to the next
    class; its row says from which class to which), the change (colour bar) and, where the
    renderer outlines it, the label's region."""
    index = torch.arange(min(count, len(analysis)))
    regions = has_regions(analysis)
    rows, names, changes = [], [], []
    originals = analysis.images(index).cpu()
    for i, name in enumerate(analysis.label_names):
        recon, after, target = _intervened(analysis, index, i, 1)
        changes.append((after - recon).abs().sum(1).cpu())
        cells = [originals, recon.cpu(), after.cpu()]
        if regions:
            cells.append(label_regions(analysis, index, i, target).cpu().unsqueeze(1))
        rows.append(cells)
        current = analysis.current_labels[index.to(analysis.device), i].long()
        binary = analysis.num_classes[i] == 2
        names += [f"test {b}: " + (f"switch {name}" if binary else f"{name} {int(current[b])} -> {int(target[b])}") for b in range(len(index))]
    vmax = max(max(float(c.max()) for c in changes), 1e-4)
    grid = []
    for cells, change in zip(rows, changes):
        rgb = [c.clamp(0, 1).expand(-1, 3, -1, -1) for c in cells]
        rgb.insert(3, _colour_map(change, vmax))
        grid.append(torch.stack(rgb, dim=1))
    columns = ["original", "recon", "intervened", "|change|"] + (["region"] if regions else [])
    title = "intervention: z_c^i set to the target class's prior mean" + (
        "; region: where the renderer changes the label (white)" if regions else ""
    )
    return figures.save_labelled_grid(
        torch.cat(grid), path, names, columns, title,
        colour_scale=(vmax, "|intervened - recon|, summed over channels"),
    )  # fmt: skip


def edit_locality(analysis: Analysis, path: Path, keypoint_images: Optional[int] = KEYPOINT_IMAGES) -> tuple[dict, Path]:
    """``evaluate``'s section: :func:`mask_share` where the data outline their labels' regions,
    :func:`keypoint_matches` everywhere, and :func:`locality_figure` saved at ``path``."""
    section = {}
    if has_regions(analysis):
        section["mask_share"] = mask_share(analysis)
    section["keypoint_matches"] = keypoint_matches(analysis, keypoint_images)
    return section, locality_figure(analysis, path)


def describe(section: dict) -> str:
    """One line of an :func:`edit_locality` section for the terminal."""

    def show(value) -> str:
        return "n/a" if value is None else f"{value:.3g}"

    parts = []
    if "mask_share" in section:
        ms = section["mask_share"]
        shares = ", ".join(f"{name} {show(v)} ({show(ms['area_fraction'][name])})" for name, v in ms["share"].items())
        parts.append(f"share of the change in the label's region (even spread) {shares}")
    km = section["keypoint_matches"]
    matches = ", ".join(f"{name} {show(v)}" for name, v in km["matches"].items())
    parts.append(f"ORB matches per image, reconstruction to intervened {matches} (image to reconstruction {show(km['reference_matches'])})")
    return "; ".join(parts)
