"""Categorical labels in the CCVAE (docs/objective.md, Categorical labels): the label prior from class
frequencies, one prior location and scale per class, K_i logits per label, the representation
over classes, and class priors that stay apart when trained on data whose classes are distinct.

The bound itself is checked against a hand computation in ``test_elbo.py``
(``test_categorical_elbo_matches_hand_computation``).
"""
from __future__ import annotations

import pytest
import torch

from pyro_ccvae.config import TrainConfig
from pyro_ccvae.data import DATASETS, DataSplits, ImageSet
from pyro_ccvae.models.ccvae.guides import GUIDES, DiagonalClassifier, GuideError, build_guide
from pyro_ccvae.models.ccvae.model import CCVAEModel, initial_class_locations
from pyro_ccvae.models.ccvae.representation import CCVAERepresentation
from pyro_ccvae.run_directory import load_run
from pyro_ccvae.training import train

NUM_CLASSES = (3, 2, 5)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_label_prior_is_the_class_frequencies_of_the_seen_labels():
    model = CCVAEModel(3, 1, 32, 4, num_classes=NUM_CLASSES)
    assert torch.allclose(model.label_probs[0], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0, 0]))
    labels = torch.tensor([[0, 1, 4], [2, 1, 4], [2, 0, 1], [2, 1, 0]], dtype=torch.float)
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.bool)
    model.set_label_prior(labels, mask)
    pi = model.label_probs
    assert torch.allclose(pi[0], torch.tensor([1 / 3, 1e-3, 2 / 3, 0, 0]) / (1 + 1e-3), atol=1e-6)
    assert torch.allclose(pi[1], torch.tensor([0.25, 0.75, 0, 0, 0]))
    assert torch.allclose(pi[2], torch.full((5,), 0.2))  # never seen: uniform over its classes
    assert torch.allclose(pi.sum(-1), torch.ones(3))
    assert pi[0, 1] > 0  # a class the labelled subset lacks keeps log p(y) finite


def test_a_binary_label_keeps_the_paper_prior_and_classifier_start():
    locations = initial_class_locations((2, 3), 2)
    assert torch.equal(locations[0, :2], torch.tensor([[-2.0, -2.0], [2.0, 2.0]]))
    apart = torch.cdist(locations[1], locations[1])
    assert torch.allclose(apart[~torch.eye(3, dtype=torch.bool)], torch.full((6,), 4.0))
    classifier = DiagonalClassifier(2, 2, (2, 3))
    assert torch.equal(classifier.weight[0, 0], torch.ones(2)) and classifier.bias[0, 0] == 0
    # each class mean is classified as its own class, and the binary label's missing class is impossible
    probs = torch.softmax(classifier(locations), -1)  # the class means as a batch: [L, K(means), K(classes)]
    assert (probs[0, :2].argmax(-1) == torch.arange(2)).all() and (probs[1].argmax(-1) == torch.arange(3)).all()
    assert (probs[0, :, 2] == 0).all()


def test_representation_answers_over_each_labels_classes():
    model = CCVAEModel(3, 1, 32, 4, z_char_dim=2, num_classes=NUM_CLASSES)
    guide = GUIDES["meanfield"](num_labels=3, z_char_dim=2, z_style_dim=4, channels=1, image_size=32, num_classes=NUM_CLASSES)
    rep = CCVAERepresentation(model, guide, ["a", "b", "c"], "cpu", k_samples=3)
    assert rep.num_classes == list(NUM_CLASSES)
    x = torch.rand(6, 1, 32, 32)
    probs = rep.predict(x)
    assert probs.shape == (6, 3, 5)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 3))
    assert (probs[:, 0, 3:] == 0).all() and (probs[:, 1, 2:] == 0).all()
    y = rep.sample_labels(200, {2: 4})
    assert (y[:, 2] == 4).all() and set(y[:, 0].tolist()) <= {0, 1, 2} and set(y[:, 1].tolist()) <= {0, 1}
    loc, scale = rep.class_prior(2)
    assert loc.shape == scale.shape == (5, 2)
    z_c, _ = rep.encode(x)
    moved = rep.intervene(z_c, 2, 3, sample=False)
    assert torch.equal(moved[:, 2], loc[3].expand(6, 2)) and torch.equal(moved[:, :2], z_c[:, :2])
    with pytest.raises(ValueError, match=r"'b' has classes 0\.\.1"):
        rep.intervene(z_c, 1, 2)
    log_w_x, log_w_xy = rep.log_weights(x, 4, torch.tensor([[2, 1, 4]] * 6, dtype=torch.float), None)
    assert torch.isfinite(log_w_x).all() and (log_w_xy < log_w_x).all()  # log p(x, y) < log p(x)


