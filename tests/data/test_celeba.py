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
