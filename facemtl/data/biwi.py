"""BIWI Kinect Head Pose database (``hpdb``): RGB frames with a head rotation and centre.

Layout: ``hpdb/NN/frame_XXXXX_rgb.png`` + ``frame_XXXXX_pose.txt`` (3x3 rotation, then the
head centre in mm in the depth camera's frame). The rotation goes through
:func:`read_biwi_pose` into facemtl's frame, then
:func:`facemtl.geometry.rotations.matrix_to_euler` gives ``pose``. BIWI has no face boxes or
landmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.data._common import read_each, require
from facemtl.data.sample import Sample
from facemtl.geometry.conventions import from_biwi
from facemtl.geometry.rotations import matrix_to_euler
from facemtl.io import FileError


def read_biwi(root: str | Path, skip_errors: bool = False) -> list[Sample]:
    """Read every ``frame_*_pose.txt`` under ``root`` (``hpdb`` or one subject folder).

    ``meta`` holds ``subject`` (the folder name, e.g. ``"01"``), ``frame`` (int) and
    ``translation_mm`` (3,). ``skip_errors``: log and skip malformed files instead of raising.
    """
    root = require(Path(root), "BIWI root folder", is_dir=True)
    paths = sorted(root.rglob("frame_*_pose.txt"))
    if not paths:
        raise FileError(root, "no frame_*_pose.txt files")
    return read_each(paths, _read_one, skip_errors)


def _read_one(path: Path) -> Sample:
    image = path.with_name(path.name.replace("_pose.txt", "_rgb.png"))
    if not image.is_file():
        raise FileError(path, f"no image {image.name} beside it")
    R, t = read_biwi_pose(path)
    frame = path.name[len("frame_"):-len("_pose.txt")]
    return Sample(source="biwi", image_path=str(image), pose=matrix_to_euler(R),
                  meta={"subject": path.parent.name, "frame": int(frame) if frame.isdigit() else frame,
                        "translation_mm": t})


def read_biwi_pose(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a BIWI ``*_pose.txt``: returns (facemtl ``R`` (3, 3), head centre (3,) in mm).

    The file holds the 3x3 rotation (three rows) then, after a blank line, the head centre in the
    depth camera's frame (mm). Raises :class:`~facemtl.data.sample.FileError` naming the file.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise FileError(path, f"cannot read BIWI pose file ({e.strerror or e})") from e
    try:
        values = np.array([float(v) for v in text.split()])
    except ValueError as e:
        raise FileError(path, f"BIWI pose file has a non-numeric entry ({e})") from e
    if values.size != 12:
        raise FileError(path, f"BIWI pose file should hold 12 numbers (3x3 rotation + centre), found {values.size}")
    M = values[:9].reshape(3, 3)
    if not np.allclose(M @ M.T, np.eye(3), atol=1e-3) or np.linalg.det(M) < 0:
        raise FileError(path, "BIWI pose file's 3x3 matrix is not a rotation")
    return from_biwi(M), values[9:]
