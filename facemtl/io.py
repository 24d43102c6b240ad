"""Files: reading images safely (every failure names the file and the problem), writing
atomically, and where the shared data lives."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

# File suffixes of the images OpenCV reads, most common first (readers try them in this order).
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".jp2")

# Refuse decoding images larger than this many pixels (a 20000x20000 image would need 1.2 GB).
MAX_PIXELS = 50_000_000


class FileError(ValueError):
    """A file is missing or bad (an image, a dataset's annotation, a model); the message names
    the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# Enough bytes to reach the size field of every format below (JPEG APP segments come first and
# are at most 64 KiB each).
_HEADER_BYTES = 1 << 20


def _header_size(b: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, GIF, WebP or TIFF file without
    decoding the pixels, else None."""
    le = lambda i, n: int.from_bytes(b[i:i + n], "little")  # noqa: E731
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(b[i + 7:i + 9], "big"), int.from_bytes(b[i + 5:i + 7], "big")
            i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
        return None
    if b[:2] == b"BM" and len(b) >= 26:
        if le(14, 4) == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return le(18, 2), le(20, 2)
        signed = lambda i: abs(int.from_bytes(b[i:i + 4], "little", signed=True))  # noqa: E731
        return signed(18), signed(22)  # the height is negative for top-down rows
    if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
        return le(6, 2), le(8, 2)
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        chunk = b[12:16]
        if chunk == b"VP8 ":
            return le(26, 2) & 0x3FFF, le(28, 2) & 0x3FFF
        if chunk == b"VP8L":
            bits = le(21, 4)
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return le(24, 3) + 1, le(27, 3) + 1
        return None
    if b[:4] in (b"II*\x00", b"MM\x00*"):
        order = "little" if b[:2] == b"II" else "big"
        u = lambda i, n: int.from_bytes(b[i:i + n], order)  # noqa: E731
        ifd = u(4, 4)
        if ifd + 2 > len(b):
            return None
        size = {}
        for k in range(u(ifd, 2)):
            e = ifd + 2 + 12 * k
            if e + 12 > len(b):
                break
            tag, kind = u(e, 2), u(e + 2, 2)
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                size[tag] = u(e + 8, 2) if kind == 3 else u(e + 8, 4)
        return (size[256], size[257]) if len(size) == 2 else None
    return None


def _exif_orientation(b: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG from its first bytes; 1 when absent or unreadable.

    ``cv2.imdecode(..., IMREAD_UNCHANGED)`` ignores it, so phone photos stored sideways would be
    analysed sideways (and detect no face)."""
    if b[:2] != b"\xff\xd8":
        return 1
    i = 2
    while i + 4 <= len(b) and b[i] == 0xFF:
        marker, length = b[i + 1], int.from_bytes(b[i + 2:i + 4], "big")
        if marker == 0xDA or length < 2:  # start of scan: no more metadata
            return 1
        tiff = i + 10  # after the marker, the length and "Exif\0\0"
        if marker == 0xE1 and b[i + 4:tiff] == b"Exif\x00\x00" and b[tiff:tiff + 2] in (b"II", b"MM"):
            order = "little" if b[tiff:tiff + 2] == b"II" else "big"
            u = lambda k, n: int.from_bytes(b[k:k + n], order)  # noqa: E731
            ifd = tiff + u(tiff + 4, 4)
            for e in range(ifd + 2, min(ifd + 2 + 12 * u(ifd, 2), len(b) - 11), 12):
                if u(e, 2) == 0x0112:  # Orientation, a SHORT
                    value = u(e + 8, 2)
                    return value if 1 <= value <= 8 else 1
            return 1
        i += 2 + length
    return 1


def _upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` as displayed for an EXIF ``orientation`` (2-8 flip and/or rotate; 1 is as stored)."""
    if orientation in (5, 7):
        image = cv2.transpose(image)
    steps = {2: lambda a: cv2.flip(a, 1), 3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
             4: lambda a: cv2.flip(a, 0), 6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
             7: lambda a: cv2.rotate(a, cv2.ROTATE_180), 8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE)}
    return steps[orientation](image) if orientation in steps else image


def to_bgr8(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert grey, BGRA and 16-bit images to uint8 BGR (H, W, 3)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise FileError(name, f"unsupported image shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FileError(name, f"unsupported image dtype {image.dtype}")
    return np.ascontiguousarray(image)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3).

    Grey, RGBA and 16-bit files are converted; a JPEG's EXIF orientation is applied, so the
    image (and its size) is the upright one a viewer shows. Raises :class:`FileError` for a missing,
    empty, non-image, corrupt or oversized file. The size is checked from the header (PNG,
    JPEG, BMP, GIF, WebP, TIFF) before the file is read whole or decoded, so a huge image
    costs no memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileError(path, "file not found")
    if path.stat().st_size == 0:
        raise FileError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
            size = _header_size(head)
            if size is not None and size[0] * size[1] > max_pixels:
                raise FileError(path, f"image is {size[0]}x{size[1]}, more than {max_pixels} pixels")
            data = np.frombuffer(head + f.read(), dtype=np.uint8)
    except OSError as e:
        raise FileError(path, f"cannot read file ({e.strerror or e})") from e
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # decoders assert on some malformed headers instead of returning None
        raise FileError(path, f"not a readable image ({str(e).strip().splitlines()[-1]})") from e
    if image is None:
        raise FileError(path, "not a readable image (corrupt or unsupported format)")
    return _upright(to_bgr8(image, str(path)), _exif_orientation(head))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash or an error mid-write leaves whatever was at ``path`` before intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shared_dir() -> Path:
    """The shared data folder (datasets, face models): ``$FACEMTL_SHARED``, else ``../shared``
    beside a source checkout.

    Library code takes its data paths as arguments and calls this only for a default; an
    installed package has no checkout, so there the variable (or the argument) is needed.
    """
    env = os.environ.get("FACEMTL_SHARED")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout.parent / "shared"
    raise FileNotFoundError("no shared data folder: set FACEMTL_SHARED or pass the data path")
