"""Writing synthetic faces: ``NNNNNN.jpg`` + ``NNNNNN.mat`` (300W-LP / AFLW2000 layout) and ``.npz`` shards.

``.mat`` keys (MATLAB 5 format, read by :func:`facemtl.data.mat3ddfa.read_synth`):

* ``Pose_Para`` (1x7): pitch, yaw, roll (radians), tx, ty, tz (mm), scale (px/mm), see
  :mod:`facemtl.synth.labels`;
* ``pt2d_68`` (2x68) 0-based pixels; ``pt3d_68`` (3x68) camera frame mm (``pt2d_68`` is its
  projection with ``cam_K``); ``visible_68`` (1x68) 1/0;
* ``roi`` (1x4) ``x1, y1, x2, y2``: tight box of the 68 landmarks; ``face_box`` (1x4) box of
  the face surface (for detection);
* ``expr_weights`` (1x53) ICT blendshape weights (``expr_names`` gives their names);
  ``expr_class`` index into :data:`facemtl.contract.EXPRESSIONS`; ``identity`` id;
* ``cam_K`` (3x3) intrinsics, ``cam_R`` (3x3) head-to-camera rotation, ``cam_t`` (1x3) mm.

Scene images (several faces) store the same keys with a leading face axis (``Pose_Para``
Nx7, ``pt2d_68`` Nx2x68, ...) plus ``n_faces``.

Files are byte-identical for identical content: the ``.mat`` header carries no date and the
``.npz`` members carry a fixed timestamp.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facemtl.synth.labels import FaceLabels

JPEG_QUALITY = 95
# MATLAB 5 header text (116 bytes), without scipy's creation date.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by facemtl.synth".ljust(116, b" ")


def mat_dict(labels: FaceLabels, expr_names: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The ``.mat`` fields of one face (see the module docstring)."""
    d = {
        "Pose_Para": labels.pose_para[None, :],
        "pt2d_68": labels.landmarks.T.copy(),
        "pt3d_68": labels.landmarks_3d.T.copy(),
        "visible_68": labels.visibility[None, :].astype(np.float64),
        "roi": labels.box[None, :],
        "face_box": labels.face_box[None, :],
        "expr_weights": labels.expr_weights[None, :],
        "expr_class": np.array([[labels.expr_class]], dtype=np.float64),
        "identity": np.array([[labels.identity]], dtype=np.float64),
        "cam_K": labels.camera,
        "cam_R": labels.rotation,
        "cam_t": labels.translation[None, :],
    }
    if len(expr_names):
        d["expr_names"] = np.array(list(expr_names), dtype=object)
    return d


def _scene_dict(faces: Sequence[FaceLabels], expr_names: Sequence[str]) -> dict[str, np.ndarray]:
    per = [mat_dict(f) for f in faces]
    d = {k: np.stack([p[k][0] if p[k].shape[0] == 1 else p[k] for p in per]) for k in per[0]}
    d["n_faces"] = np.array([[len(faces)]], dtype=np.float64)
    if len(expr_names):
        d["expr_names"] = np.array(list(expr_names), dtype=object)
    return d


def mat_bytes(fields: dict[str, np.ndarray]) -> bytes:
    """MATLAB 5 bytes of ``fields``, deterministic (no date in the header)."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, fields, do_compression=False, oned_as="row")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER
    return bytes(data)


def write_face(out_dir: str | Path, name: str, image: np.ndarray, labels: FaceLabels | Sequence[FaceLabels],
               expr_names: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``name.jpg`` (quality 95) and ``name.mat``; a list of labels writes a scene file."""
    out_dir = Path(out_dir)
    jpg, mat = out_dir / f"{name}.jpg", out_dir / f"{name}.mat"
    ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"{jpg}: JPEG encoding failed")
    jpg.write_bytes(enc.tobytes())
    fields = mat_dict(labels, expr_names) if isinstance(labels, FaceLabels) else _scene_dict(labels, expr_names)
    mat.write_bytes(mat_bytes(fields))
    return jpg, mat


def shard_arrays(images: Sequence[np.ndarray], labels: Sequence[FaceLabels]) -> dict[str, np.ndarray]:
    """Stacked arrays of a training shard: uint8 BGR images and every label, N first.

    ``images`` (N, H, W, 3) uint8; ``pose`` (N, 3) yaw, pitch, roll deg; ``rotation`` (N, 3, 3);
    ``translation`` (N, 3); ``camera`` (N, 3, 3); ``landmarks`` (N, 68, 2); ``landmarks_3d``
    (N, 68, 3); ``visibility`` (N, 68) uint8; ``box``, ``face_box`` (N, 4); ``expr_weights``
    (N, 53); ``expr_class`` (N,) int8; ``identity`` (N,) int64. Float labels are float32.
    """
    f32 = lambda key: np.stack([getattr(lab, key) for lab in labels]).astype(np.float32)  # noqa: E731
    return {
        "images": np.stack(images).astype(np.uint8),
        "pose": f32("pose"),
        "rotation": f32("rotation"),
        "translation": f32("translation"),
        "camera": f32("camera"),
        "landmarks": f32("landmarks"),
        "landmarks_3d": f32("landmarks_3d"),
        "visibility": np.stack([lab.visibility for lab in labels]).astype(np.uint8),
        "box": f32("box"),
        "face_box": f32("face_box"),
        "expr_weights": f32("expr_weights"),
        "expr_class": np.array([lab.expr_class for lab in labels], dtype=np.int8),
        "identity": np.array([lab.identity for lab in labels], dtype=np.int64),
    }


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """An uncompressed ``.npz`` (readable by ``np.load``) with fixed member timestamps."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(value), allow_pickle=False)
    return path
