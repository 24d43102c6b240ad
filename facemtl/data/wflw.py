"""WFLW (98 points) in its native list format, and the 98 -> iBUG-68 mapping.

``list_98pt_rect_attr_{train,test}.txt``: one face per line, 207 space-separated fields:
196 coordinates ``x0 y0 ... x97 y97``, the box ``x_min y_min x_max y_max``, six 0/1
attributes (pose, expression, illumination, make-up, occlusion, blur) and the image path
relative to ``WFLW_images``. Coordinates are used as written (0-based pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.data._common import map_to_68, parse_floats, require
from facemtl.data.sample import Sample
from facemtl.io import FileError

# WFLW index of each iBUG-68 point: the jaw takes every other contour point, the brows their
# upper contour, the eyes drop the two mid-lid points, the nose and mouth map one to one;
# WFLW 96/97 (pupils) have no iBUG point. The index list used for WFLW -> 68 conversion by
# e.g. pixel3dmm and MonoNPHM (``WFLW_2_iBUG68``); checked on the mmpose WFLW samples.
WFLW98_TO_68: tuple[int, ...] = (
    *range(0, 33, 2),  # jaw 0-16
    33, 34, 35, 36, 37,  # right brow (image left) 17-21
    42, 43, 44, 45, 46,  # left brow 22-26
    51, 52, 53, 54,  # nose bridge 27-30
    55, 56, 57, 58, 59,  # nostrils 31-35
    60, 61, 63, 64, 65, 67,  # eye 36-41
    68, 69, 71, 72, 73, 75,  # eye 42-47
    *range(76, 96),  # mouth 48-67
)
ATTRIBUTES = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
_N_FIELDS = 196 + 4 + 6 + 1


def wflw_to_68(points: np.ndarray) -> np.ndarray:
    """(98, C) WFLW points -> (68, C) iBUG-68 points via :data:`WFLW98_TO_68`."""
    return map_to_68(points, WFLW98_TO_68)


def read_wflw(root: str | Path, images: str | Path | None = None) -> list[Sample]:
    """Read a WFLW list file, one sample per line.

    ``images``: folder the image paths are relative to; default the ``WFLW_images`` folder
    beside the ``WFLW_annotations`` folder holding ``root`` when there is one, else ``root``'s
    folder. ``raw_landmarks`` holds the 98 points, ``landmarks`` their 68 mapping, ``box`` the
    file's box and ``meta`` the six attributes (bool).
    """
    root = require(Path(root), "WFLW list file")
    images = Path(images) if images is not None else _default_images(root)
    samples = []
    for n, line in enumerate(root.read_text(errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != _N_FIELDS:
            raise FileError(root, f"line {n}: {len(fields)} fields, expected {_N_FIELDS} "
                                     "(196 coordinates, 4 box, 6 attributes, image name)")
        values = parse_floats(fields[:-1], root, f"line {n}")
        raw = values[:196].reshape(98, 2)
        meta = {name: bool(v) for name, v in zip(ATTRIBUTES, values[200:206])}
        samples.append(Sample(source="wflw", image_path=str(images / fields[-1]), box=values[196:200],
                              landmarks=wflw_to_68(raw), raw_landmarks=raw, meta=meta))
    if not samples:
        raise FileError(root, "no annotation lines")
    return samples


def _default_images(root: Path) -> Path:
    for parent in root.parents:
        if parent.name == "WFLW_annotations":
            return parent.parent / "WFLW_images"
    return root.parent
