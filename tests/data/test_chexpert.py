import logging

import pytest
import torch

from pyro_ccvae.data import DataError, DataOptions, load_dataset
from pyro_ccvae.data.chexpert import CHEXPERT_LABELS, PAPER_LABELS



def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


def load(data_dir, **kwargs):
    return load_dataset("chexpert", DataOptions(data_dir=data_dir, **kwargs))


def greys(images):
    return [round(v) for v in images.float().mean((1, 2, 3)).tolist()]


def test_shapes_and_official_test_split(chexpert):
    splits = load(chexpert.root, image_size=32)
    frontal_train = [r for r in chexpert.train if r.frontal]
    assert splits.label_names == PAPER_LABELS
    assert splits.channels == 1 and splits.image_size == 32
    for s in (splits.train, splits.valid, splits.test):
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 32, 32)
        assert s.labels.dtype == torch.float32 and s.mask.dtype == torch.bool
        assert s.labels.shape == s.mask.shape == (len(s), 5)
        assert set(s.labels.unique().tolist()) <= {0.0, 1.0}
        assert not s.labels[~s.mask].any()  # filled with 0 where unobserved
    assert len(splits.train) + len(splits.valid) == len(frontal_train)
    # the test split is valid.csv (frontal views), ids are the CSV's Path column
    frontal_valid = [r for r in chexpert.valid if r.frontal]
    assert splits.test.ids == [chexpert.path(r) for r in frontal_valid]
    assert splits.test.ids[0] == "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg"
    # each image is the one its id names (every source image is a unique uniform grey)
    by_path = {chexpert.path(r): r.grey for r in chexpert.train + chexpert.valid}
    for s in (splits.train, splits.valid, splits.test):
        assert greys(s.images) == pytest.approx([by_path[i] for i in s.ids], abs=2)


@pytest.mark.parametrize("given", ["folder", "parent"])
@pytest.mark.parametrize("folder", ["CheXpert-v1.0-small", "CheXpert-v1.0"])
def test_data_dir_is_the_folder_or_its_parent(tmp_path, layouts, given, folder):
    copy = layouts.write_chexpert(tmp_path, *layouts.chexpert_rows(), folder=folder)
    splits = load(copy.root if given == "folder" else tmp_path)
    assert splits.source["root"] == str(copy.root)
    assert splits.test.ids[0].startswith(folder + "/valid/")
    assert len(splits.test) == 2


def test_views(chexpert):
    n = {view: sum(len(s) for s in (load(chexpert.root, views=view).train, load(chexpert.root, views=view).valid))
         for view in ("frontal", "lateral", "all")}  # fmt: skip
    assert n["frontal"] == sum(r.frontal for r in chexpert.train)
    assert n["lateral"] == sum(not r.frontal for r in chexpert.train)
    assert n["all"] == len(chexpert.train)
    lateral = load(chexpert.root, views="lateral")
    assert all("lateral" in i for s in (lateral.train, lateral.valid, lateral.test) for i in s.ids)
    assert len(lateral.test) == 1


def table(tmp_path, layouts):
    """Four points, one per value convention of Edema, and No Finding positive or blank."""
    cells = ["1.0", "0.0", "", "-1.0"]
    rows = [
        layouts.XRay(i + 1, labels={"Edema": c, "Atelectasis": c, "No Finding": "" if i else "1.0"}, grey=40 * i + 20)
        for i, c in enumerate(cells)
    ]
    return layouts.write_chexpert(tmp_path, rows, [layouts.XRay(64541, labels={"Edema": "-1.0"}, grey=200)])


def all_points(splits):
    """labels and mask of the training points, in CSV order (valid_fraction=0 keeps them all in train)."""
    assert len(splits.valid) == 0
    return splits.train.labels, splits.train.mask


