"""AFW (Annotated Faces in the Wild, Zhu & Ramanan 2012): ``anno.mat``.

``anno`` is an N x 4 cell array, one row per image: the image name, a cell of face boxes
(each 2x2 ``[x1 y1; x2 y2]``), a cell of poses (each 1x3 ``[yaw pitch roll]`` in degrees) and
a cell of landmarks (each 6x2: eye centres, nose tip, mouth corners and centre). The file may
be MATLAB v7.3 (HDF5; read with h5py). Coordinates are MATLAB 1-based, converted to 0-based.

The 6 points stay in ``raw_landmarks`` only (``landmarks`` is None): their order in the file
is not documented and no AFW file is under ``../shared`` to check it against. ``pose`` is
the file's ``[yaw, pitch, roll]`` as is; its sign convention was not checked against
facemtl's either (same reason).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.data._common import load_mat, require
from facemtl.data.sample import Sample
from facemtl.io import FileError


def read_afw(root: str | Path, images: str | Path | None = None) -> list[Sample]:
    """Read ``anno.mat`` (``root``), one sample per face, in file order.

    ``images``: folder of the image files (default: ``root``'s folder). ``meta`` holds
    ``face`` (index of the face in its image).
    """
    root = require(Path(root), "AFW anno.mat")
    images = Path(images) if images is not None else root.parent
    mat = load_mat(root)
    if "anno" not in mat:
        raise FileError(root, "missing key 'anno'")
    anno = np.asarray(mat["anno"], dtype=object)
    if anno.ndim != 2 or anno.shape[1] != 4:
        raise FileError(root, f"'anno' has shape {anno.shape}, expected (N, 4)")
    samples = []
    for i, (name, boxes, poses, points) in enumerate(anno):
        name = _string(name, root, i)
        boxes, poses, points = (np.asarray(c, dtype=object).ravel() for c in (boxes, poses, points))
        if not len(boxes) == len(poses) == len(points):
            raise FileError(root, f"row {i + 1} ({name}): {len(boxes)} boxes, {len(poses)} poses, "
                                     f"{len(points)} landmark sets")
        for face, (box, pose, pts) in enumerate(zip(boxes, poses, points)):
            where = f"row {i + 1} ({name}) face {face + 1}"
            samples.append(Sample(source="afw", image_path=str(images / name),
                                  box=_numbers(box, (2, 2), root, where + " box").ravel() - 1.0,
                                  pose=_numbers(pose, (3,), root, where + " pose"),
                                  raw_landmarks=_numbers(pts, (6, 2), root, where + " landmarks") - 1.0,
                                  meta={"face": face}))
    return samples


def _string(value: object, path: Path, i: int) -> str:
    if isinstance(value, str):
        return value
    value = np.asarray(value)
    if value.dtype.kind == "U" and value.size == 1:
        return str(value.ravel()[0])
    raise FileError(path, f"row {i + 1}: image name is not a string ({value.dtype}, shape {value.shape})")


def _numbers(value: object, shape: tuple[int, ...], path: Path, where: str) -> np.ndarray:
    value = np.asarray(value)
    if len(shape) == 1 and value.size == shape[0]:
        value = value.ravel()  # 1x3 or 3x1 alike
    if value.dtype.kind not in "biuf" or value.shape != shape:
        raise FileError(path, f"{where}: expected {shape} numbers, got {value.dtype} of shape {value.shape}")
    return value.astype(np.float64)
