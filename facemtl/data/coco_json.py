"""COCO-style keypoint JSON as mmpose writes its face datasets (300W, 300VW, 300W-LP, WFLW,
COFW, AFLW, LaPa).

``images[]`` (``id``, ``file_name``, ``width``, ``height``) and ``annotations[]``
(``image_id``, ``keypoints`` = [x, y, v] * K, optional ``bbox`` = [x, y, w, h]). One sample
per annotation. The point scheme is recognised from K and mapped onto iBUG-68:

====  ==========  ==================================================
K     scheme      68 mapping
====  ==========  ==================================================
68    ibug68      identity
98    wflw98      :data:`facemtl.data.wflw.WFLW98_TO_68`
29    cofw29      :data:`facemtl.data.cofw.COFW29_TO_68` (partial)
21    aflw21      :data:`facemtl.data.aflw.AFLW21_TO_68` (partial)
19    aflw19      :data:`facemtl.data.aflw.AFLW19_TO_68` (partial)
106   lapa106     none: ``landmarks`` is None, the points stay in ``raw_landmarks``
====  ==========  ==================================================

Visibility follows COCO where the file uses ``v = 2``: 2 visible, 1 labelled but occluded
(COFW), 0 not labelled (NaN point). Files that only use 0/1 (mmpose's 300W, AFLW, WFLW) say
nothing about occlusion, so ``visibility`` is NaN there.

mmpose copies coordinates unchanged from the original annotations, so 300W / 300VW json keep
the iBUG 1-based values (checked: the 300VW json equals its ``.pts`` files); pass
``one_based=True`` for those.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facemtl.contract import landmark_box
from facemtl.data._common import map_to_68, require
from facemtl.data.aflw import AFLW19_TO_68, AFLW21_TO_68
from facemtl.data.cofw import COFW29_TO_68
from facemtl.data.sample import Sample
from facemtl.data.wflw import WFLW98_TO_68
from facemtl.io import FileError

SCHEMES: dict[int, tuple[str, Mapping[int, int] | Sequence[int] | None]] = {
    68: ("ibug68", range(68)),
    98: ("wflw98", WFLW98_TO_68),
    29: ("cofw29", COFW29_TO_68),
    21: ("aflw21", AFLW21_TO_68),
    19: ("aflw19", AFLW19_TO_68),
    106: ("lapa106", None),
}


def read_coco_json(root: str | Path, images: str | Path | None = None, one_based: bool = False) -> list[Sample]:
    """Read one COCO-style JSON file (``root``).

    ``images``: folder ``file_name`` is relative to (default: the JSON's folder).
    ``one_based``: subtract 1 from x and y (see the module docstring). ``box`` is ``bbox`` as
    ``x1, y1, x2, y2``, or the tight box of the labelled points when there is no ``bbox``.
    ``raw_landmarks`` holds the K points unless they are the 68 themselves. ``meta`` holds
    ``scheme``, ``image_id``, ``annotation_id`` and ``raw_visibility`` (K,).
    """
    root = require(Path(root), "COCO json file")
    images = Path(images) if images is not None else root.parent
    try:
        data = json.loads(root.read_text())
        files = {im["id"]: im["file_name"] for im in data["images"]}
        annotations = data["annotations"]
    except json.JSONDecodeError as e:
        raise FileError(root, f"invalid JSON: {e}") from e
    except (UnicodeDecodeError, OSError) as e:
        raise FileError(root, f"not a readable text file ({e})") from e
    except (KeyError, TypeError) as e:
        raise FileError(root, f"not a COCO keypoint file: missing {e}") from e
    parsed = [_keypoints(ann, n, files, root) for n, ann in enumerate(annotations)]
    uses_occlusion = any((kps[:, 2] == 2).any() for _, kps, _ in parsed)
    samples = []
    for n, (ann, kps, file_name) in enumerate(parsed):
        labelled = kps[:, 2] > 0
        raw = np.where(labelled[:, None], kps[:, :2] - (1.0 if one_based else 0.0), np.nan)
        if uses_occlusion:
            visible = np.where(labelled, (kps[:, 2] == 2).astype(np.float64), np.nan)
        else:
            visible = np.full(len(kps), np.nan)
        scheme, mapping = SCHEMES.get(len(kps), (f"{len(kps)}pt", None))
        sample = Sample(source="coco-json", image_path=str(images / file_name),
                        raw_landmarks=None if scheme == "ibug68" else raw,
                        meta={"scheme": scheme, "image_id": ann["image_id"], "annotation_id": ann.get("id"),
                              "raw_visibility": visible})
        if mapping is not None:
            sample.landmarks = map_to_68(raw, mapping)
            sample.visibility = map_to_68(visible[:, None], mapping)[:, 0]
        if "bbox" in ann:
            sample.box = _box(ann["bbox"], one_based, root, f"annotation {n}")
        elif labelled.any():
            sample.box = landmark_box(raw)
        samples.append(sample)
    return samples


def _keypoints(ann: object, n: int, files: dict, path: Path) -> tuple[dict, np.ndarray, str]:
    """(annotation, keypoints (K, 3), image file name) of annotation ``n``, checked."""
    if not isinstance(ann, dict):
        raise FileError(path, f"annotation {n} is not an object")
    where = f"annotation {n} (id {ann.get('id')})"
    try:
        kps = np.asarray(ann["keypoints"], dtype=np.float64)
        file_name = files[ann["image_id"]]
    except KeyError as e:
        raise FileError(path, f"{where}: missing or unknown {e}") from e
    except (TypeError, ValueError) as e:
        raise FileError(path, f"{where}: non-numeric keypoints ({e})") from e
    if kps.ndim != 1 or len(kps) % 3 or len(kps) == 0:
        raise FileError(path, f"{where}: {kps.size} keypoint values, expected a multiple of 3")
    return ann, kps.reshape(-1, 3), file_name


def _box(bbox: object, one_based: bool, path: Path, where: str) -> np.ndarray:
    try:
        x, y, w, h = np.asarray(bbox, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise FileError(path, f"{where}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}") from e
    if one_based:
        x, y = x - 1, y - 1
    return np.array([x, y, x + w, y + h])