@pytest.mark.parametrize(
    "uncertain, blank, labels, mask",
    [
        # cells:        1.0  0.0  blank  -1.0
        ("ignore", "zeros", [1, 0, 0, 0], [1, 1, 1, 0]),
        ("zeros", "zeros", [1, 0, 0, 0], [1, 1, 1, 1]),
        ("ones", "zeros", [1, 0, 0, 1], [1, 1, 1, 1]),
        ("ignore", "ignore", [1, 0, 0, 0], [1, 1, 0, 0]),
        ("ones", "ignore", [1, 0, 0, 1], [1, 1, 0, 1]),
    ],
)
def test_value_conventions(tmp_path, layouts, uncertain, blank, labels, mask):
    copy = table(tmp_path, layouts)
    splits = load(copy.root, labels=("Edema",), uncertain=uncertain, blank=blank, valid_fraction=0.0)
    y, m = all_points(splits)
    assert y[:, 0].tolist() == labels and m[:, 0].tolist() == [bool(v) for v in mask]
    # the test split follows the same policies
    assert splits.test.mask[0, 0].item() == (uncertain != "ignore")
    assert splits.test.labels[0, 0].item() == (uncertain == "ones")


def test_per_label_uncertain_policy(tmp_path, layouts):
    copy = table(tmp_path, layouts)
    names = ("Edema", "Atelectasis", "Cardiomegaly")
    # Edema ones, Atelectasis left unlisted -> ignore
    y, m = all_points(load(copy.root, labels=names, uncertain="Edema=ones", valid_fraction=0.0))
    assert y[3].tolist() == [1, 0, 0] and m[3].tolist() == [True, False, True]
    # "*" covers every label not listed; names match loosely (case, "_" for " ")
    y, m = all_points(load(copy.root, labels=names, uncertain="edema=ones, *=zeros", valid_fraction=0.0))
    assert y[3].tolist() == [1, 0, 0] and m[3].tolist() == [True, True, True]
    splits = load(copy.root, labels=names, uncertain="*=ignore,Atelectasis=zeros", valid_fraction=0.0)
    assert splits.train.mask[3].tolist() == [False, True, True]


def test_no_finding(tmp_path, layouts):
    copy = table(tmp_path, layouts)
    y, m = all_points(load(copy.root, labels=("No Finding",), valid_fraction=0.0))
    assert y[:, 0].tolist() == [1, 0, 0, 0] and m[:, 0].all()
    y, m = all_points(load(copy.root, labels=("No Finding",), blank="ignore", valid_fraction=0.0))
    assert m[:, 0].tolist() == [True, False, False, False]  # blank-ignore: no negatives at all


def test_labels_by_name(chexpert):
    splits = load(chexpert.root, labels=("Support Devices", "no_finding", "pleural effusion"))
    assert splits.label_names == ("Support Devices", "No Finding", "Pleural Effusion")
    assert load(chexpert.root, labels=CHEXPERT_LABELS).train.labels.shape[1] == 14


def test_patient_level_split(chexpert):
    def patients(s):
        return {i.split("/")[2] for i in s.ids}

    splits = load(chexpert.root, views="all", valid_fraction=0.3, seed=1)
    train, valid, test = patients(splits.train), patients(splits.valid), patients(splits.test)
    assert len(valid) == 3 and len(train) == 7
    assert not train & valid and not (train | valid) & test
    assert train | valid == {f"patient{p:05d}" for p in range(1, 11)}
    assert splits.manifest()["valid"] == splits.valid.ids
    # the seed picks the patients; the same seed, the same split; every view shares it
    assert load(chexpert.root, views="all", valid_fraction=0.3, seed=1).valid.ids == splits.valid.ids
    assert patients(load(chexpert.root, valid_fraction=0.3, seed=1).valid) <= valid
    others = [patients(load(chexpert.root, valid_fraction=0.3, seed=s).valid) for s in range(2, 6)]
    assert any(o != valid for o in others)
    by_path = {chexpert.path(r): r.grey for r in chexpert.train}
    assert greys(splits.valid.images) == pytest.approx([by_path[i] for i in splits.valid.ids], abs=2)


# ---------------------------------------------------------------- bad input


def test_missing_directory(tmp_path):
    message = one_line(pytest.raises(DataError, load, tmp_path / "nowhere"))
    assert "nowhere" in message and "CheXpert-v1.0-small/" in message and "--data-dir" in message
    (tmp_path / "empty").mkdir()
    message = one_line(pytest.raises(DataError, load, tmp_path / "empty"))
    assert "train.csv" in message and "Stanford" in message
    assert "--data-dir" in one_line(pytest.raises(DataError, load, None))


