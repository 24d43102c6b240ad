"""Helpers shared by the dataset readers: MATLAB files, number parsing, 68-point mappings.

Every failure raises :class:`~facemtl.data.sample.FileError` naming the file and the problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facemtl.data.sample import Sample
from facemtl.io import IMAGE_SUFFIXES, FileError

log = logging.getLogger("facemtl.data")



def load_mat(path: str | Path) -> dict[str, Any]:
    """Variables of a MATLAB ``.mat`` file as numpy arrays in MATLAB's (row, column) order.

    v4-v7.2 files are read with scipy; v7.3 (HDF5) files with h5py when it is installed
    (cell arrays become object arrays, char arrays ``str``, structs are skipped).
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileError(path, "file not found")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5)
        return _load_mat_v73(path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, zlib errors...
        raise FileError(path, f"not a readable .mat file ({type(e).__name__}: {e})") from e


def _load_mat_v73(path: Path) -> dict[str, Any]:
    try:
        import h5py
    except ImportError as e:
        raise FileError(path, "MATLAB v7.3 (HDF5) file: install h5py to read it") from e
    try:
        with h5py.File(path, "r") as f:
            # Structs (HDF5 groups) are not read: no reader needs one.
            return {k: _h5_value(f, v) for k, v in f.items() if isinstance(v, h5py.Dataset)}
    except (OSError, KeyError, ValueError) as e:
        raise FileError(path, f"not a readable MATLAB v7.3 file ({type(e).__name__}: {e})") from e


def _h5_value(f: Any, node: Any) -> Any:
    """One MATLAB v7.3 variable; HDF5 stores MATLAB arrays transposed."""
    cls = node.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    data = node[()]
    if cls == "cell":
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _h5_value(f, f[data[idx]])
        return out.T
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(data).T.ravel())
    return np.asarray(data).T


def mat_array(mat: Mapping[str, Any], key: str, path: str | Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``mat[key]`` as float64, checked for presence, numeric type and ``shape``.

    A vector shape ``(1, n)`` also accepts ``(n, 1)`` and ``(n,)`` (MATLAB writers differ).
    """
    if key not in mat:
        raise FileError(path, f"missing key {key!r} (has: {', '.join(k for k in mat if not k.startswith('__'))})")
    value = np.asarray(mat[key])
    if value.dtype.kind not in "biuf":
        raise FileError(path, f"{key!r} is not numeric (dtype {value.dtype})")
    value = value.astype(np.float64)
    if shape is not None:
        if len(shape) == 2 and shape[0] == 1 and value.size == shape[1] and value.ndim <= 2:
            value = value.reshape(shape)
        if value.shape != shape:
            raise FileError(path, f"{key!r} has shape {value.shape}, expected {shape}")
    return value


def mat_scalar(mat: Mapping[str, Any], key: str, path: str | Path) -> Any:
    """A scalar or string ``mat[key]``: ``str`` for char arrays, else a Python number."""
    value = mat[key]
    if isinstance(value, str):
        return value
    value = np.asarray(value)
    if value.dtype.kind == "U":
        return str(value.ravel()[0]) if value.size else ""
    if value.dtype.kind not in "biuf" or value.size != 1:
        raise FileError(path, f"{key!r} must be a number or a string, got {value.dtype} of shape {value.shape}")
    return value.item()


def parse_floats(tokens: Sequence[str], path: str | Path, where: str) -> np.ndarray:
    """Parse text numbers; the error names the file, ``where`` (e.g. ``"line 7"``) and the token."""
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise FileError(path, f"{where}: unparsable number {bad!r}") from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def map_to_68(points: np.ndarray, mapping: Mapping[int, int] | Sequence[int]) -> np.ndarray:
    """Place a dataset's points (K, C) onto the iBUG-68 slots, NaN where nothing maps.

    ``mapping`` is either a sequence of 68 source indices (entry ``i`` feeds iBUG point ``i``)
    or a dict ``{ibug_index: source_index}`` for the points that correspond.
    """
    pairs = mapping.items() if isinstance(mapping, Mapping) else enumerate(mapping)
    dst, src = (np.array(v, dtype=np.int64) for v in zip(*pairs))
    points = np.asarray(points, dtype=np.float64)
    out = np.full((68,) + points.shape[1:], np.nan)
    out[dst] = points[src]
    return out


def find_image(annotation: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES, folder: Path | None = None) -> Path:
    """The image with ``annotation``'s stem in ``folder`` (default: beside it), else FileError."""
    folder = annotation.parent if folder is None else folder
    for suffix in suffixes:
        candidate = folder / (annotation.stem + suffix)
        if candidate.is_file():
            return candidate
    raise FileError(annotation, f"no image {annotation.stem}{{{','.join(suffixes)}}} in {folder}")


def read_each(paths: Iterable[Path], read_one: Callable[[Path], Sample], skip_errors: bool) -> list[Sample]:
    """``read_one`` over ``paths``; with ``skip_errors`` a bad file is logged and skipped, not raised."""
    samples, n_bad = [], 0
    for path in paths:
        try:
            samples.append(read_one(path))
        except FileError as e:
            if not skip_errors:
                raise
            n_bad += 1
            log.warning("skipped %s", e)
    if n_bad:
        log.warning("skipped %d malformed file(s), kept %d", n_bad, len(samples))
    return samples


def require(path: Path, what: str, is_dir: bool = False) -> Path:
    """``path`` itself if it exists (as a folder when ``is_dir``), else FileError."""
    path = Path(path)
    if not (path.is_dir() if is_dir else path.exists()):
        raise FileError(path, f"{what} not found")
    return path
