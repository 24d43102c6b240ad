"""BIWI Kinect Head Pose database (``hpdb``): RGB frames with a head rotation and centre.

Layout: ``hpdb/NN/frame_XXXXX_rgb.png`` + ``frame_XXXXX_pose.txt`` (3x3 rotation, then the
head centre in mm in the depth camera's frame). The rotation goes through
:func:`facemtl.geometry.conventions.read_biwi_pose` into facemtl's frame, then
:func:`facemtl.geometry.rotations.matrix_to_euler` gives ``pose``. BIWI has no face boxes or
landmarks.
"""

from __future__ import annotations

from pathlib import Path

from facemtl.data._common import read_each, require
from facemtl.data.sample import DatasetError, Sample
from facemtl.geometry.conventions import read_biwi_pose
from facemtl.geometry.rotations import matrix_to_euler


def read_biwi(root: str | Path, skip_errors: bool = False) -> list[Sample]:
    """Read every ``frame_*_pose.txt`` under ``root`` (``hpdb`` or one subject folder).

    ``meta`` holds ``subject`` (the folder name, e.g. ``"01"``), ``frame`` (int) and
    ``translation_mm`` (3,). ``skip_errors``: log and skip malformed files instead of raising.
    """
    root = require(Path(root), "BIWI root folder", is_dir=True)
    paths = sorted(root.rglob("frame_*_pose.txt"))
    if not paths:
        raise DatasetError(root, "no frame_*_pose.txt files")
    return read_each(paths, _read_one, skip_errors)


def _read_one(path: Path) -> Sample:
    image = path.with_name(path.name.replace("_pose.txt", "_rgb.png"))
    if not image.is_file():
        raise DatasetError(path, f"no image {image.name} beside it")
    R, t = read_biwi_pose(path)
    frame = path.name[len("frame_"):-len("_pose.txt")]
    return Sample(source="biwi", image_path=str(image), pose=matrix_to_euler(R),
                  meta={"subject": path.parent.name, "frame": int(frame) if frame.isdigit() else frame,
                        "translation_mm": t})