def test_missing_csv(chexpert):
    (chexpert.root / "valid.csv").unlink()
    message = one_line(pytest.raises(DataError, load, chexpert.root))
    assert "valid.csv is missing" in message


def test_header_without_a_required_column(tmp_path, layouts):
    train, valid = layouts.chexpert_rows()
    header = [c for c in layouts.CHEXPERT_HEADER if c != "Edema"]
    copy = layouts.write_chexpert(tmp_path, train, valid, header=header)
    message = one_line(pytest.raises(DataError, load, copy.root))
    assert "'Edema'" in message and "train.csv" in message
    assert len(load(copy.root, labels=("Cardiomegaly",)).test) == 2  # a column not asked for may be absent


@pytest.mark.parametrize("cell", ["2.0", "abc", "1.5"])
def test_label_value_outside_the_convention(tmp_path, layouts, cell):
    train, valid = layouts.chexpert_rows()
    train[2].labels["Consolidation"] = cell
    copy = layouts.write_chexpert(tmp_path, train, valid)
    message = one_line(pytest.raises(DataError, load, copy.root))
    assert "train.csv line 4" in message and "Consolidation" in message and repr(cell) in message


def test_unknown_label_lists_the_valid_names(chexpert):
    message = one_line(pytest.raises(DataError, load, chexpert.root, labels=("Edema", "Broken Heart")))
    assert "'Broken Heart'" in message and "Pleural Effusion" in message and "Support Devices" in message


@pytest.mark.parametrize("options", [{"uncertain": "maybe"}, {"uncertain": "Edema=twos"}, {"uncertain": "Heart=ones"},
                                     {"blank": "ones"}, {"views": "sideways"}, {"image_size": 0},
                                     {"valid_fraction": 1.0}])  # fmt: skip
def test_bad_options(chexpert, options):
    one_line(pytest.raises(DataError, load, chexpert.root, **options))
    assert not (chexpert.root / ".ccvae-cache").exists()  # found before any decoding


def test_missing_images(chexpert):
    for row in chexpert.train[:4]:
        (chexpert.parent / chexpert.path(row)).unlink()
    message = one_line(pytest.raises(DataError, load, chexpert.root, views="all"))
    assert "4 of" in message and "patient00001/study1/view1_frontal.jpg" in message and "--skip-bad-images" in message
    assert not list((chexpert.root / ".ccvae-cache").glob("*.npy"))  # nothing cached when failing fast


def test_corrupt_image_and_skipping_bad_images(chexpert, layouts, caplog):
    broken = chexpert.parent / chexpert.path(chexpert.train[3])
    broken.write_bytes(b"this is no JPEG")
    half = chexpert.parent / chexpert.path(chexpert.valid[0])
    half.write_bytes(half.read_bytes()[:300])  # truncated
    message = one_line(pytest.raises(DataError, load, chexpert.root))
    assert chexpert.path(chexpert.train[3]) in message and "corrupt" in message and "1 more" in message
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.data"):
        splits = load(chexpert.root, skip_bad_images=True)  # from the cache built by the failed load
    assert "skipping 2" in caplog.text
    ids = splits.train.ids + splits.valid.ids + splits.test.ids
    assert chexpert.path(chexpert.train[3]) not in ids and chexpert.path(chexpert.valid[0]) not in ids
    assert len(ids) == sum(r.frontal for r in chexpert.train + chexpert.valid) - 2
    by_path = {chexpert.path(r): r.grey for r in chexpert.train + chexpert.valid}
    assert greys(splits.train.images) == pytest.approx([by_path[i] for i in splits.train.ids], abs=2)


def test_skip_bad_images_with_missing_files(chexpert, caplog):
    (chexpert.parent / chexpert.path(chexpert.train[0])).unlink()
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.data"):
        splits = load(chexpert.root, skip_bad_images=True, valid_fraction=0.0)
    assert "skipping 1" in caplog.text
    assert chexpert.path(chexpert.train[0]) not in splits.train.ids
    message = one_line(pytest.raises(DataError, load, chexpert.root))  # the cache remembers, without the flag
    assert "1 of" in message and "missing" in message


