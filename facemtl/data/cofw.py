"""COFW (29 points with occlusion flags): the original ``.mat`` files and the 29 -> 68 map.

``COFW_test.mat`` / ``COFW_train.mat`` (and the ``*_color.mat`` versions, MATLAB v7.3) hold
``IsT`` / ``IsTr`` (cell of images, grey or RGB), ``phisT`` / ``phisTr`` (N x 87:
29 x, 29 y, 29 occlusion flags with 1 = occluded) and ``bboxesT`` / ``bboxesTr``
(N x 4 ``x, y, w, h``). The images live in the file, so samples carry ``image`` (BGR).
Coordinates are MATLAB 1-based and converted to 0-based.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.data._common import load_mat, map_to_68, mat_array, require
from facemtl.data.sample import Sample
from facemtl.io import FileError, to_bgr8

# Point order of COFW (Burgos-Artizzu et al. 2013), read off the mmpose COFW samples with
# mmpose's flip pairs; "left" is the image's left.
COFW29_NAMES: tuple[str, ...] = (
    "left brow outer", "right brow outer", "left brow inner", "right brow inner",
    "left brow top", "left brow bottom", "right brow top", "right brow bottom",
    "left eye outer", "right eye outer", "left eye inner", "right eye inner",
    "left eye top", "left eye bottom", "right eye top", "right eye bottom",
    "left pupil", "right pupil", "left nostril wing", "right nostril wing",
    "nose tip", "nose base", "mouth left", "mouth right",
    "upper lip top", "upper lip bottom", "lower lip top", "lower lip bottom", "chin",
)
# iBUG-68 index <- COFW index where the points are the same landmark: brow ends and brow top
# middles (iBUG brows run along the upper edge), eye corners, nose tip and base, mouth corners,
# the four lip midpoints and the chin. Left out: mid-lids and pupils (iBUG has two points
# per lid, none at the pupil) and nostril wings (above iBUG 31/35).
COFW29_TO_68: dict[int, int] = {
    17: 0, 26: 1, 21: 2, 22: 3, 19: 4, 24: 6,
    36: 8, 45: 9, 39: 10, 42: 11,
    30: 20, 33: 21, 48: 22, 54: 23, 51: 24, 62: 25, 66: 26, 57: 27, 8: 28,
}
_KEYS = (("IsT", "phisT", "bboxesT"), ("IsTr", "phisTr", "bboxesTr"))


def read_cofw(root: str | Path) -> list[Sample]:
    """Read a COFW ``.mat`` file (test or train split, whichever it holds).

    ``raw_landmarks`` (29, 2), ``landmarks`` via :data:`COFW29_TO_68`, ``visibility`` =
    1 - occlusion flag on the mapped points (NaN elsewhere), ``box`` from the file's box,
    ``meta["occluded"]`` the 29 flags and ``meta["index"]`` the row.
    """
    root = require(Path(root), "COFW .mat file")
    mat = load_mat(root)
    keys = next((k for k in _KEYS if k[1] in mat), None)
    if keys is None:
        raise FileError(root, "missing key 'phisT' (test) or 'phisTr' (train)")
    images_key, phis_key, boxes_key = keys
    phis = mat_array(mat, phis_key, root)
    if phis.ndim != 2 or phis.shape[1] != 87:
        raise FileError(root, f"{phis_key!r} has shape {phis.shape}, expected (N, 87)")
    n = len(phis)
    boxes = mat_array(mat, boxes_key, root, (n, 4))
    if images_key not in mat:
        raise FileError(root, f"missing key {images_key!r}")
    images = np.asarray(mat[images_key], dtype=object).ravel()
    if len(images) != n:
        raise FileError(root, f"{images_key!r} has {len(images)} images but {phis_key!r} has {n} rows")
    samples = []
    for i in range(n):
        raw = np.stack([phis[i, :29], phis[i, 29:58]], axis=-1) - 1.0
        occluded = phis[i, 58:] > 0.5
        visible = (~occluded).astype(np.float64)[:, None]
        x, y, w, h = boxes[i]
        samples.append(Sample(source="cofw", image=_image(images[i], root, i),
                              box=np.array([x - 1, y - 1, x - 1 + w, y - 1 + h]),
                              landmarks=map_to_68(raw, COFW29_TO_68), raw_landmarks=raw,
                              visibility=map_to_68(visible, COFW29_TO_68)[:, 0],
                              meta={"occluded": occluded, "index": i}))
    return samples


def _image(value: object, path: Path, i: int) -> np.ndarray:
    image = np.asarray(value)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[..., ::-1]  # MATLAB images are RGB
    try:
        return to_bgr8(np.ascontiguousarray(image), f"{path} image {i + 1}")
    except FileError as e:
        raise FileError(path, f"image {i + 1}: {e.problem}") from e
