import pytest
import torch

from pyro_ccvae.data import DataError, DataOptions, load_dataset
from pyro_ccvae.data.celeba import PAPER_LABELS


def load(data_dir, **kwargs):
    return load_dataset("celeba", DataOptions(data_dir=data_dir, **kwargs))


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


def test_shapes_labels_and_official_partition(celeba, layouts):
    splits = load(celeba.root)
    assert splits.label_names == PAPER_LABELS and len(PAPER_LABELS) == 18
    assert splits.channels == 3 and splits.image_size == 64
    columns = [layouts.CELEBA_ATTRIBUTES.index(name) for name in PAPER_LABELS]
    for code, s in enumerate((splits.train, splits.valid, splits.test)):
        rows = [i for i, p in enumerate(celeba.partition) if p == code]
        assert s.ids == [celeba.names[i] for i in rows]
        assert s.images.dtype == torch.uint8 and s.images.shape == (len(rows), 3, 64, 64)
        assert s.labels.dtype == torch.float32 and s.mask.dtype == torch.bool and s.mask.all()
        expected = (torch.from_numpy(celeba.attributes[rows][:, columns]) > 0).float()
        assert torch.equal(s.labels, expected)  # -1/1 -> 0/1
        colours = s.images.float().mean((2, 3)).flatten().tolist()
        assert colours == pytest.approx([c for i in rows for c in celeba.colours[i]], abs=4)


def test_data_dir_is_the_folder_or_its_parent(celeba):
    a, b = load(celeba.root), load(celeba.root.parent)
    assert a.source["root"] == b.source["root"] == str(celeba.root)
    assert torch.equal(a.test.images, b.test.images)


def test_labels_by_name(celeba, layouts):
    splits = load(celeba.root, labels=("Wearing_Hat", "5_o_clock_shadow", "mouth slightly open"), image_size=16)
    assert splits.label_names == ("Wearing_Hat", "5_o_Clock_Shadow", "Mouth_Slightly_Open")
    assert splits.train.images.shape[-2:] == (16, 16)
    assert load(celeba.root, labels=tuple(layouts.CELEBA_ATTRIBUTES)).train.labels.shape[1] == 40


def test_center_crop(tmp_path, layouts):
    from PIL import Image, ImageDraw

    copy = layouts.write_celeba(tmp_path, partition=(0, 1, 2))
    # white in the central 148x148, black around it
    image = Image.new("RGB", layouts.CELEBA_SIZE, (0, 0, 0))
    left, top = (178 - 148) // 2, (218 - 148) // 2
    ImageDraw.Draw(image).rectangle((left, top, left + 147, top + 147), fill=(255, 255, 255))
    image.save(copy.root / "img_align_celeba" / copy.names[0], quality=95)
    plain, cropped = load(copy.root).train.images[0], load(copy.root, center_crop=True).train.images[0]
    assert cropped[:, 2:-2, 2:-2].min() >= 240  # only the white square is left
    assert plain.float().mean() < 200 and plain[:, 0, 0].max() < 20  # the whole face, border included
    assert (copy.root / ".ccvae-cache").is_dir() and len(list((copy.root / ".ccvae-cache").glob("*.npy"))) == 2


def test_variable_whitespace(tmp_path, layouts):
    copy = layouts.write_celeba(tmp_path, partition=(0, 1, 2))
    path = copy.root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ["   ".join(line.split()) + "  " for line in lines[2:]]) + "\n\n")
    assert load(copy.root).train.labels.shape == (1, 18)


# ---------------------------------------------------------------- bad input


def test_missing_directory_and_files(tmp_path, celeba):
    message = one_line(pytest.raises(DataError, load, tmp_path / "nowhere"))
    assert "nowhere" in message and "list_attr_celeba.txt" in message and "--data-dir" in message
    (celeba.root / "list_eval_partition.txt").unlink()
    assert "list_eval_partition.txt is missing" in one_line(pytest.raises(DataError, load, celeba.root))
    (celeba.root / "list_attr_celeba.txt").unlink()
    assert "list_attr_celeba.txt is missing" in one_line(pytest.raises(DataError, load, celeba.root))


def test_bad_attribute_value(celeba):
    path = celeba.root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    parts = lines[4].split()
    parts[1 + 20] = "0"  # Male
    lines[4] = " ".join(parts)
    path.write_text("\n".join(lines) + "\n")
    message = one_line(pytest.raises(DataError, load, celeba.root))
    assert "list_attr_celeba.txt line 5" in message and "Male" in message and "'0'" in message