# ---------------------------------------------------------------- paths that leave the folder, leaks


def _csv_lines(path):
    return path.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("image", [
    "CheXpert-v1.0-small/train/patient00001/../../../outside/patient00001/view1_frontal.jpg",
    "../outside/patient00001/view1_frontal.jpg",
    "/tmp/outside/patient00001/view1_frontal.jpg",
    "CheXpert-v1.0-small/train/patient00001/study1/view1\0_frontal.jpg",
])  # fmt: skip
def test_a_path_leaving_the_data_directory_is_refused(chexpert, layouts, image):
    # a readable image where the path leads: refused all the same, nothing decoded or cached
    layouts.write_jpeg(chexpert.parent / "outside" / "patient00001" / "view1_frontal.jpg", layouts.CHEXPERT_SIZE, "L", 7)
    lines = _csv_lines(chexpert.root / "train.csv")
    lines[3] = lines[3].replace(chexpert.path(chexpert.train[2]), image)
    (chexpert.root / "train.csv").write_text("".join(lines))
    message = one_line(pytest.raises(DataError, load, chexpert.root, views="all"))
    assert "train.csv line 4" in message and "outside the data directory" in message
    assert not (chexpert.root / ".ccvae-cache").exists()


def test_rows_repeated_within_a_csv_are_used_once(chexpert, layouts, caplog):
    before = load(chexpert.root, valid_fraction=0.0)
    lines = _csv_lines(chexpert.root / "train.csv")
    cells = lines[1].rstrip("\n").split(",")  # the first row again, with Cardiomegaly flipped
    column = layouts.CHEXPERT_HEADER.index("Cardiomegaly")
    cells[column] = "0.0" if cells[column] == "1.0" else "1.0"
    copy = ",".join(cells) + "\n"
    (chexpert.root / "train.csv").write_text("".join(lines + [lines[1], copy, lines[5]]))
    lines = _csv_lines(chexpert.root / "valid.csv")
    (chexpert.root / "valid.csv").write_text("".join(lines + [lines[1]]))
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.data"):
        splits = load(chexpert.root, valid_fraction=0.0)
    assert "train.csv lists 3 image(s) a second time (first: line " in caplog.text
    assert "1 of them with other labels than the first" in caplog.text
    assert "valid.csv lists 1 image(s) a second time" in caplog.text
    assert splits.train.ids == before.train.ids and splits.test.ids == before.test.ids
    assert torch.equal(splits.train.labels, before.train.labels)  # the first row's labels


def test_test_images_and_patients_in_train_csv_are_left_out_of_training(chexpert, layouts, caplog):
    before = load(chexpert.root, views="all", valid_fraction=0.3, seed=1)
    train_lines = _csv_lines(chexpert.root / "train.csv")
    valid_lines = _csv_lines(chexpert.root / "valid.csv")
    # two rows of valid.csv copied verbatim (the test images themselves), and another image of a
    # test patient filed under train/
    other = layouts.XRay(64542, 2, 1, True, {"Edema": "1.0"}, grey=250)
    layouts.write_jpeg(chexpert.parent / other.path(chexpert.root.name, "train"), layouts.CHEXPERT_SIZE, "L", 250)
    extra = layouts.write_chexpert(chexpert.parent / "scratch", [other], [], folder=chexpert.root.name)
    row = _csv_lines(extra.root / "train.csv")[1]
    (chexpert.root / "train.csv").write_text("".join(train_lines[:3] + valid_lines[1:3] + train_lines[3:] + [row]))
    with caplog.at_level(logging.WARNING, logger="pyro_ccvae.data"):
        splits = load(chexpert.root, views="all", valid_fraction=0.3, seed=1)
    assert "train.csv lists 3 image(s) of 2 patient(s) of the test split valid.csv, 2 of them valid.csv's own images" in caplog.text
    assert "(first: line 4)" in caplog.text
    # the test split is the official one; training and validation are as without the copies
    assert splits.test.ids == before.test.ids
    assert splits.train.ids == before.train.ids and splits.valid.ids == before.valid.ids
    assert not {i.split("/")[2] for i in splits.train.ids + splits.valid.ids} & {i.split("/")[2] for i in splits.test.ids}
