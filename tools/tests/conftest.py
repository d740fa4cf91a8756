"""Shared fixtures: a tiny synthetic FER2013-layout CSV with learnable classes."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion_tools.data import CLASS_NAMES  # noqa: E402


def synthetic_faces(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """48x48 images whose class is the position of a bright square, so a few steps can learn it."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASS_NAMES)
    images = rng.integers(0, 60, size=(count, 48, 48), dtype=np.uint8)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 3)
        image[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] = 220
    return images, labels


def write_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    lines = ["emotion,pixels,Usage"] + [f"{label},{pixels},{usage}" for label, pixels, usage in rows]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """70 Training and 21 PublicTest rows, plus PrivateTest rows with malformed pixels.

    The PrivateTest rows would fail to parse, so any code that reads them fails the tests.
    """
    rows = []
    for usage, count, seed in (("Training", 70, 1), ("PublicTest", 21, 2)):
        images, labels = synthetic_faces(count, seed)
        rows += [(int(l), " ".join(map(str, img.ravel())), usage) for img, l in zip(images, labels)]
    rows += [(0, "1 2 3", "PrivateTest")] * 3
    return write_csv(tmp_path / "fer_tiny.csv.gz", rows)
