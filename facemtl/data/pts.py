"""iBUG ``.pts`` landmark files: 300W (one per image) and 300VW (one per video frame).

File layout::

    version: 1
    n_points: 68
    {
    x y
    ...
    }

The iBUG annotations are 1-based (MATLAB pixel indices: the top-left pixel's centre is
(1, 1)); the readers subtract 1 so that landmarks follow facemtl's 0-based convention.
Boxes are the tight box of the landmarks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facemtl.contract import landmark_box
from facemtl.data._common import find_image, parse_floats, read_each, require
from facemtl.data.sample import Sample
from facemtl.io import FileError

_N_POINTS = re.compile(r"^n_points\s*:\s*(\S+)$")


def read_pts(path: str | Path, one_based: bool = True) -> np.ndarray:
    """Points of one ``.pts`` file as (n_points, 2) float64, 0-based (see the module docstring).

    ``one_based=False`` keeps the numbers as written. Raises :class:`FileError` for a
    missing header, a truncated file, a bad number or a count that disagrees with ``n_points``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileError(path, "file not found")
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 3 or not lines[0].startswith("version"):
        raise FileError(path, "not a .pts file: expected 'version:', 'n_points:' and '{' header lines")
    match = _N_POINTS.match(lines[1])
    if match is None:
        raise FileError(path, f"line 2: expected 'n_points: N', got {lines[1]!r}")
    try:
        n = int(match.group(1))
    except ValueError:
        raise FileError(path, f"line 2: unparsable number of points {match.group(1)!r}") from None
    if lines[2] != "{":
        raise FileError(path, f"line 3: expected '{{', got {lines[2]!r}")
    body = lines[3:]
    if "}" not in body:
        raise FileError(path, f"truncated: no closing '}}' ({len(body)} of {n} points)")
    body = body[: body.index("}")]
    if len(body) != n:
        raise FileError(path, f"has {len(body)} points, n_points says {n}")
    points = np.empty((n, 2))
    for i, line in enumerate(body):
        tokens = line.split()
        if len(tokens) != 2:
            raise FileError(path, f"point {i + 1}: expected 'x y', got {line!r}")
        points[i] = parse_floats(tokens, path, f"point {i + 1}")
    return points - 1.0 if one_based else points


def read_pts_folder(root: str | Path, skip_errors: bool = False, one_based: bool = True) -> list[Sample]:
    """300W-style folders: every ``*.pts`` under ``root`` (recursive) with its image beside it.

    68-point files fill ``landmarks``; other point counts ``raw_landmarks`` instead. ``root`` may
    also be a single ``.pts`` file. ``skip_errors``: log and skip malformed files.
    """
    root = require(Path(root), "dataset root")
    paths = [root] if root.is_file() else sorted(root.rglob("*.pts"))
    return read_each(paths, lambda p: _sample("300w", p, find_image(p), one_based), skip_errors)


def read_300vw(root: str | Path, skip_errors: bool = False, one_based: bool = True) -> list[Sample]:
    """300VW with frames extracted: ``root/NNN/annot/XXXXXX.pts`` + ``root/NNN/imgs/XXXXXX.jpg``.

    ``meta`` holds ``video`` (``"NNN"``) and ``frame`` (int). ``skip_errors``: log and skip
    malformed files.
    """
    root = require(Path(root), "300VW root folder", is_dir=True)
    paths = sorted(root.glob("*/annot/*.pts"))
    if not paths:
        raise FileError(root, "no */annot/*.pts files")

    def read_one(path: Path) -> Sample:
        video = path.parent.parent
        sample = _sample("300vw", path, find_image(path, folder=video / "imgs"), one_based)
        sample.meta.update(video=video.name, frame=int(path.stem) if path.stem.isdigit() else path.stem)
        return sample

    return read_each(paths, read_one, skip_errors)


def _sample(source: str, path: Path, image: Path, one_based: bool) -> Sample:
    points = read_pts(path, one_based)
    if len(points) == 0:
        raise FileError(path, "has no points")
    is_68 = len(points) == 68
    return Sample(source=source, image_path=str(image), box=landmark_box(points),
                  landmarks=points if is_68 else None, raw_landmarks=None if is_68 else points,
                  meta={"annotation": str(path)})
