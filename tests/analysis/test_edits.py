"""Traversals, swaps, interventions and generation on the shared run: known answers and ranges."""
from __future__ import annotations

import pytest
import torch

from pyro_ccvae.analysis.classifier import load_classifier
from pyro_ccvae.analysis.judge import LabelReader
from pyro_ccvae.analysis.context import Analysis
from pyro_ccvae.analysis.generation import generation_accuracy, sample_labels
from pyro_ccvae.analysis.interventions import diversity_maps, single_interventions, switch_grid, switched
from pyro_ccvae.analysis.swap import swap_grid, swap_metric
from pyro_ccvae.analysis.traversal import traversal_values, traverse, traverse_pair


@pytest.fixture(scope="module")
def analysis(run, classifier_dir):
    a = Analysis.from_run(run, max_images=12, batch_size=5, progress=False)  # batch 5: several batches
    info = run.config.data.info
    a.classifier = LabelReader(load_classifier(classifier_dir, run.device), run.label_names, info["channels"], info["image_size"])
    return a


def test_traversal_endpoints_are_the_prior_means(analysis):
    rep, model = analysis.representation, analysis.run.model
    prior = model.conditional_prior
    z_c, z_s = (z[:3] for z in analysis.posterior_means)
    for label in (0, analysis.num_labels - 1):
        values = traversal_values(rep, label, steps=5, extend=0.0)
        assert torch.allclose(values[0], prior.loc[label, 0]) and torch.allclose(values[-1], prior.loc[label, 1])
        images = traverse(rep, z_c, z_s, label, values)
        assert images.shape[:2] == (3, 5)
        for step, y in ((0, 0), (-1, 1)):
            z = z_c.clone()
            z[:, label] = prior.loc[label, y]
            assert torch.allclose(images[:, step], model.decode(z, z_s), atol=1e-6)


def test_traversal_extends_one_prior_std(analysis):
    prior = analysis.run.model.conditional_prior
    loc, scale = (p.detach() for p in (prior.loc, prior.scale))
    values = traversal_values(analysis.representation, 1, steps=9, extend=1.0)
    assert loc[1, 0, 0] < loc[1, 1, 0]  # d_c = 1 and the initial -2/+2 ordering
    assert float(values[0, 0]) == pytest.approx(float(loc[1, 0, 0] - scale[1, 0, 0]), abs=1e-5)
    assert float(values[-1, 0]) == pytest.approx(float(loc[1, 1, 0] + scale[1, 1, 0]), abs=1e-5)
    with pytest.raises(ValueError, match="--steps"):
        traversal_values(analysis.representation, 0, steps=1)


def test_pair_traversal_matches_1d(analysis):
    model = analysis.representation
    z_c, z_s = (z[:1] for z in analysis.posterior_means)
    va, vb = traversal_values(model, 0, 3), traversal_values(model, 2, 4)
    grid = traverse_pair(model, z_c[0], z_s[0], (0, 2), (va, vb))
    assert grid.shape[:2] == (3, 4)
    z = z_c.clone()
    z[:, 0] = va[1]
    assert torch.allclose(grid[1], traverse(model, z, z_s, 2, vb)[0], atol=1e-6)


def test_swap_with_itself_is_the_reconstruction(analysis):
    z_c, z_s = (z[:4] for z in analysis.posterior_means)
    grid = swap_grid(analysis.representation, z_c, z_s)
    recon = analysis.reconstruct(torch.arange(4))
    assert torch.allclose(grid.diagonal(dim1=0, dim2=1).permute(3, 0, 1, 2), recon, atol=1e-6)
    assert not torch.allclose(grid[0, 1], recon[0])  # a real swap does change the image


def test_swap_metric_known_answer_and_range(analysis):
    same = swap_metric(analysis, partners=torch.arange(len(analysis)))
    assert same["log_prob_change_mean"] == pytest.approx(0.0, abs=1e-6)
    out = swap_metric(analysis)
    assert out["log_prob_change_mean"] >= 0 and set(out["log_prob_change"]) == set(analysis.label_names)


def test_switched_changes_one_block_to_the_other_prior_mean(analysis):
    rep, model = analysis.representation, analysis.run.model
    z_c = analysis.posterior_means[0][:4]
    current = analysis.current_labels[:4]
    z = switched(rep, z_c, current, 2, sample=False)
    others = [i for i in range(analysis.num_labels) if i != 2]
    assert torch.equal(z[:, others], z_c[:, others])
    target = (1 - current[:, 2]).long()
    assert torch.allclose(z[:, 2], model.conditional_prior.loc[2][target])


def test_switch_grid_and_diversity(analysis):
    grid = switch_grid(analysis, [0, 3], 3)
    assert grid.shape[:2] == (3, 4)
    assert torch.allclose(grid[:, 1], analysis.reconstruct(torch.arange(3)))
    maps, recon = diversity_maps(analysis, [0, 3], 2, samples=4)
    assert maps.shape == (2, 2, *recon.shape[-2:]) and (maps >= 0).all()


def test_single_interventions_ranges(analysis):
    out = single_interventions(analysis)
    n = analysis.num_labels
    assert len(out["matrix"]) == n and all(len(row) == n for row in out["matrix"])
    assert all(v >= 0 for row in out["matrix"] for v in row)
    assert out["condition_number"] is None or out["condition_number"] >= 1
    for key in ("exact_rate", "intended_rate", "others_flipped", "target_rate"):
        assert all(0 <= v <= 1 for v in out[key].values())
    assert all(e <= i for e, i in zip(out["exact_rate"].values(), out["intended_rate"].values()))


def test_generation(analysis):
    y = sample_labels(analysis.representation, 50, {0: 1, 2: 0})
    assert (y[:, 0] == 1).all() and (y[:, 2] == 0).all() and ((y == 0) | (y == 1)).all()
    out = generation_accuracy(analysis, num_samples=12)
    assert 0 <= out["accuracy_mean"] <= 1 and all(0.5 <= c <= 1 for c in out["chance"].values())


def test_metrics_need_a_classifier(run):
    bare = Analysis.from_run(run, max_images=4, progress=False)
    with pytest.raises(ValueError, match="--classifier"):
        swap_metric(bare)
