"""The built-in ``shapes`` data set: contract, determinism, factor statistics, and that each
attribute has the visible local effect it claims."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pyro_ccvae.data import DATASETS, DataError, DataOptions, load_dataset
from pyro_ccvae.data import shapes

A = len(shapes.ATTRIBUTE_NAMES)
L = len(shapes.LABEL_NAMES)


def col(name: str) -> int:
    return shapes.ATTRIBUTE_NAMES.index(name)


@pytest.fixture(scope="module")
def small():
    return load_dataset("shapes", DataOptions(image_size=32, num_train=500, seed=3))


@pytest.fixture(scope="module")
def base_attributes():
    """Factor draws to flip, from a fixed generator."""
    return shapes.sample_attributes(256, np.random.default_rng(123))


def test_registered():
    assert DATASETS["shapes"] is shapes.load


def test_shapes_dtypes_ranges(small):
    assert small.name == "shapes" and small.channels == 3 and small.image_size == 32
    assert small.label_names == shapes.LABEL_NAMES
    assert small.source["attribute_names"] == list(shapes.ATTRIBUTE_NAMES)
    assert small.source["seed"] == 3
    for split, n in (("train", 500), ("valid", 100), ("test", 100)):
        s = getattr(small, split)
        assert len(s) == n
        assert s.images.dtype == torch.uint8 and s.images.shape == (n, 3, 32, 32)
        assert s.labels.dtype == torch.float32 and s.labels.shape == (n, L)
        assert set(s.labels.unique().tolist()) <= {0.0, 1.0}
        assert s.mask.dtype == torch.bool and bool(s.mask.all())
        assert s.ids == [f"{split}/{i}" for i in range(n)]
        assert s.attributes.dtype == torch.float32 and s.attributes.shape == (n, A)
        assert torch.equal(s.attributes[:, :L], s.labels)
        nuis = s.attributes[:, L:]
        assert float(nuis.min()) >= 0.0 and float(nuis.max()) <= 1.0
        # images span a real range of values (not blank)
        assert int(s.images.min()) < 60 and int(s.images.max()) > 200
        # the loader uses render()
        assert torch.equal(shapes.render(s.attributes[:20], 32), s.images[:20])


def test_default_sizes():
    d = load_dataset("shapes", DataOptions(image_size=32))
    assert (len(d.train), len(d.valid), len(d.test)) == (10000, 2000, 2000)


def test_determinism():
    opts = dict(image_size=32, num_train=200)
    a = load_dataset("shapes", DataOptions(seed=7, **opts))
    b = load_dataset("shapes", DataOptions(seed=7, **opts))
    c = load_dataset("shapes", DataOptions(seed=8, **opts))
    for split in ("train", "valid", "test"):
        sa, sb, sc = getattr(a, split), getattr(b, split), getattr(c, split)
        assert sa.images.numpy().tobytes() == sb.images.numpy().tobytes()
        assert torch.equal(sa.attributes, sb.attributes)
        assert not torch.equal(sa.images, sc.images)
        assert not torch.equal(sa.attributes, sc.attributes)


def test_splits_differ(small):
    n = len(small.valid)
    tr, va, te = small.train.attributes[:n], small.valid.attributes, small.test.attributes
    assert not torch.equal(tr, va) and not torch.equal(tr, te) and not torch.equal(va, te)
    assert not torch.equal(small.valid.images, small.test.images)


def test_attribute_frequencies_and_independence():
    d = load_dataset("shapes", DataOptions(image_size=32, num_train=4000, seed=0))
    y = d.train.labels.numpy()
    assert np.all(np.abs(y.mean(0) - 0.5) < 0.05), y.mean(0)
    corr = np.corrcoef(y, rowvar=False)
    off = corr[~np.eye(L, dtype=bool)]
    assert np.all(np.abs(off) < 0.1), corr
    # the nuisances are independent of the labels too
    full = np.corrcoef(d.train.attributes.numpy(), rowvar=False)
    assert np.all(np.abs(full[~np.eye(A, dtype=bool)]) < 0.1)


def flip(attributes: np.ndarray, name: str, value=None) -> tuple[np.ndarray, np.ndarray]:
    """``(before, after)``: ``after`` has attribute ``name`` flipped (or ``before`` has it 0
    and ``after`` 1, when ``value`` is None and a direction matters)."""
    before = attributes.copy()
    if value is not None:
        before[:, col(name)] = value
    after = before.copy()
    after[:, col(name)] = 1.0 - before[:, col(name)]
    return before, after


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", shapes.LABEL_NAMES)
def test_flip_changes_pixels(base_attributes, name, size):
    before, after = flip(base_attributes, name)
    diff = (shapes.render(before, size).int() - shapes.render(after, size).int()).abs()
    assert bool((diff.flatten(1).amax(1) > 40).all()), f"flipping {name} left some images unchanged"


@pytest.mark.parametrize("size", [32, 64])
def test_stripe_is_local_to_top_band(base_attributes, size):
    before, after = flip(base_attributes, "stripe", value=0.0)
    diff = (shapes.render(before, size).int() - shapes.render(after, size).int()).abs()
    band = int(shapes.TOP_BAND * size)
    assert int(diff[:, :, band:].max()) == 0
    assert bool((diff[:, :, :band].flatten(1).amax(1) > 40).all())


def object_mask(images: torch.Tensor) -> torch.Tensor:
    """Pixels that differ from the top-left corner (the background), for stripe-free images."""
    x = images.int()
    return (x - x[:, :, :1, :1]).abs().sum(1) > 30


@pytest.mark.parametrize("size", [32, 64])
def test_right_moves_object_to_other_half(base_attributes, size):
    a = base_attributes.copy()
    a[:, col("stripe")] = 0.0
    before, after = flip(a, "right", value=0.0)
    xs = torch.arange(size, dtype=torch.float32) + 0.5
    for imgs, side in ((shapes.render(before, size), "left"), (shapes.render(after, size), "right")):
        m = object_mask(imgs).float()
        assert bool((m.flatten(1).sum(1) > 0).all())
        cx = (m.sum(1) * xs).sum(1) / m.sum((1, 2))
        assert bool((cx < size / 2).all() if side == "left" else (cx > size / 2).all())


def test_large_is_bigger_and_red_is_redder(base_attributes):
    a = base_attributes.copy()
    a[:, col("stripe")] = 0.0
    small_, large_ = flip(a, "large", value=0.0)
    area_s = object_mask(shapes.render(small_, 32)).flatten(1).sum(1)
    area_l = object_mask(shapes.render(large_, 32)).flatten(1).sum(1)
    assert int(area_s.max()) < int(area_l.min())  # the size classes do not overlap
    blue, red = flip(a, "red", value=0.0)
    for attrs, redder in ((blue, False), (red, True)):
        imgs = shapes.render(attrs, 32).float()
        m = object_mask(shapes.render(attrs, 32)).float()
        rb = ((imgs[:, 0] - imgs[:, 2]) * m).sum((1, 2)) / m.sum((1, 2))
        assert bool((rb > 0).all() if redder else (rb < 0).all())


def test_dark_background_darkens_corners(base_attributes):
    light, dark = flip(base_attributes, "dark_background", value=0.0)
    il, id_ = shapes.render(light, 32).float(), shapes.render(dark, 32).float()
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert bool((id_[:, :, i, j].mean(1) < il[:, :, i, j].mean(1) - 80).all())


def test_object_stays_below_top_band(base_attributes):
    a = base_attributes.copy()
    a[:, col("stripe")] = 0.0
    a[:, col("large")] = 1.0
    a[:, col("position_y")] = 0.0  # highest position
    for size in (32, 64):
        m = object_mask(shapes.render(a, size))
        assert not bool(m[:, : int(shapes.TOP_BAND * size)].any())


def test_render_accepts_numpy_and_torch(base_attributes):
    a = base_attributes[:10]
    assert torch.equal(shapes.render(a, 32), shapes.render(torch.from_numpy(a), 32))
    with pytest.raises(DataError):
        shapes.render(a[:, :6], 32)


def test_64_pixels():
    d = load_dataset("shapes", DataOptions(image_size=64, num_train=50, seed=1))
    assert d.train.images.shape == (50, 3, 64, 64) and d.valid.images.shape == (10, 3, 64, 64)
    assert d.image_size == 64


@pytest.mark.parametrize("size", [28, 48, 128])
def test_bad_image_size(size):
    with pytest.raises(DataError) as err:
        load_dataset("shapes", DataOptions(image_size=size, num_train=10))
    msg = str(err.value)
    assert "\n" not in msg and str(size) in msg


def test_label_subset():
    d = load_dataset("shapes", DataOptions(image_size=32, num_train=20, labels=("right", "square")))
    assert d.label_names == ("right", "square")
    assert torch.equal(d.train.labels, d.train.attributes[:, [col("right"), col("square")]])
    with pytest.raises(DataError):
        load_dataset("shapes", DataOptions(image_size=32, num_train=20, labels=("bald",)))


# ---------------------------------------------------------------- the default data, unchanged


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(
    "size, num_train, seed, expected",
    [
        (32, 500, 0, ["f178c6d77e705cb3", "f3c2796423a7e006", "04061216964ebc00"]),
        (64, 100, 3, ["0d2c4797becd7fdc", "fccf3702d9e40611", "65f22b93ebd95d22"]),
    ],
)
def test_default_data_are_unchanged(size, num_train, seed, expected):
    """Images, labels and factors of the default labels hash as when the objects grew (small
    half-sides 0.135-0.165, large 0.195-0.235): the figures of docs/results.md come from these data."""
    d = load_dataset("shapes", DataOptions(image_size=size, num_train=num_train, seed=seed))
    assert d.label_names == shapes.LABEL_NAMES and d.num_classes == (2,) * L and "classes" not in d.source
    assert d.attribute_names == shapes.ATTRIBUTE_NAMES
    assert [digest(s.images, s.labels, s.attributes) for s in (d.train, d.valid, d.test)] == expected


# ---------------------------------------------------------------- categorical labels

CATEGORICAL = ("shape", "colour", "large", "right", "stripe", "dark_background")
NAMES = shapes.attribute_names(CATEGORICAL)


@pytest.fixture(scope="module")
def categorical():
    return load_dataset("shapes", DataOptions(image_size=32, num_train=3000, seed=0, labels=CATEGORICAL))


def test_categorical_spec_and_attribute_layout(categorical):
    d = categorical
    assert d.label_names == CATEGORICAL and d.num_classes == (3, 4, 2, 2, 2, 2)
    assert d.attribute_names == NAMES == ("shape", "colour") + shapes.ATTRIBUTE_NAMES[2:]
    assert d.source["attribute_names"] == list(NAMES)
    assert d.source["classes"] == {"shape": ["circle", "square", "triangle"], "colour": ["blue", "red", "green", "yellow"]}
    for s in (d.train, d.valid, d.test):
        assert torch.equal(s.labels, s.attributes[:, [NAMES.index(name) for name in CATEGORICAL]])
        # the loader's images are the data set's render of the attributes
        assert torch.equal(d.render(s.attributes[:64]), s.images[:64])
        assert torch.equal(shapes.render(s.attributes[:64], 32, NAMES), s.images[:64])


def test_categorical_classes_are_balanced_and_independent(categorical):
    y = categorical.train.labels.numpy()
    for column, k in ((0, 3), (1, 4)):
        frequencies = np.bincount(y[:, column].astype(int), minlength=k) / len(y)
        assert np.all(np.abs(frequencies - 1 / k) < 0.04), frequencies
    corr = np.corrcoef(y, rowvar=False)
    assert np.all(np.abs(corr[~np.eye(L, dtype=bool)]) < 0.1), corr


def test_categorical_factors_reuse_the_default_draws():
    """The same uniform numbers: the other factors of a seed do not depend on the labels chosen."""
    default = load_dataset("shapes", DataOptions(image_size=32, num_train=200, seed=4))
    other = load_dataset("shapes", DataOptions(image_size=32, num_train=200, seed=4, labels=("colour", "shape")))
    assert other.label_names == ("colour", "shape") and other.num_classes == (4, 3)
    for a, b in ((default.train, other.train), (default.test, other.test)):
        assert torch.equal(a.attributes[:, 2:], b.attributes[:, 2:])
        # square is u < 0.5 and shape floor(3 u) of the same u: shape class 0 (u < 1/3) implies square = 1
        assert bool(((b.attributes[:, 0] == 0) <= (a.attributes[:, 0] == 1)).all())


def test_only_the_categorical_labels_asked_for_change_the_layout():
    d = load_dataset("shapes", DataOptions(image_size=32, num_train=50, labels=("colour", "large")))
    assert d.attribute_names == ("square", "colour") + shapes.ATTRIBUTE_NAMES[2:] and d.num_classes == (4, 2)
    assert set(d.train.attributes[:, 0].unique().tolist()) == {0.0, 1.0}  # the shape stays binary
    assert torch.equal(d.render(d.train.attributes), d.train.images)


def test_classes_0_and_1_render_as_the_binary_attribute(base_attributes):
    assert torch.equal(shapes.render(base_attributes, 32, NAMES), shapes.render(base_attributes, 32))


def with_classes(attributes: np.ndarray, shape: int, colour: int) -> np.ndarray:
    a = attributes.copy()
    a[:, 0], a[:, 1] = shape, colour
    a[:, col("stripe")] = 0.0
    return a


@pytest.mark.parametrize("size", [32, 64])
def test_a_triangle_points_up_and_differs_from_square_and_circle(base_attributes, size):
    triangle = shapes.render(with_classes(base_attributes, 2, 0), size, NAMES)
    for other in (0, 1):
        diff = (triangle.int() - shapes.render(with_classes(base_attributes, other, 0), size, NAMES).int()).abs()
        assert bool((diff.flatten(1).amax(1) > 40).all())
    # row widths of the object grow from the apex down to the base
    widths = object_mask(triangle).sum(2).float()  # [N, H]
    rows = torch.arange(size, dtype=torch.float32)
    occupied = widths > 0
    top = torch.where(occupied, rows, torch.inf).amin(1).long()
    bottom = torch.where(occupied, rows, -torch.inf).amax(1).long()
    index = torch.arange(len(widths))
    assert bool((widths[index, top] < widths[index, bottom] / 2).all())
    # it stays inside its half and below the top band, like the other shapes
    m = object_mask(triangle)
    assert not bool(m[:, : int(shapes.TOP_BAND * size)].any())


def test_each_colour_class_has_its_own_dominant_channels(base_attributes):
    """blue: B; red: R; green: G; yellow: R and G, both well above B."""
    for colour, check in enumerate(
        (
            lambda r, g, b: (b > r + 40) & (b > g),
            lambda r, g, b: (r > g + 40) & (r > b + 40),
            lambda r, g, b: (g > r + 40) & (g > b + 40),
            lambda r, g, b: (r > b + 60) & (g > b + 60),
        )
    ):
        attrs = with_classes(base_attributes, 1, colour)
        attrs[:, col("large")] = 1.0
        images = shapes.render(attrs, 32, NAMES)
        m = object_mask(images)
        mean = (images.float() * m[:, None]).sum((2, 3)) / m.sum((1, 2))[:, None]
        assert bool(check(*mean.unbind(1)).all()), shapes.COLOURS[colour]


def test_bad_categorical_requests():
    message = str(pytest.raises(DataError, load_dataset, "shapes", DataOptions(labels=("square", "shape"), num_train=10)).value)
    assert message == "shapes labels square and shape are the same factor (shape: circle, square, triangle); pass one of them to --labels"
    message = str(pytest.raises(DataError, load_dataset, "shapes", DataOptions(labels=("hue",), num_train=10)).value)
    assert message.startswith("shapes has no label 'hue'; valid names: square, red, large, right, stripe, dark_background, shape, colour")
    message = str(pytest.raises(DataError, shapes.render, np.zeros((1, A)), 32, ("shape", "red", "big") + NAMES[3:]).value)
    assert "\n" not in message and "got shape, red, big" in message