def test_a_guide_without_num_classes_is_refused_for_categorical_labels():
    class OldGuide(GUIDES["meanfield"]):
        def __init__(self, num_labels, z_char_dim, z_style_dim, channels, image_size):
            super().__init__(num_labels, z_char_dim, z_style_dim, channels, image_size)

    dims = dict(num_labels=3, z_char_dim=1, z_style_dim=4, channels=1, image_size=32)
    GUIDES["old-test-guide"] = OldGuide
    try:
        assert isinstance(build_guide("old-test-guide", **dims, num_classes=(2, 2, 2)), OldGuide)
        with pytest.raises(GuideError, match="takes no num_classes.*5 classes"):
            build_guide("old-test-guide", **dims, num_classes=NUM_CLASSES)
    finally:
        del GUIDES["old-test-guide"]


# --- trained on data whose classes are distinct, the class priors stay apart ---------------------

POSITIONS = 3  #: the categorical label: where a bright bar stands (left, middle, right)


def bars(options) -> DataSplits:
    """32x32 grey images: a vertical bar at one of three places (a 3-class label) that is bright
    or dim (a binary label), on noise."""
    generator = torch.Generator().manual_seed(options.seed)

    def split(n):
        where = torch.randint(POSITIONS, (n,), generator=generator)
        bright = torch.randint(2, (n,), generator=generator)
        images = torch.rand(n, 1, 32, 32, generator=generator) * 40
        for i in range(n):
            left = 4 + 10 * int(where[i])
            images[i, :, 4:28, left : left + 5] = 255 if bright[i] else 140
        labels = torch.stack([where, bright], -1).float()
        return ImageSet(images.to(torch.uint8), labels, torch.ones(n, 2, dtype=torch.bool), ("place", "bright"), num_classes=(POSITIONS, 2))

    return DataSplits(train=split(options.num_train or 512), valid=split(128), test=split(128), name="bars")


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory):
    DATASETS["test-bars"] = bars
    try:
        path = tmp_path_factory.mktemp("bars") / "run"
        config = TrainConfig.from_options(
            dataset="test-bars", num_train=512, epochs=4, batch_size=64, k_samples=10, z_style_dim=4, z_char_dim=2,
            sup_frac=0.5, device="cpu", seed=1,
        )  # fmt: skip
        summary = train(config, path, progress=False)
        yield path, summary
    finally:
        del DATASETS["test-bars"]


def test_class_priors_stay_apart_where_the_classes_are_distinct(bars_run):
    """Seen on CelebA's 5-class hair colour: class priors collapsing onto each other. Here, where
    the three places of the bar are obvious, the priors must stay apart (by more than their
    spread) and the classifier must tell the classes apart."""
    path, summary = bars_run
    assert summary["test_accuracy"]["place"] > 0.9
    run = load_run(path, "cpu")
    loc, scale = run.representation.class_prior(0)  # [3, d_c]
    apart = torch.cdist(loc, loc)[~torch.eye(POSITIONS, dtype=torch.bool)]
    assert apart.min() > 2 * scale.max(), (loc, scale)
    assert run.num_classes == [3, 2]
    # the model's classifier recognises samples of each class's prior as that class
    recognition = summary["health"]["prior_recognition"]
    assert all(recognition[f"given_y{k}"]["place"] > 0.8 for k in range(POSITIONS)), recognition
    assert recognition["given_y2"]["bright"] is None  # a binary label has no third class
