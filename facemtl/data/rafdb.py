"""RAF-DB basic: real-world faces with one of seven expression labels.

Layout of the ``basic`` folder (``root``)::

    EmoLabel/list_patition_label.txt   # (sic) "train_00001.jpg 5" per line; also accepted at root
    Image/aligned/train_00001_aligned.jpg
    Image/original/train_00001.jpg

Labels: 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from facemtl.contract import EXPRESSIONS
from facemtl.data._common import require
from facemtl.data.sample import Sample
from facemtl.io import FileError

LABEL_FILE = "list_patition_label.txt"
# RAF-DB label - 1 -> EXPRESSIONS name.
RAF_CLASSES = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")
SPLITS = ("train", "test")


def read_rafdb(root: str | Path, split: Optional[str] = "train", aligned: bool = True) -> list[Sample]:
    """Read the samples of ``split`` (``"train"``, ``"test"`` or ``None`` for both).

    ``aligned`` picks ``Image/aligned/<name>_aligned.jpg`` (100x100 aligned faces) instead of
    ``Image/original/<name>``. ``meta`` holds ``split`` and ``name`` (the label file's name).
    Raises :class:`FileError` naming the file (and line) for a missing label file or image
    folder, a malformed line, an unknown label or a missing image.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    root = Path(root)
    label_file = next((p for p in (root / "EmoLabel" / LABEL_FILE, root / LABEL_FILE) if p.is_file()), None)
    if label_file is None:
        raise FileError(root, f"no EmoLabel/{LABEL_FILE} or {LABEL_FILE} found")
    image_dir = root / "Image" / ("aligned" if aligned else "original")
    if not image_dir.is_dir():
        raise FileError(image_dir, f"image folder not found (aligned={not aligned} reads the other one)")
    samples = []
    try:
        lines = label_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FileError(label_file, f"not a readable text file ({e})") from e
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise FileError(label_file, f"line {number}: expected '<image name> <label 1-7>', got {line!r}")
        name, label = fields[0], int(fields[1])
        if not 1 <= label <= len(RAF_CLASSES):
            raise FileError(label_file, f"line {number}: label {label} not in 1..{len(RAF_CLASSES)}")
        row_split = name.split("_")[0]
        if row_split not in SPLITS:
            raise FileError(label_file, f"line {number}: image name {name!r} does not start with train_ or test_")
        if split is not None and row_split != split:
            continue
        path = require(image_dir / (f"{Path(name).stem}_aligned{Path(name).suffix}" if aligned else name),
                       f"image (listed on line {number} of {label_file})")
        samples.append(Sample(source="rafdb", image_path=str(path),
                              expression=EXPRESSIONS.index(RAF_CLASSES[label - 1]),
                              meta={"split": row_split, "name": name}))
    if not samples:
        raise FileError(label_file, f"no {split or 'train/test'} images listed")
    return samples
