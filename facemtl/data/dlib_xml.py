"""dlib's imglab XML (``<image file>``, ``<box top left width height>``, ``<part name x y>``).

Coordinates are dlib's 0-based pixel indices, used as written. A dlib rectangle covers the
pixels ``left .. left + width - 1``; ``box`` is ``[left, top, left + width, top + height]``.
Boxes marked ``ignore='1'`` (faces too small or unclear for training) are kept with
``meta["ignore"]``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from facemtl.data._common import require
from facemtl.data.sample import Sample
from facemtl.io import FileError


def read_dlib_xml(root: str | Path, per_image: bool = False) -> list[Sample]:
    """Read an imglab XML file (``root``); image paths are relative to its folder.

    Default: one sample per box, with ``box`` and, when the box has parts, ``raw_landmarks``
    (K, 2) in part-name order; 68 parts named 0..67 fill ``landmarks`` instead (dlib's
    iBUG-68 files). ``per_image=True``: one sample per image with ``boxes`` (N, 4) and
    ``meta["ignore"]`` (N,) bool, for detection. ``meta`` always holds ``width`` and ``height``
    when the file gives them.
    """
    root = require(Path(root), "dlib XML file")
    try:
        tree = ET.parse(root)
    except ET.ParseError as e:
        raise FileError(root, f"invalid XML: {e}") from e
    samples = []
    for image in tree.getroot().iter("image"):
        name = image.get("file")
        if name is None:
            raise FileError(root, "<image> without a 'file' attribute")
        meta = {k: _int(image, k, root) for k in ("width", "height") if image.get(k) is not None}
        faces = [_face(box, root, name) for box in image.iter("box")]
        path = str(root.parent / name)
        if per_image:
            boxes = np.array([f[0] for f in faces]).reshape(-1, 4)
            samples.append(Sample(source="dlib-xml", image_path=path, boxes=boxes,
                                  meta={**meta, "ignore": np.array([f[3] for f in faces], dtype=bool)}))
            continue
        for box, parts, is_68, ignore in faces:
            samples.append(Sample(source="dlib-xml", image_path=path, box=box, landmarks=parts if is_68 else None,
                                  raw_landmarks=None if is_68 else parts, meta={**meta, "ignore": ignore}))
    return samples


def _int(element: ET.Element, key: str, path: Path) -> int:
    try:
        return int(element.get(key))
    except (TypeError, ValueError):
        raise FileError(path, f"<{element.tag}> attribute {key}={element.get(key)!r} is not an integer") from None


def _face(box: ET.Element, path: Path, name: str) -> tuple[np.ndarray, np.ndarray | None, bool, bool]:
    """(box x1y1x2y2, parts (K, 2) or None, parts are iBUG 0..67, ignore) of one ``<box>``."""
    left, top, width, height = (_int(box, k, path) for k in ("left", "top", "width", "height"))
    xyxy = np.array([left, top, left + width, top + height], dtype=np.float64)
    ignore = box.get("ignore") == "1"
    parts = box.findall("part")
    if not parts:
        return xyxy, None, False, ignore
    named = sorted((_name_key(p.get("name", "")), _int(p, "x", path), _int(p, "y", path)) for p in parts)
    keys = [k for k, _, _ in named]
    if len(set(keys)) != len(keys):
        raise FileError(path, f"{name}: a box repeats part names")
    points = np.array([(x, y) for _, x, y in named], dtype=np.float64)
    return xyxy, points, keys == [(0, i) for i in range(68)], ignore


def _name_key(name: str) -> tuple[int, int | str]:
    """Numeric part names sort as numbers ("2" before "10"), other names after them as text."""
    return (0, int(name)) if name.isdigit() else (1, name)
