"""WIDER FACE box lists (``wider_face_{train,val}_bbx_gt.txt``).

Per image: its path (relative to ``WIDER_{split}/images``), the face count, then one line per
face ``x y w h blur expression illumination invalid occlusion pose``. An image with no face
still has one all-zero face line after its count of 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.data._common import parse_floats, require
from facemtl.data.sample import Sample
from facemtl.io import FileError

ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


def read_wider(root: str | Path, images: str | Path | None = None) -> list[Sample]:
    """Read a WIDER FACE ground-truth list (``root``), one sample per image.

    ``images``: folder the image paths are relative to; default
    ``../WIDER_{train,val}/images`` from the list's folder (``wider_face_split``) when the file
    name says the split, else the list's folder. ``boxes`` is (N, 4) ``x1, y1, x2, y2``;
    ``meta`` holds each attribute of :data:`ATTRIBUTES` as an (N,) int array (``invalid``
    as bool).
    """
    root = require(Path(root), "WIDER FACE list")
    images = Path(images) if images is not None else _default_images(root)
    lines = root.read_text(errors="replace").splitlines()
    samples, n = [], 0
    while n < len(lines):
        name = lines[n].strip()
        n += 1
        if not name:
            continue
        if n >= len(lines):
            raise FileError(root, f"line {n}: truncated after image name {name!r}")
        count_text = lines[n].strip()
        if not count_text.isdigit():
            raise FileError(root, f"line {n + 1}: expected the face count of {name!r}, got {count_text!r}")
        count = int(count_text)
        n += 1
        rows = lines[n:n + max(count, 1)]  # a count of 0 is followed by one placeholder line
        if len(rows) < max(count, 1):
            raise FileError(root, f"line {n + 1}: truncated, {name!r} has {len(rows)} of {count} face lines")
        faces = np.zeros((count, 10))
        for i, row in enumerate(rows[:count]):
            fields = row.split()
            if len(fields) != 10:
                raise FileError(root, f"line {n + i + 1}: {len(fields)} fields, expected 10 "
                                         "(x y w h blur expression illumination invalid occlusion pose)")
            faces[i] = parse_floats(fields, root, f"line {n + i + 1}")
        n += max(count, 1)
        x, y, w, h = faces[:, :4].T
        meta = {k: faces[:, 4 + j].astype(np.int64) for j, k in enumerate(ATTRIBUTES)}
        meta["invalid"] = meta["invalid"].astype(bool)
        samples.append(Sample(source="wider", image_path=str(images / name),
                              boxes=np.stack([x, y, x + w, y + h], axis=-1), meta=meta))
    if not samples:
        raise FileError(root, "no images listed")
    return samples


def _default_images(root: Path) -> Path:
    for split in ("train", "val", "test"):
        if f"_{split}_" in root.name:
            return root.parent.parent / f"WIDER_{split}" / "images"
    return root.parent