def test_truncated_attribute_file(celeba):
    path = celeba.root / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    assert "says 11 images but lists 9" in one_line(pytest.raises(DataError, load, celeba.root))


@pytest.mark.parametrize("name", ["../outside.jpg", "../../outside.jpg", "sub/../../outside.jpg", "/tmp/outside.jpg"])
def test_an_image_name_leaving_the_data_directory_is_refused(celeba, layouts, name):
    # a readable image where the name leads: refused all the same, nothing decoded or cached
    layouts.write_jpeg(celeba.root / "outside.jpg", layouts.CELEBA_SIZE, "RGB", (1, 2, 3))
    for path in (celeba.root / "list_attr_celeba.txt", celeba.root / "list_eval_partition.txt"):
        path.write_text(path.read_text().replace(celeba.names[3], name))
    message = one_line(pytest.raises(DataError, load, celeba.root))
    assert f"list_attr_celeba.txt line 6: the image name {name!r}" in message and "outside the data directory" in message
    assert not (celeba.root / ".ccvae-cache").exists()


def test_unknown_label(celeba):
    message = one_line(pytest.raises(DataError, load, celeba.root, labels=("Smiling", "Grumpy")))
    assert "'Grumpy'" in message and "Wearing_Necktie" in message


def test_partition_missing_an_image(celeba):
    path = celeba.root / "list_eval_partition.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    message = one_line(pytest.raises(DataError, load, celeba.root))
    assert "1 images" in message and "000011.jpg" in message


def test_missing_and_corrupt_images(celeba):
    (celeba.root / "img_align_celeba" / celeba.names[1]).unlink()
    message = one_line(pytest.raises(DataError, load, celeba.root))
    assert "1 of 11 images are missing" in message and "000002.jpg" in message
    splits = load(celeba.root, skip_bad_images=True)
    assert "000002.jpg" not in splits.train.ids and len(splits.train) == 5
    (celeba.root / "img_align_celeba" / celeba.names[3]).write_bytes(b"\xff\xd8 not really")
    message = one_line(pytest.raises(DataError, load, celeba.root, image_size=8))
    assert "missing" in message
    write = celeba.root / "img_align_celeba" / celeba.names[1]
    write.write_bytes((celeba.root / "img_align_celeba" / celeba.names[0]).read_bytes())
    message = one_line(pytest.raises(DataError, load, celeba.root, image_size=8))
    assert "corrupt image 000004.jpg" in message


# ---------------------------------------------------------------- categorical labels

HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair")
#: which of HAIR each of the 11 images has on: one (its class), none, or several
HAIR_ON = [(0,), (1,), (2,), (), (0, 1), (2,), (0, 1, 2), (1,), (), (0,), (2,)]


