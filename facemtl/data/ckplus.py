"""CK+ (extended Cohn-Kanade) face crops sorted into one folder per expression.

Layout: ``root/{anger,contempt,disgust,fear,happy,sadness,surprise}/*.png`` (the common 48x48
release names files ``S010_004_00000017.png``: subject, sequence, frame).
"""

from __future__ import annotations

import re
from pathlib import Path

from facemtl.contract import EXPRESSIONS
from facemtl.data._common import require
from facemtl.data.sample import Sample
from facemtl.io import IMAGE_SUFFIXES, FileError

# Folder name -> EXPRESSIONS name. Contempt has no class among the seven.
FOLDERS = {
    "neutral": "neutral",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "fear": "fear",
    "disgust": "disgust",
    "anger": "angry",
    "contempt": None,
}
_SUBJECT = re.compile(r"^(S\d+)_")


def read_ckplus(root: str | Path, include_contempt: bool = False) -> list[Sample]:
    """Read every image under ``root``'s class folders, sorted by folder then file name.

    Contempt is not one of :data:`EXPRESSIONS`: its images are skipped unless
    ``include_contempt``, which yields them with ``expression=None``. ``meta`` holds ``label``
    (the folder name) and ``subject`` (e.g. ``"S010"``, for subject-independent splits) when
    the file name carries it. Images are read lazily (``image_path``). Raises
    :class:`FileError` for a missing root, an unknown class folder or no images.
    """
    root = require(Path(root), "CK+ root folder", is_dir=True)
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.lower() not in FOLDERS:
            raise FileError(folder, f"unknown expression folder; expected one of {sorted(FOLDERS)}")
        name = FOLDERS[folder.name.lower()]
        if name is None and not include_contempt:
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            meta = {"label": folder.name}
            match = _SUBJECT.match(path.name)
            if match:
                meta["subject"] = match.group(1)
            samples.append(Sample(source="ckplus", image_path=str(path),
                                  expression=None if name is None else EXPRESSIONS.index(name), meta=meta))
    if not samples:
        raise FileError(root, "no images in class folders")
    return samples
