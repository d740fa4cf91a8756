"""Input validation: bad CSV rows and bad image folders name the file and line or path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_faces, write_csv
from emotion_tools.__main__ import main
from emotion_tools.data import PUBLIC_TEST, TRAINING, DataError, load

GOOD = " ".join(["7"] * 2304)


def test_csv_skips_private_test_without_parsing(tiny_csv):
    splits = load(tiny_csv, (TRAINING, PUBLIC_TEST))
    assert len(splits[TRAINING]) == 70 and len(splits[PUBLIC_TEST]) == 21
    assert splits[TRAINING].images.shape == (70, 48, 48)


@pytest.mark.parametrize(
    "row, message",
    [
        ((3, "1 2 3", "Training"), "fer.csv:3: expected 2304 pixel values, found 3"),
        ((9, GOOD, "Training"), "fer.csv:3: unknown emotion label 9"),
        (("x", GOOD, "Training"), "fer.csv:3: emotion 'x' is not a number"),
        ((1, GOOD, "Validation"), "fer.csv:3: unknown Usage 'Validation'"),
        ((1, GOOD.replace("7", "300", 1), "Training"), "fer.csv:3: pixel values must be 0..255"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, row, message):
    path = write_csv(tmp_path / "fer.csv", [(0, GOOD, "Training"), row])
    with pytest.raises(DataError, match=message.replace(".", r"\.")):
        load(path, (TRAINING,))


def test_csv_missing_column(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels\n0,1 2\n")
    with pytest.raises(DataError, match="fer.csv:1: header lacks column"):
        load(path, (TRAINING,))


def test_cli_reports_bad_input_with_exit_code(tmp_path, capsys):
    path = write_csv(tmp_path / "fer.csv", [(0, "1 2", "Training")])
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "fer.csv:2: expected 2304 pixel values, found 2" in capsys.readouterr().err


def _write_folder(root, split, images, labels):
    from emotion_tools.data import CLASS_NAMES

    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / split / CLASS_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")


def test_image_folder_layout_round_trips(tmp_path):
    images, labels = synthetic_faces(14, 5)
    _write_folder(tmp_path, "train", images, labels)
    split = load(tmp_path, (TRAINING,))[TRAINING]
    assert len(split) == 14
    # Folder order is by class then file name; every image must come back unchanged with its label.
    for img, label in zip(split.images, split.labels):
        assert any(np.array_equal(img, original) for original, l in zip(images, labels) if l == label)


def test_image_folder_unreadable_image_named(tmp_path):
    images, labels = synthetic_faces(7, 5)
    _write_folder(tmp_path, "test", images, labels)
    bad = tmp_path / "test" / "happy" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg: unreadable image"):
        load(tmp_path, (PUBLIC_TEST,))


def test_image_folder_unknown_class_named(tmp_path):
    (tmp_path / "train" / "contempt").mkdir(parents=True)
    with pytest.raises(DataError, match="contempt: unknown class folder"):
        load(tmp_path, (TRAINING,))
