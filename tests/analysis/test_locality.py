"""Edit locality (``evaluate``'s ``edit_locality``): the share of an intervention's change inside
the region the renderer draws the label in, and ORB keypoint matches."""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from pyro_ccvae import api
from pyro_ccvae.analysis import locality
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.data import shapes
from pyro_ccvae.run_directory import load_run

from cli_helpers import cli  # tests/ is on the path of its top-level modules

TINY = ["--dataset", "shapes", "--num-train", "64", "--image-size", "32", "--labels", "square,red,stripe,dark_background"]
TRAINING = ["--epochs", "1", "--batch-size", "32", "--sup-frac", "1.0", "--device", "cpu", "--no-progress"]
EVALUATE = ["--iw-samples", "2", "--max-images", "8", "--gen-samples", "4", "--attribute-epochs", "0", "--no-progress", "--device", "cpu"]


def factors(n: int, seed: int = 0, names=shapes.ATTRIBUTE_NAMES) -> np.ndarray:
    return shapes.sample_attributes(n, np.random.default_rng(seed), names)


def test_a_change_only_inside_the_region_has_share_one():
    region = (shapes.region_mask(factors(6), 32) > 0).float()
    change = torch.rand(6, 32, 32, generator=torch.Generator().manual_seed(0)) * region
    assert torch.allclose(locality.change_share(change, region), torch.ones(6))


def test_a_change_spread_evenly_has_the_regions_area_fraction():
    region = (shapes.region_mask(factors(6), 32) > 0).float()
    share = locality.change_share(torch.full((6, 32, 32), 0.3), region)
    assert torch.allclose(share, region.mean((1, 2)))
    assert ((share > 0.05) & (share < 0.5)).all()  # an object, neither a speck nor the image


def test_no_change_has_no_share():
    assert locality.change_share(torch.zeros(2, 4, 4), torch.ones(2, 4, 4)).isnan().all()


def test_the_object_mask_agrees_with_the_rendered_image():
    """Pixels fully inside the object have one colour, those fully in the background another."""
    a = factors(20, seed=3)
    images = shapes.render(a, 32).float()
    for region, other in (("object", "background"), ("background", "object")):
        inside, outside = shapes.region_mask(a, 32, region=region), shapes.region_mask(a, 32, region=other)
        for image, mask, rest in zip(images, inside, outside):
            colours = image[:, mask == 1].T
            assert len(colours) > 10 and (colours == colours[0]).all()
            assert (image[:, rest == 1].T != colours[0]).any(-1).all()
    stripe = shapes.region_mask(a, 32, region="stripe")
    assert ((stripe.flatten(1).amax(1) == 1) == torch.from_numpy(a[:, 4] > 0.5)).all()


@pytest.mark.parametrize("labels", [shapes.LABEL_NAMES, ("shape", "colour", "large", "right", "stripe", "dark_background")])
def test_the_renderers_own_edit_changes_only_its_region(labels):
    """The renderer's counterfactual (one label set to another class, every other factor kept)
    changes pixels inside the union of the label's region before and after, and only there: the
    ideal edit scores 1."""
    names = shapes.attribute_names(labels)
    a = factors(50, seed=1, names=names)
    for label in labels:
        column, classes = names.index(label), len(shapes.CATEGORICAL_LABELS[label][1]) if label in shapes.CATEGORICAL_LABELS else 2
        after = a.copy()
        after[:, column] = (a[:, column] + 1) % classes
        change = (shapes.render(after, 32, names).float() - shapes.render(a, 32, names).float()).abs().sum(1)
        region_of = lambda x: shapes.region_mask(x, 32, names, shapes.LABEL_REGIONS[label])  # noqa: E731
        region = (torch.maximum(region_of(a), region_of(after)) > 0).float()
        share = locality.change_share(change, region)
        # at most a grey level's rounding where the stripe's float blend covers the background
        assert torch.allclose(share, torch.ones(50), atol=1e-3), label
        assert region.mean() < 0.9 and (change > 0).float().mean() > 0.3 * region.mean(), label  # the edit changes its region


def test_an_unknown_region_is_one_line():
    with pytest.raises(ValueError, match="regions are object, stripe, background, not 'sky'"):
        shapes.region_mask(factors(1), 32, region="sky")


def test_orb_matches_an_image_with_itself_many_times_and_unrelated_noise_hardly_at_all():
    images = shapes.render(factors(8, seed=2), 32).float() / 255
    noise = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    found, random = locality.orb_features(images), locality.orb_features(noise)
    itself = np.mean([locality.count_matches(f, f) for f in found])
    unrelated = np.mean([locality.count_matches(f, r) for f, r in zip(found, random)])
    between_noise = np.mean([locality.count_matches(r, s) for r, s in zip(random, random[1:])])
    assert itself == np.mean([len(f[1]) for f in found]) and itself >= 15
    assert unrelated <= 1 and between_noise <= 1
    assert locality.orb_scale(32, 32) == 4 and locality.orb_scale(64, 64) == 2


