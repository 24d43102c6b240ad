"""FER2013: 48x48 grey faces with one of seven expression labels, held in memory.

Two layouts are read:

* the original Kaggle ``fer2013.csv`` with columns ``emotion`` (0 angry, 1 disgust, 2 fear,
  3 happy, 4 sad, 5 surprise, 6 neutral), ``pixels`` (2304 space-separated grey values) and
  ``Usage`` (``Training`` / ``PublicTest`` / ``PrivateTest``);
* one ``.npz`` per split (``train.npz``, ``validation.npz``, ``test.npz``) with ``images``
  (uint8 N x 48 x 48), ``labels`` and ``classes`` (the name of each label value).

Labels are mapped onto :data:`facemtl.contract.EXPRESSIONS` order.
"""

from __future__ import annotations

import csv
import zipfile
import zlib
from pathlib import Path

import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.data.sample import Sample
from facemtl.io import FileError

SPLITS = ("train", "validation", "test")
CSV_USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}
# The csv's label order (also the usual order of the npz ``classes``).
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Names seen in ``classes`` for the same expressions.
_ALIASES = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
SIZE = 48


def load_fer2013_arrays(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read one split as arrays, the fast path for training.

    ``root`` is a folder holding ``{train,validation,test}.npz`` or ``fer2013.csv``, or the
    path of ``fer2013.csv`` itself. ``split`` is ``"train"``, ``"validation"`` or ``"test"``
    (the csv's ``Training``, ``PublicTest``, ``PrivateTest``).

    Returns ``images`` uint8 (N, 48, 48) grey and ``labels`` int64 (N,) indexing
    :data:`EXPRESSIONS`. Raises :class:`FileError` naming the file (and csv line) on
    missing or malformed input.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if root.is_file() and root.suffix == ".csv":
        return _read_csv(root, split)
    if (root / f"{split}.npz").is_file():
        return _read_npz(root / f"{split}.npz")
    if (root / "fer2013.csv").is_file():
        return _read_csv(root / "fer2013.csv", split)
    raise FileError(root, f"no {split}.npz or fer2013.csv found")


def read_fer2013(root: str | Path, split: str = "train") -> list[Sample]:
    """Read one split (see :func:`load_fer2013_arrays`) as samples.

    Each ``Sample.image`` is a read-only (48, 48, 3) BGR view broadcast from the grey array, so
    the 28,709 training faces cost no more memory than their grey pixels; copy an image before
    drawing on it. ``meta`` holds ``split`` and ``index`` (the row within the split).
    """
    images, labels = load_fer2013_arrays(root, split)
    return [
        Sample(source="fer2013", image=np.broadcast_to(image[:, :, None], (SIZE, SIZE, 3)),
               expression=int(label), meta={"split": split, "index": i})
        for i, (image, label) in enumerate(zip(images, labels))
    ]


def _expression_index(name: str) -> int | None:
    name = _ALIASES.get(name.strip().lower(), name.strip().lower())
    return EXPRESSIONS.index(name) if name in EXPRESSIONS else None


def _check_npz_sizes(path: Path) -> None:
    """Refuse arrays whose header declares more data than their member holds, before numpy
    allocates it (a damaged header could ask for terabytes)."""
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            if dtype.hasobject:
                continue  # refused by allow_pickle=False below
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > info.file_size:
                raise FileError(path, f"{info.filename}: header declares {shape} {dtype} "
                                         f"({need} bytes) but holds {info.file_size} bytes")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("images", "labels", "classes") if key in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise FileError(path, f"not a readable .npz ({type(e).__name__}: {e})") from e
    missing = {"images", "labels", "classes"} - set(arrays)
    if missing:
        raise FileError(path, f"missing arrays {sorted(missing)}")
    images, labels, classes = arrays["images"], arrays["labels"], arrays["classes"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise FileError(path, f"images must be uint8 (N, {SIZE}, {SIZE}), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise FileError(path, f"labels must be {len(images)} integers, got {labels.dtype} {labels.shape}")
    if classes.ndim != 1:
        raise FileError(path, f"classes must be a list of names, got shape {classes.shape}")
    to_ours = np.array([_expression_index(str(name)) for name in classes], dtype=object)
    unknown = [str(name) for name, index in zip(classes, to_ours) if index is None]
    if unknown:
        raise FileError(path, f"unknown classes {unknown}; expected names of {EXPRESSIONS}")
    bad = (labels < 0) | (labels >= len(classes))
    if bad.any():
        raise FileError(path, f"label {labels[bad][0]} at index {int(np.argmax(bad))} is not a class index "
                                 f"(0..{len(classes) - 1})")
    return images, to_ours.astype(np.int64)[labels]


def _read_csv(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    usage = CSV_USAGE[split]
    fer_to_ours = np.array([EXPRESSIONS.index(name) for name in FER_CLASSES])
    images, labels = [], []
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            missing = {"emotion", "pixels", "Usage"} - set(header)
            if missing:
                raise FileError(path, f"line 1: header {header} lacks columns {sorted(missing)}")
            col = {name: header.index(name) for name in ("emotion", "pixels", "Usage")}
            for row in reader:
                where = f"line {reader.line_num}"
                if not row:
                    continue
                if len(row) != len(header):
                    raise FileError(path, f"{where}: {len(row)} fields, expected {len(header)}")
                row_usage = row[col["Usage"]].strip()
                if row_usage not in CSV_USAGE.values():
                    raise FileError(path, f"{where}: unknown Usage {row_usage!r}")
                if row_usage != usage:
                    continue
                try:
                    emotion = int(row[col["emotion"]])
                    pixels = np.array(row[col["pixels"]].split(), dtype=np.int64)
                except ValueError as e:
                    raise FileError(path, f"{where}: not an integer ({e})") from e
                if not 0 <= emotion < len(FER_CLASSES):
                    raise FileError(path, f"{where}: emotion {emotion} not in 0..{len(FER_CLASSES) - 1}")
                if pixels.size != SIZE * SIZE:
                    raise FileError(path, f"{where}: {pixels.size} pixels, expected {SIZE * SIZE}")
                if pixels.min() < 0 or pixels.max() > 255:
                    raise FileError(path, f"{where}: pixel values outside 0..255")
                images.append(pixels.astype(np.uint8).reshape(SIZE, SIZE))
                labels.append(fer_to_ours[emotion])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FileError(path, f"not a readable csv ({e})") from e
    if not images:
        raise FileError(path, f"no {usage} rows")
    return np.stack(images), np.array(labels, dtype=np.int64)
