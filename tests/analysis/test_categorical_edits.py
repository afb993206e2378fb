"""Interventions, generation, traversals, figures and the report for labels of more than two
classes, on the fake categorical model whose decoder and judge give known answers."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pyro_ccvae import api
from pyro_ccvae.analysis import figures, metrics, sections, tasks
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.generation import generation_accuracy, requested_class_accuracy
from pyro_ccvae.analysis.ground_truth import nuisance_transfer
from pyro_ccvae.analysis.interventions import (
    class_draws, diversity_maps, intervention_columns, single_interventions, switch_grid, switched, target_classes,
)  # fmt: skip
from pyro_ccvae.analysis.report import write_report
from pyro_ccvae.analysis.traversal import (
    class_path, path_captions, simplex_values, simplex_weights, traversal_values, traverse_simplex,
)  # fmt: skip
from pyro_ccvae.data import ImageSet
from pyro_ccvae.run_directory import update_metrics

from .categorical_fakes import NAMES, NUM_CLASSES, SPACING, fake_analysis, fake_run

GREY = 1 / 255  # one grey level: the decoded pixel of z_c^i = 1


# --- interventions -------------------------------------------------------------------------------


def test_targets_run_over_every_other_class():
    current = torch.tensor([[2.0], [0.0]])
    assert [target_classes(current, 0, 3, o).tolist() for o in (1, 2)] == [[0, 1], [1, 2]]
    assert target_classes(torch.tensor([[0.0], [1.0]]), 0, 2).tolist() == [1, 0]  # binary: the other class
    analysis = fake_analysis()
    z_c, current = analysis.posterior_means[0][:4], analysis.current_labels[:4]
    moved = switched(analysis.representation, z_c, current, 1, sample=False, offset=3)
    assert torch.equal(moved[:, 1, 0], SPACING * ((current[:, 1] + 3) % 4)) and torch.equal(moved[:, [0, 2]], z_c[:, [0, 2]])


def test_single_interventions_of_an_exact_model():
    out = single_interventions(fake_analysis())
    for key in ("intended_rate", "exact_rate", "target_rate"):
        assert out[key] == dict.fromkeys(NAMES, 1.0)
    assert out["others_flipped"] == dict.fromkeys(NAMES, 0.0) and out["off_diagonal_mean"] == 0.0
    # shape is 0 in every image, so class 0 is never a target; digit's targets cover each class
    assert out["intended_rate_by_class"] == {"shape": [None, 1.0, 1.0], "digit": [1.0] * 4}
    # diagonal: |log C(y_i = r_i | mean of class t)|, averaged over the targets t != r: (t - r)^2 SPACING^2 / 2
    assert out["matrix"][0][0] == pytest.approx((1 + 4) / 2 * SPACING**2 / 2)
    assert out["matrix"][2][2] == pytest.approx(SPACING**2 / 2)


def test_an_entangled_intervention_is_not_exact():
    """Setting shape to 1 or 2 adds 10 or 20 grey levels to the flag's pixel: the judge then reads
    flag = 1 on every image whose flag was 0 (half of them)."""
    out = single_interventions(fake_analysis(leak=1.0))
    assert out["intended_rate"]["shape"] == 1.0 and out["exact_rate"]["shape"] == 0.5
    assert out["others_flipped"]["shape"] == pytest.approx(0.25)  # flag in half the images, digit never
    assert out["target_rate"]["shape"] == 0.5
    assert out["exact_rate"]["digit"] == out["exact_rate"]["flag"] == 1.0
    assert out["matrix"][0][2] > 0 and out["matrix"][1][2] == 0.0


def test_switch_grid_has_a_column_per_class():
    columns = intervention_columns(NAMES, NUM_CLASSES, [1, 2])
    assert [c for _, _, c in columns] == ["digit=0", "digit=1", "digit=2", "digit=3", "switch flag"]
    analysis = fake_analysis()
    grid = switch_grid(analysis, [1, 2], 3)  # [B, 2 + 5, 1, 1, 3]
    assert grid.shape[:2] == (3, 7)
    for k in range(4):  # "digit=k": the digit pixel near class k's mean (one draw, std 1 grey level)
        assert torch.allclose(grid[:, 2 + k, 0, 0, 1], torch.full((3,), SPACING * k * GREY), atol=5 * GREY)
    assert torch.allclose(grid[:, 6, 0, 0, 2], SPACING * (1 - analysis.current_labels[:3, 2]) * GREY, atol=5 * GREY)


def test_diversity_maps_light_only_the_intervened_pixel():
    maps, _ = diversity_maps(fake_analysis(), [0, 1, 2], count=2, samples=800)
    for j in range(3):  # a draw's pixel varies by one grey level (the prior's std), the others not at all
        assert torch.allclose(maps[:, j, 0, j], torch.full((2,), GREY**2), rtol=0.15)
        assert torch.all(maps[:, j, 0, [i for i in range(3) if i != j]] == 0)


def test_class_draws_rows_follow_their_class():
    analysis = fake_analysis()
    cells = class_draws(analysis, 1, image=3, draws=600)  # digit, 4 classes
    assert cells.shape[:2] == (4, 600)
    means = cells[..., 0, 0, 1].mean(1)
    assert torch.allclose(means, SPACING * torch.arange(4.0) * GREY, atol=0.2 * GREY)
    assert torch.allclose(cells[..., 0, 0, 1].var(1), torch.full((4,), GREY**2), rtol=0.2)
    image = analysis.images(torch.tensor([3]))[0, 0, 0]
    assert torch.all(cells[..., 0, 0, 0] == image[0]) and torch.all(cells[..., 0, 0, 2] == image[2])  # the rest fixed


# --- generation ------------------------------------------------------------------------------------


def test_generation_of_separated_classes_reads_back():
    analysis = fake_analysis()
    out = generation_accuracy(analysis, num_samples=60)
    assert out["accuracy"] == dict.fromkeys(NAMES, 1.0)
    assert out["chance"] == {"shape": pytest.approx(1 / 3), "digit": 0.25, "flag": 0.5}
    requested = requested_class_accuracy(analysis, samples_per_class=20)
    assert requested["requested_class_rate"] == {"shape": [1.0] * 3, "digit": [1.0] * 4}
    assert requested["chance"] == {"shape": 1 / 3, "digit": 1 / 4}


def test_generation_that_ignores_the_labels_is_at_chance():
    requested = requested_class_accuracy(fake_analysis(separation=0.0), samples_per_class=20)
    # every class generates the class-0 image: the judge reads 0 whatever was asked
    assert requested["requested_class_rate"] == {"shape": [1.0, 0.0, 0.0], "digit": [1.0, 0.0, 0.0, 0.0]}
    assert requested["requested_class_rate_mean"] == {"shape": pytest.approx(1 / 3), "digit": 0.25} == {
        n: pytest.approx(c) for n, c in requested["chance"].items()
    }


def test_requested_class_accuracy_is_for_categorical_labels_only():
    analysis = fake_analysis()
    analysis.run.representation.num_classes = [2, 2, 2]
    assert requested_class_accuracy(analysis) is None


# --- traversals ------------------------------------------------------------------------------------


def test_class_path_passes_through_every_mean_in_order():
    locs = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 4.0], [0.0, 4.0]])
    path = class_path(locs, steps=3)
    assert path.shape == (7, 2)
    assert torch.equal(path[::2], locs) and torch.equal(path[1], torch.tensor([1.0, 0.0])) and torch.equal(path[5], torch.tensor([1.0, 4.0]))
    assert path_captions("digit", 4, 3) == ["digit=0", "", "digit=1", "", "digit=2", "", "digit=3"]
    rep = fake_analysis().representation
    assert torch.equal(traversal_values(rep, 1, steps=2)[:, 0], SPACING * torch.arange(4.0))
    binary = traversal_values(rep, 2, steps=3, extend=0.0)  # the binary label keeps its line
    assert torch.equal(binary[:, 0], torch.tensor([0.0, SPACING / 2, SPACING]))


def test_simplex_weights_are_barycentric():
    weights, inside = simplex_weights(5)
    assert torch.equal(inside, torch.ones(5, 5, dtype=torch.bool).tril())
    assert torch.allclose(weights[inside].sum(-1), torch.ones(15)) and (weights[inside] >= 0).all()
    assert torch.equal(weights[0, 0], torch.tensor([1.0, 0, 0]))  # top corner: class 0
    assert torch.equal(weights[4, 0], torch.tensor([0, 1.0, 0])) and torch.equal(weights[4, 4], torch.tensor([0, 0, 1.0]))
    assert torch.allclose(weights[2, 1], torch.tensor([0.5, 0.25, 0.25]))


def test_the_triangle_decodes_mixes_of_the_class_means():
    analysis = fake_analysis()
    rep = analysis.representation
    values, inside = simplex_values(rep, 0, steps=3)  # d_c = 1: the means 0, 10, 20 lie on a line
    assert torch.equal(values[..., 0][inside], torch.tensor([0.0, 5.0, 10.0, 10.0, 15.0, 20.0]))
    z_c, z_s = (z[1] for z in analysis.posterior_means)
    grid = traverse_simplex(rep, z_c, z_s, 0, steps=3)
    assert grid.shape[:2] == (3, 3)
    assert torch.allclose(grid[..., 0, 0, 0][inside], values[..., 0][inside] * GREY)
    assert torch.all(grid[~inside] == 1)  # outside the triangle: white
    with pytest.raises(ValueError, match="needs a label of 3 classes"):
        simplex_values(rep, 1, steps=3)


# --- tasks, figures and the report ------------------------------------------------------------------


@pytest.fixture
def grids(monkeypatch):
    """Every labelled grid a task saves: file name -> (images, row labels, column labels, title)."""
    saved = {}
    real = figures.save_labelled_grid

    def keep(images, path, row_labels=None, col_labels=None, title=None, **kwargs):
        saved[Path(path).name] = SimpleNamespace(images=images, rows=list(row_labels or []), cols=list(col_labels or []), title=title)
        return real(images, path, row_labels, col_labels, title, **kwargs)

    monkeypatch.setattr(figures, "save_labelled_grid", keep)
    return saved


@pytest.fixture
def drawn(monkeypatch):
    """Every matplotlib figure saved: file name -> its texts (tick labels, titles, axis labels, legend)."""
    saved = {}
    real = figures._save

    def keep(fig, path):
        texts = [t.get_text() for t in fig.texts]
        for ax in fig.axes:
            texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
            texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        for legend in fig.legends:
            texts += [t.get_text() for t in legend.get_texts()]
        saved[Path(path).name] = texts
        return real(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return saved


def test_traverse_draws_a_triangle_and_a_path(tmp_path, grids, drawn):
    run = fake_run(tmp_path)
    written = tasks.traverse(run, steps=3, images=2)
    assert {p.name for p in written.figures} == {"traverse_shape.png", "traverse_digit.png", "traverse_flag.png", "traverse_pair_shape_digit.png"}
    triangle = grids["traverse_shape.png"]
    assert triangle.images.shape[:2] == (2 * 3, 3)  # two images' triangles, one below the other
    assert triangle.rows[:3] == ["test 0: w(shape=0) 1.00", "test 0: w(shape=0) 0.50", "test 0: w(shape=0) 0.00"]
    assert triangle.cols == ["w(shape=2) 0.00", "w(shape=2) 0.50", "w(shape=2) 1.00"]
    assert "top shape=0, bottom left shape=1, bottom right shape=2" in triangle.title
    assert "test 0: w(shape=0) 1.00" in drawn["traverse_shape.png"]  # the captions are on the figure's axes
    path = grids["traverse_digit.png"]
    assert path.rows == [f"test {b}: digit={c} to {c + 1}" for b in range(2) for c in range(3)]
    assert path.cols == ["from", "0.50", "to"]
    pixel = path.images[..., 0, 0, 1] / GREY  # the digit pixel, in grey levels: leg c runs from mean c to mean c+1
    assert torch.allclose(pixel[:3], torch.tensor([[0.0, 5, 10], [10, 15, 20], [20, 25, 30]]), atol=1e-4)
    assert grids["traverse_flag.png"].images.shape[:2] == (2, 3)
    pair = grids["traverse_pair_shape_digit.png"]
    assert pair.rows == ["shape=0", "", "shape=1", "", "shape=2"] and pair.cols == path_captions("digit", 4, 3)
    traversal = json.loads((tmp_path / "metrics.json").read_text())["traversal"]
    assert traversal["categorical"]["shape"] == {"figure": "triangle", "class_means": [[0.0], [10.0], [20.0]]}
    assert traversal["categorical"]["digit"]["figure"] == "path" and "flag" not in traversal["categorical"]


def test_intervene_sets_each_class_and_draws_each_class(tmp_path, grids):
    written = tasks.intervene(fake_run(tmp_path), images=3, samples=4, draws=5)
    assert {p.name for p in written.figures} == {"intervene.png", "diversity.png", "class_draws_shape.png", "class_draws_digit.png"}
    assert grids["intervene.png"].cols == ["original", "recon", "shape=0", "shape=1", "shape=2", *(f"digit={k}" for k in range(4)), "switch flag"]
    draws = grids["class_draws_digit.png"]
    assert draws.images.shape[:2] == (4, 5)
    assert draws.rows == [f"digit={k}" for k in range(4)] and draws.cols == [f"draw {d}" for d in range(1, 6)]
    diversity = json.loads((tmp_path / "metrics.json").read_text())["diversity"]
    assert set(diversity["class_pixel_variance"]) == {"shape", "digit"} and diversity["draws"] == 5
    assert all(len(v) == k for v, k in zip(diversity["class_pixel_variance"].values(), (3, 4)))
    with pytest.raises(ValueError, match="--draws must be at least 1"):
        tasks.intervene(fake_run(tmp_path), draws=0)


def test_generate_takes_class_indices(tmp_path, grids):
    run = fake_run(tmp_path)
    written = tasks.generate(run, ["digit=3;shape=2,flag=1"], samples=20)
    assert [p.name for p in written.figures] == ["generate_digit_3__shape_2_flag_1.png"]
    grid = grids["generate_digit_3__shape_2_flag_1.png"]
    assert grid.rows == ["digit=3", "shape=2,flag=1"]
    assert torch.allclose(grid.images[0, :, 0, 0, 1].mean(), torch.tensor(3 * SPACING * GREY), atol=0.5 * GREY)
    tasks.generate(run, samples=1)
    assert grids["generate.png"].rows == [*(f"shape={k}" for k in range(3)), *(f"digit={k}" for k in range(4)), "flag=0", "flag=1"]
    with pytest.raises(ValueError, match=r"label 'digit' has the classes 0\.\.3"):
        tasks.generate(run, ["digit=4"])


def test_confusion_and_density_figures_are_labelled(tmp_path, drawn):
    analysis = fake_analysis()
    run = fake_run(tmp_path)
    classification = metrics.classification(analysis)
    paths = sections.confusion_figures(run, classification, analysis.num_classes)
    assert sorted(p.name for p in paths) == ["confusion_digit.png", "confusion_shape.png"]  # not the binary label
    texts = drawn["confusion_digit.png"]
    assert {"true class", "predicted class (most probable under q(y|x))"} <= set(texts)
    assert {f"digit={k}" for k in range(4)} <= set(texts) and any("chance 0.25" in t for t in texts)
    locs = [analysis.representation.class_prior(i)[0][:, 0].numpy() for i in range(3)]
    separation = metrics.latent_separation(analysis)
    figures.plot_densities(metrics.characteristic_values(analysis), NAMES, tmp_path / "densities.png", locs, list(separation["wasserstein"].values()))
    texts = drawn["densities.png"]
    assert {f"test images with y={k}" for k in range(4)} <= set(texts) and "prior mean, y=3" in texts
    assert "digit  (mean pairwise W1 = 16.67)" in texts and "flag  (W1 = 10.00)" in texts


def test_the_report_shows_class_matrices_as_tables(run_dir, tmp_path):
    analysis = fake_analysis()
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["info"].update(label_names=list(NAMES), num_classes=list(NUM_CLASSES))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config))
    update_metrics(run_dir, {
        "classification": metrics.classification(analysis), "latent_separation": metrics.latent_separation(analysis),
        "single_interventions": single_interventions(analysis),
        "generation_accuracy": {**generation_accuracy(analysis, 12), "categorical": requested_class_accuracy(analysis, 4)},
    })  # fmt: skip
    html = write_report(run_dir).read_text()
    assert "<p>confusion: digit (rows: the true class; columns: the predicted class)</p>" in html
    assert '<th class="key"></th><th>digit=0</th><th>digit=1</th><th>digit=2</th><th>digit=3</th>' in html
    assert "<p>wasserstein_matrix: digit (" in html and "[[" not in html  # matrices are tables, not lists in a cell
    assert "<h4>generation_accuracy / categorical</h4>" in html and "requested_class_rate" in html
    assert "intended_rate_by_class" in html


def test_the_api_checks_class_indices():
    loaded = api.Loaded(fake_run())
    x = loaded.images(4)
    assert torch.allclose(loaded.intervene(x, "digit", 3, sample=False)[:, 0, 0, 1], torch.full((4,), 3 * SPACING * GREY))
    assert loaded.num_classes == list(NUM_CLASSES)
    for call in (lambda: loaded.intervene(x, "digit", 4), lambda: loaded.generate({"flag": 2}, 2), lambda: loaded.intervene(x, 0, 1.5)):
        with pytest.raises(ValueError, match="out of range; its classes are 0.."):
            call()
    assert loaded.generate({"shape": 2}, 3).shape == (3, 1, 1, 3)
    assert loaded.traverse(x[:2], "digit", steps=3).shape[:2] == (2, 7)


def test_nuisance_transfer_keeps_categorical_labels_with_the_z_c_image():
    """Attributes: the three labels (class indices) and one nuisance; a perfect model renders the
    labels from z_c and the nuisance from z_s, so a swap is exactly the renderer's target."""
    n = 8
    labels = fake_run(n=n).data.test.labels.clone()
    labels[:, 0] = torch.arange(n) % 3  # every shape class
    attributes = torch.cat([labels, torch.arange(n).float().unsqueeze(1)], dim=1)  # a nuisance of its own per image

    def render(attrs):
        return (SPACING * attrs).to(torch.uint8).reshape(len(attrs), 1, 1, attrs.shape[1])

    def decode(z_c, z_s):
        return render(torch.cat([z_c[..., 0], z_s], dim=-1)).float() / 255

    split = ImageSet(render(attributes), labels, torch.ones_like(labels, dtype=torch.bool), NAMES, attributes=attributes, num_classes=NUM_CLASSES)
    data = SimpleNamespace(name="fake", attribute_names=(*NAMES, "nuisance"), render=render)
    run = SimpleNamespace(data=data, representation=SimpleNamespace(decode=decode), device=torch.device("cpu"), label_names=list(NAMES))
    analysis = Analysis(run, split, batch_size=3, progress=False)
    analysis.__dict__["posterior_means"] = (labels.unsqueeze(-1), attributes[:, 3:])
    result = nuisance_transfer(analysis)
    assert result["target_mae"] == 0 and result["reconstruction_mae"] == 0 and result["follow_rate"] == 1.0
    assert result["source_mae"] > 0


def test_the_report_shows_the_judge_s_chance_beside_its_accuracy(tmp_path):
    update_metrics(tmp_path, {"evaluation": {
        "judge": "independent classifier", "judge_test_accuracy": {"digit": 0.6, "flag": 0.95},
        "judge_test_chance": {"digit": 0.25, "flag": 0.5}, "unreliable_labels": ["digit"], "reliable_judge_accuracy": 0.9,
    }})  # fmt: skip
    html = write_report(tmp_path).read_text()
    box = html[html.index('class="box warnings"') :]
    assert "digit (0.6; chance 0.25)" in box
    assert '<tr class="unreliable"><td class="key">digit</td><td>0.6</td><td>0.25</td><td>unreliable</td></tr>' in html
    assert '<tr><td class="key">flag</td><td>0.95</td><td>0.5</td><td>ok</td></tr>' in html
