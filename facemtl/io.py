"""Reading images safely: every failure names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Refuse decoding images larger than this many pixels (a 20000x20000 image would need 1.2 GB).
MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """An image could not be read; the message names the file and why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _header_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding the pixels, else None."""
    b = data.tobytes()[:1 << 16]
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


def to_bgr8(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert grey, BGRA and 16-bit images to uint8 BGR (H, W, 3)."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ImageError(name, f"unsupported image shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(name, f"unsupported image dtype {image.dtype}")
    return np.ascontiguousarray(image)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 BGR (H, W, 3).

    Grey, RGBA and 16-bit files are converted. Raises :class:`ImageError` for a missing,
    empty, non-image, corrupt or oversized file (checked from the header before decoding).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageError(path, "file is empty (0 bytes)")
    data = np.fromfile(str(path), dtype=np.uint8)
    size = _header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(path, f"image is {size[0]}x{size[1]}, more than {max_pixels} pixels")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(path, "not a readable image (corrupt or unsupported format)")
    return to_bgr8(image, str(path))
