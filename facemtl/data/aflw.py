"""AFLW: ``aflw.sqlite`` (faces, boxes, poses, 21 points) and the AFLW-21/19 -> iBUG-68 maps.

Tables read (AFLW's schema): ``Faces(face_id, file_id)``, ``FaceImages(file_id, filepath)``,
``FaceRect(face_id, x, y, w, h)``, ``FacePose(face_id, roll, pitch, yaw)`` in radians,
``FeatureCoords(face_id, feature_id, x, y)`` with ``feature_id`` 1..21 in the order of
:data:`AFLW21_NAMES`, and ``FeatureCoordTypes(feature_id, code)`` when present to check that
order. Coordinates are used as stored (0-based pixels).

Pose: AFLW's angles come from POSIT on the 21 points with a mean 3D face. Yaw and pitch
have the 300W-LP signs and roll the opposite one: Hopenet (Ruiz et al. 2018), which trains on
300W-LP and tests on AFLW, negates only AFLW's roll ("Fix the roll in AFLW"). So
``pose = [yaw, pitch, -roll]`` in degrees; the stored angles stay in ``meta["aflw_pose"]``.
Not checked on a real ``aflw.sqlite`` (none under ``../shared``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np

from facemtl.data._common import map_to_68, require
from facemtl.data.sample import Sample
from facemtl.io import FileError

# AFLW feature codes, feature_id 1..21. "Left"/"right" are the viewer's: LBLC is the outer
# corner of the brow on the image's left.
AFLW21_NAMES: tuple[str, ...] = (
    "LBLC", "LBC", "LBRC", "RBLC", "RBC", "RBRC",  # brows: corners and centres
    "LELC", "LEC", "LERC", "RELC", "REC", "RERC",  # eyes: corners and centres
    "LE", "LN", "NC", "RN", "RE",  # left ear, nose left / centre (tip) / right, right ear
    "MLC", "MC", "MRC", "CC",  # mouth left corner / centre / right corner, chin centre
)
# iBUG-68 index <- AFLW-21 index for the points that correspond one to one: brow ends and
# centres, eye corners, nose tip, mouth corners, chin. Left out: eye centres and ears (no
# iBUG point), nose wings (the alar points lie 2x farther from iBUG 31/35 than the others from
# their match in the AFLW2000-3D fits) and the mouth centre (between iBUG 62 and 66).
# Measured on ../shared/data/aflw2000-dev: |pt2d - pt3d_68| / inter-ocular < 0.04 for each pair.
AFLW21_TO_68: dict[int, int] = {
    17: 0, 19: 1, 21: 2, 22: 3, 24: 4, 26: 5,
    36: 6, 39: 8, 42: 9, 45: 11,
    30: 14, 48: 17, 54: 19, 8: 20,
}
# AFLW-19 (Zhu et al. 2016, mmpose's AFLW): the 21 points without the two ears.
AFLW19_TO_21: tuple[int, ...] = tuple(i for i in range(21) if i not in (12, 16))
AFLW19_TO_68: dict[int, int] = {k: AFLW19_TO_21.index(v) for k, v in AFLW21_TO_68.items()}

_QUERY = """
SELECT f.face_id, i.filepath, r.x, r.y, r.w, r.h, p.roll, p.pitch, p.yaw
FROM Faces f JOIN FaceImages i ON i.file_id = f.file_id
LEFT JOIN FaceRect r ON r.face_id = f.face_id
LEFT JOIN FacePose p ON p.face_id = f.face_id
ORDER BY f.face_id
"""


def aflw_pose_to_ypr(roll_pitch_yaw: np.ndarray) -> np.ndarray:
    """AFLW ``(roll, pitch, yaw)`` radians (..., 3) -> facemtl ``[yaw, pitch, roll]`` degrees."""
    roll, pitch, yaw = np.moveaxis(np.rad2deg(np.asarray(roll_pitch_yaw, dtype=np.float64)), -1, 0)
    return np.stack([yaw, pitch, -roll], axis=-1)


def read_aflw(root: str | Path, images: str | Path | None = None) -> list[Sample]:
    """Read every face of ``aflw.sqlite`` (``root``), sorted by ``face_id``.

    ``images``: folder ``FaceImages.filepath`` is relative to (default: ``flickr`` beside the
    database). ``raw_landmarks`` is (21, 2) with NaN for points not annotated, ``landmarks``
    the :data:`AFLW21_TO_68` mapping, ``visibility`` 1 / 0 for annotated / unannotated mapped
    points (AFLW leaves out the points it cannot see) and NaN for the unmapped slots. ``box`` is
    ``FaceRect`` (None if absent), ``pose`` from ``FacePose`` (see the module docstring).
    ``meta`` holds ``face_id``.
    """
    root = require(Path(root), "AFLW database")
    images = Path(images) if images is not None else root.parent / "flickr"
    try:
        with closing(sqlite3.connect(root.resolve().as_uri() + "?mode=ro", uri=True)) as db:
            _check_feature_order(db, root)
            faces = db.execute(_QUERY).fetchall()
            coords = db.execute("SELECT face_id, feature_id, x, y FROM FeatureCoords").fetchall()
    except sqlite3.DatabaseError as e:
        raise FileError(root, f"not a readable AFLW database ({e})") from e
    points: dict[int, np.ndarray] = {}
    for face_id, feature_id, x, y in coords:
        if not 1 <= feature_id <= 21:
            raise FileError(root, f"FeatureCoords: face {face_id} has feature_id {feature_id}, expected 1..21")
        points.setdefault(face_id, np.full((21, 2), np.nan))[feature_id - 1] = (x, y)
    samples = []
    for face_id, filepath, x, y, w, h, roll, pitch, yaw in faces:
        raw = points.get(face_id, np.full((21, 2), np.nan))
        sample = Sample(source="aflw", image_path=str(images / filepath), raw_landmarks=raw,
                        landmarks=map_to_68(raw, AFLW21_TO_68), meta={"face_id": face_id})
        annotated = (~np.isnan(raw[:, :1])).astype(np.float64)  # AFLW annotates visible points only
        sample.visibility = map_to_68(annotated, AFLW21_TO_68)[:, 0]
        if None not in (x, y, w, h):
            sample.box = np.array([x, y, x + w, y + h], dtype=np.float64)
        if None not in (roll, pitch, yaw):
            sample.meta["aflw_pose"] = np.array([roll, pitch, yaw], dtype=np.float64)
            sample.pose = aflw_pose_to_ypr(sample.meta["aflw_pose"])
        samples.append(sample)
    if not samples:
        raise FileError(root, "no faces (tables Faces/FaceImages are empty)")
    return samples


def _check_feature_order(db: sqlite3.Connection, root: Path) -> None:
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = {"Faces", "FaceImages", "FaceRect", "FacePose", "FeatureCoords"} - tables
    if missing:
        raise FileError(root, f"missing table(s) {', '.join(sorted(missing))}")
    if "FeatureCoordTypes" not in tables:
        return
    for feature_id, code in db.execute("SELECT feature_id, code FROM FeatureCoordTypes"):
        if 1 <= feature_id <= 21 and code != AFLW21_NAMES[feature_id - 1]:
            raise FileError(root, f"FeatureCoordTypes: feature_id {feature_id} is {code!r}, "
                                     f"expected {AFLW21_NAMES[feature_id - 1]!r}")