def set_hair(copy, layouts, on=HAIR_ON):
    """Rewrite the copy's attribute file so that image ``i`` has exactly the hair colours ``on[i]``."""
    columns = [layouts.CELEBA_ATTRIBUTES.index(name) for name in HAIR]
    for row, classes in enumerate(on):
        copy.attributes[row, columns] = [1 if k in classes else -1 for k in range(len(HAIR))]
    lines = [str(len(copy.names)), " ".join(layouts.CELEBA_ATTRIBUTES) + " "]
    lines += [name + "".join(f"{v:>3d}" for v in row) for name, row in zip(copy.names, copy.attributes)]
    (copy.root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")


def test_categorical_label_from_exclusive_attributes(celeba, layouts, caplog):
    set_hair(celeba, layouts)
    spec = "hair=" + "|".join(HAIR)
    with caplog.at_level("INFO", logger="pyro_ccvae.data"):
        splits = load(celeba.root, labels=(spec, "Smiling", "Male"))
    assert splits.label_names == ("hair", "Smiling", "Male") and splits.num_classes == (3, 2, 2)
    assert splits.source["labels"] == [spec, "Smiling", "Male"] and splits.source["classes"] == {"hair": list(HAIR)}
    binary = [layouts.CELEBA_ATTRIBUTES.index(name) for name in ("Smiling", "Male")]
    for code, s in enumerate((splits.train, splits.valid, splits.test)):
        rows = [i for i, p in enumerate(celeba.partition) if p == code]
        # class k where only the k-th attribute is on; unobserved (label 0) where none or several are
        expected = [HAIR_ON[i][0] if len(HAIR_ON[i]) == 1 else 0 for i in rows]
        assert s.labels[:, 0].tolist() == expected
        assert s.mask[:, 0].tolist() == [len(HAIR_ON[i]) == 1 for i in rows]
        assert s.mask[:, 1:].all()
        assert torch.equal(s.labels[:, 1:], (torch.from_numpy(celeba.attributes[rows][:, binary]) > 0).float())
    lines = [r.getMessage() for r in caplog.records if "hair" in r.getMessage()]
    assert lines == ["CelebA label 'hair': 4 of 11 images unobserved (2 with none of Black_Hair|Blond_Hair|Brown_Hair on, 2 with several)"]


def test_categorical_names_match_loosely_and_leave_the_cache_alone(celeba, layouts):
    set_hair(celeba, layouts)
    plain = load(celeba.root, image_size=8)
    caches = sorted((celeba.root / ".ccvae-cache").glob("*.npy"))
    loose = load(celeba.root, labels=("Hair colour = black hair|BLOND_HAIR | brown_hair",), image_size=8)
    assert loose.label_names == ("Hair colour",) and loose.source["classes"] == {"Hair colour": list(HAIR)}
    assert sorted((celeba.root / ".ccvae-cache").glob("*.npy")) == caches  # labels are not cached
    assert torch.equal(loose.test.images, plain.test.images)


def test_two_classes_and_counts_of_the_images_kept(celeba, layouts, caplog):
    set_hair(celeba, layouts)
    (celeba.root / "img_align_celeba" / celeba.names[3]).unlink()  # it has no hair colour on
    with caplog.at_level("INFO", logger="pyro_ccvae.data"):
        dark = load(celeba.root, labels=("dark=Black_Hair|Brown_Hair",), image_size=8, skip_bad_images=True)
    assert dark.num_classes == (2,) and celeba.names[3] not in dark.train.ids
    kept = (0, 1, 2, 4, 5)
    assert dark.train.mask[:, 0].tolist() == [sorted(set(HAIR_ON[i]) - {1}) in ([0], [2]) for i in kept]
    assert dark.train.labels[:, 0].tolist() == [1.0 if HAIR_ON[i] == (2,) else 0.0 for i in kept]
    # of the 10 images kept, 1 and 7 (blond only) and 8 have neither attribute on, 6 has both
    message = next(r.getMessage() for r in caplog.records if "'dark'" in r.getMessage())
    assert message == "CelebA label 'dark': 4 of 10 images unobserved (3 with none of Black_Hair|Brown_Hair on, 1 with several)"


@pytest.mark.parametrize(
    "labels, expected",
    [
        (("hair=Black_Hair|Purple_Hair",), "CelebA has no attribute 'Purple_Hair' (in --labels 'hair=Black_Hair|Purple_Hair'); valid names: 5_o_Clock_Shadow,"),
        (("hair=Black_Hair",), "categorical label 'hair=Black_Hair' has one attribute; give it two or more (hair=Black_Hair|OTHER|...), or pass Black_Hair alone as a binary label"),
        (("hair=Black_Hair|Blond_Hair", "Blond_Hair"), "attribute 'Blond_Hair' is used twice in --labels (in 'hair=Black_Hair|Blond_Hair' and 'Blond_Hair'); use each attribute in one label only"),
        (("hair=Black_Hair|Blond_Hair", "light=Blond_Hair|Gray_Hair"), "attribute 'Blond_Hair' is used twice in --labels (in 'hair=Black_Hair|Blond_Hair' and 'light=Blond_Hair|Gray_Hair')"),
        (("hair=Black_Hair|black_hair",), "attribute 'Black_Hair' is used twice in 'hair=Black_Hair|black_hair'; list each class once"),
        (("hair=Black_Hair|Blond_Hair", "hair=Brown_Hair|Gray_Hair"), "label 'hair' is asked for twice; pass each label once to --labels"),
        (("=Black_Hair|Blond_Hair",), "categorical label '=Black_Hair|Blond_Hair' has no name; write NAME=A|B|..., e.g. hair=Black_Hair|Blond_Hair|Brown_Hair"),
        (("hair=Black_Hair||Blond_Hair",), "categorical label 'hair=Black_Hair||Blond_Hair' has an empty attribute name; separate its attributes by one '|'"),
        (("bald=Black_Hair|Blond_Hair",), "categorical label 'bald=Black_Hair|Blond_Hair' is named after the attribute 'Bald'; give it a name of its own"),
        (("Smiling", "Grumpy"), "CelebA has no label 'Grumpy'; valid names: 5_o_Clock_Shadow,"),
    ],
)
def test_bad_label_specs_are_one_line_errors(celeba, labels, expected):
    message = one_line(pytest.raises(DataError, load, celeba.root, labels=labels))
    assert message.startswith(expected), message