def test_a_blank_image_has_no_keypoints_and_no_matches():
    (blank,) = locality.orb_features(torch.ones(1, 3, 32, 32))
    assert blank[1].shape == (0, 256) and locality.count_matches(blank, blank) == 0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("locality") / "ccvae"
    result = cli("train", "--model", "ccvae", "--out", out, *TINY, "--z-style-dim", "3", "--k-samples", "4", *TRAINING)
    assert result.exit_code == 0, result.output
    return out


def test_evaluate_measures_edit_locality_on_shapes(run_dir):
    result = cli("evaluate", run_dir, *EVALUATE)
    assert result.exit_code == 0, result.output
    section = json.loads((run_dir / "metrics.json").read_text())["edit_locality"]
    labels = ["square", "red", "stripe", "dark_background"]
    share = section["mask_share"]
    assert list(share["share"]) == labels and share["num_images"] == 8
    assert share["region"] == {"square": "object", "red": "object", "stripe": "stripe", "dark_background": "background"}
    for name in labels:
        assert 0 <= share["share"][name] <= 1 and 0 < share["area_fraction"][name] < 1
    # the background is most of the image; an object a small part of it
    assert share["area_fraction"]["dark_background"] > 0.5 > share["area_fraction"]["red"]
    keypoints = section["keypoint_matches"]
    assert list(keypoints["matches"]) == labels and keypoints["num_images"] == 8
    assert keypoints["orb"]["upscale"] == 4 and keypoints["reference_matches"] >= 0
    assert all(0 <= v <= keypoints["reconstruction_keypoints"] for v in keypoints["matches"].values())
    assert "edit locality: share of the change in the label's region" in result.output
    assert (run_dir / "figures" / "locality.png").exists()
    assert "locality.png" in (run_dir / "report.html").read_text()


def test_data_without_a_renderer_get_the_keypoints_only(run_dir):
    run = load_run(run_dir, "cpu")
    analysis = Analysis.from_run(run, "test", max_images=4, progress=False)
    analysis.split = dataclasses.replace(analysis.split, attributes=None)
    section, figure = locality.edit_locality(analysis, run_dir / "figures" / "locality_plain.png", keypoint_images=4)
    assert set(section) == {"keypoint_matches"} and section["keypoint_matches"]["num_images"] == 4
    assert figure.exists()
    with pytest.raises(ValueError, match="no renderer that outlines its labels"):
        locality.mask_share(analysis)


def test_a_family_without_interventions_skips_it_with_the_reason(run_dir, monkeypatch):
    real = api.load_run

    def without_interventions(*args, **kwargs):
        loaded = real(*args, **kwargs)
        partial = copy.copy(loaded.representation)
        partial.family, partial.capabilities = "partial", loaded.representation.capabilities - {"intervene"}
        loaded.representation = partial
        return loaded

    monkeypatch.setattr(api, "load_run", without_interventions)
    result = cli("evaluate", run_dir, *EVALUATE)
    assert result.exit_code == 0, result.output
    written = json.loads((run_dir / "metrics.json").read_text())
    assert "edit_locality" not in written
    assert written["evaluation"]["skipped"]["edit_locality"] == "needs the capability 'intervene', which model 'partial' does not offer"
    assert "skipped edit_locality: needs the capability 'intervene'" in result.output
    assert not (run_dir / "figures" / "locality.png").exists()


def test_labels_of_more_classes_average_over_their_targets(tmp_path, monkeypatch):
    """Categorical ``shape`` and ``colour``: the mask share over every target class, each edit's
    region the union of the shapes before and after, and figure rows saying from which class to which."""
    out = tmp_path / "categorical"
    labels = ["--labels", "shape,colour,right"]
    result = cli("train", "--model", "ccvae", "--out", out, *TINY[:-2], *labels, "--z-style-dim", "3", "--k-samples", "4", *TRAINING)
    assert result.exit_code == 0, result.output
    analysis = Analysis.from_run(load_run(out, "cpu"), "test", max_images=6, progress=False)
    shown = []
    monkeypatch.setattr(locality.figures, "save_labelled_grid", lambda grid, path, rows, *rest, **kw: shown.append(rows) or path)
    section, _ = locality.edit_locality(analysis, tmp_path / "locality.png", keypoint_images=3)
    share = section["mask_share"]
    assert list(share["share"]) == ["shape", "colour", "right"] and share["unchanged_images"]["shape"] == 0
    assert all(0 <= v <= 1 for v in share["share"].values())
    current = analysis.current_labels[:2].long()
    assert shown[0][:3] == [f"test 0: shape {int(current[0, 0])} -> {(int(current[0, 0]) + 1) % 3}",
                            f"test 1: shape {int(current[1, 0])} -> {(int(current[1, 0]) + 1) % 3}",
                            f"test 0: colour {int(current[0, 1])} -> {(int(current[0, 1]) + 1) % 4}"]
    assert shown[0][-1] == "test 1: switch right"
    # a shape's region is the union of the shapes before and after: never smaller than colour's (the object alone)
    assert share["area_fraction"]["shape"] >= share["area_fraction"]["colour"]
