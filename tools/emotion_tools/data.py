"""FER2013 loading: the Kaggle CSV layout (plain or gzip) and the image-folder layout.

Both loaders return uint8 arrays of shape (N, 48, 48) and int64 labels in the
official FER2013 class order. Bad input raises `DataError` naming the file and
line (CSV) or path (folders) so a user can fix the data instead of guessing.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: FER2013 class names in the dataset's own label order (0..6).
CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIDE = 48
PIXELS_PER_IMAGE = IMAGE_SIDE * IMAGE_SIDE

#: CSV `Usage` values, and the folder names of the image-folder layout that mean the same.
TRAINING = "Training"
PUBLIC_TEST = "PublicTest"
PRIVATE_TEST = "PrivateTest"
USAGES = (TRAINING, PUBLIC_TEST, PRIVATE_TEST)
FOLDER_FOR_USAGE = {TRAINING: "train", PUBLIC_TEST: "test"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and line or path."""


@dataclass
class Split:
    """Faces of one usage: images (N, 48, 48) uint8 and labels (N,) int64."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def load(path: str | Path, usages: tuple[str, ...]) -> dict[str, Split]:
    """Load the requested usages from a FER2013 CSV(.gz) file or an image-folder root."""
    path = Path(path)
    unknown = [u for u in usages if u not in USAGES]
    if unknown:
        raise DataError(f"unknown usage {unknown[0]!r}; expected one of {', '.join(USAGES)}")
    if path.is_dir():
        return {u: load_folder(path, u) for u in usages}
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return load_csv(path, usages)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def load_csv(path: str | Path, usages: tuple[str, ...]) -> dict[str, Split]:
    """Read the Kaggle `emotion,pixels,Usage` layout, keeping only the requested usages.

    Rows of other usages are skipped without parsing their pixels, so a full
    `fer2013.csv` never exposes `PrivateTest` to training code that did not ask for it.
    """
    path = Path(path)
    images: dict[str, list[np.ndarray]] = {u: [] for u in usages}
    labels: dict[str, list[int]] = {u: [] for u in usages}
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file")
            columns = [c.strip() for c in header]
            missing = [c for c in ("emotion", "pixels", "Usage") if c not in columns]
            if missing:
                raise DataError(
                    f"{path}:1: header lacks column(s) {', '.join(missing)}; "
                    "expected emotion,pixels,Usage"
                )
            i_emotion, i_pixels, i_usage = (columns.index(c) for c in ("emotion", "pixels", "Usage"))
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(columns):
                    raise DataError(f"{path}:{line}: expected {len(columns)} fields, found {len(row)}")
                usage = row[i_usage].strip()
                if usage not in USAGES:
                    raise DataError(f"{path}:{line}: unknown Usage {usage!r}")
                if usage not in images:
                    continue
                labels[usage].append(_parse_label(row[i_emotion], path, line))
                images[usage].append(_parse_pixels(row[i_pixels], path, line))
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read: {err}") from err
    return {
        u: Split(
            np.stack(images[u]) if images[u] else np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8),
            np.asarray(labels[u], dtype=np.int64),
        )
        for u in usages
    }


def _parse_label(text: str, path: Path, line: int) -> int:
    try:
        label = int(text)
    except ValueError:
        raise DataError(f"{path}:{line}: emotion {text!r} is not a number") from None
    if not 0 <= label < len(CLASS_NAMES):
        raise DataError(f"{path}:{line}: unknown emotion label {label}; expected 0..{len(CLASS_NAMES) - 1}")
    return label


def _parse_pixels(text: str, path: Path, line: int) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{path}:{line}: pixels contain a value that is not an integer") from None
    if values.size != PIXELS_PER_IMAGE:
        raise DataError(f"{path}:{line}: expected {PIXELS_PER_IMAGE} pixel values, found {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path}:{line}: pixel values must be 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)


def load_folder(root: str | Path, usage: str) -> Split:
    """Read `<root>/<train|test>/<class>/*` images, converting to 48x48 grayscale."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if usage not in FOLDER_FOR_USAGE:
        raise DataError(f"{root}: the image-folder layout has no {usage} split (only train and test)")
    split_dir = root / FOLDER_FOR_USAGE[usage]
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder missing; expected {root}/train/<class>/ and {root}/test/<class>/")
    for entry in sorted(split_dir.iterdir()):
        if entry.is_dir() and entry.name not in CLASS_NAMES:
            raise DataError(f"{entry}: unknown class folder; expected one of {', '.join(CLASS_NAMES)}")
    images, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            continue
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    gray = img.convert("L")
                    if gray.size != (IMAGE_SIDE, IMAGE_SIDE):
                        gray = gray.resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
                    images.append(np.asarray(gray, dtype=np.uint8))
            except (OSError, UnidentifiedImageError) as err:
                raise DataError(f"{file}: unreadable image: {err}") from err
            labels.append(label)
    if not images:
        raise DataError(f"{split_dir}: no images found")
    return Split(np.stack(images), np.asarray(labels, dtype=np.int64))
