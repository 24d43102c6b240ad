"""The one sample schema every dataset reader yields.

Conventions (shared by the whole package):

* Images are ``uint8`` BGR arrays of shape (H, W, 3), as OpenCV reads them.
* Pixel coordinates: x to the right, y down, in the dataset's own sub-pixel convention
  (readers apply no half-pixel shifts; 1-based Matlab formats are converted to 0-based).
* ``box`` is ``[x1, y1, x2, y2]`` in pixels.
* ``pose`` is ``[yaw, pitch, roll]`` in **degrees** in the 300W-LP / AFLW2000-3D
  ``Pose_Para`` convention (see :mod:`facemtl.geometry.rotations`): positive yaw turns the
  nose to the image's left, positive pitch lifts the nose up, positive roll turns the face
  clockwise on screen. ``rotation`` is the matching head-to-camera matrix.
* ``landmarks`` is (68, 2) in iBUG-68 order. Datasets with another scheme map what they can
  onto the 68 points and leave the others ``NaN``; their own points stay in ``raw_landmarks``.
* ``visibility`` is (68,) with 1 = visible, 0 = occluded/self-occluded, ``NaN`` = unknown.
* ``expression`` indexes :data:`facemtl.contract.EXPRESSIONS`.

Every label is optional: ``None`` means the dataset does not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from facemtl.io import FileError


@dataclass
class Sample:
    """One face (or one image for detection data) with whatever labels its dataset has."""

    source: str  # dataset name, e.g. "aflw2000"
    image_path: Optional[str] = None
    image: Optional[np.ndarray] = None  # BGR uint8, in-memory datasets (FER2013); may be a read-only view
    box: Optional[np.ndarray] = None  # (4,) x1, y1, x2, y2
    pose: Optional[np.ndarray] = None  # (3,) yaw, pitch, roll in degrees
    landmarks: Optional[np.ndarray] = None  # (68, 2), NaN rows where not annotated
    landmarks_3d: Optional[np.ndarray] = None  # (68, 3)
    visibility: Optional[np.ndarray] = None  # (68,) 1 visible, 0 hidden, NaN unknown
    expression: Optional[int] = None  # index into facemtl.contract.EXPRESSIONS
    boxes: Optional[np.ndarray] = None  # (N, 4) all faces of an image (detection datasets)
    raw_landmarks: Optional[np.ndarray] = None  # (K, 2) the dataset's own points
    meta: dict[str, Any] = field(default_factory=dict)  # dataset-specific extras

    @property
    def rotation(self) -> Optional[np.ndarray]:
        """Head-to-camera rotation matrix (3, 3) for ``pose``, or ``None``."""
        if self.pose is None:
            return None
        from facemtl.geometry.rotations import euler_to_matrix

        return euler_to_matrix(self.pose)

    def load_image(self) -> np.ndarray:
        """Return the BGR uint8 image, reading ``image_path`` if needed."""
        if self.image is not None:
            return self.image
        if self.image_path is None:
            raise FileError(self.source, "sample has neither an image nor an image path")
        from facemtl.io import read_image

        return read_image(self.image_path)
