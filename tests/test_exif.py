"""EXIF orientation (issue 13.1): a phone photo stored sideways is read, analysed and reported upright."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.io import read_image


def with_orientation(jpeg: bytes, orientation: int, big_endian: bool = False) -> bytes:
    """``jpeg`` with a minimal EXIF APP1 segment (IFD0 holding only the Orientation tag) after SOI."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    image = cv2.imread(str(shared / "data" / "photos" / "img1.jpg"))
    assert image is not None and image.shape[0] != image.shape[1]
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("big_endian", [False, True])
def test_read_image_applies_every_orientation_like_a_viewer(tmp_path, photo, orientation, big_endian):
    data = with_orientation(cv2.imencode(".jpg", photo)[1].tobytes(), orientation, big_endian)
    path = tmp_path / "tagged.jpg"
    path.write_bytes(data)
    ours = read_image(path)
    # OpenCV's imread (IMREAD_COLOR) applies EXIF the way viewers do: the reference.
    viewer = cv2.imread(str(path))
    assert ours.shape == viewer.shape
    assert np.array_equal(ours, viewer)
    if orientation >= 5:
        assert ours.shape[:2] == photo.shape[1::-1]


def test_predict_reports_the_upright_photo(tmp_path, photo):
    # Stored rotated a quarter turn anticlockwise, tagged 6 ("rotate 90 clockwise to display").
    stored = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)
    path = tmp_path / "phone.jpg"
    path.write_bytes(with_orientation(cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), 6))
    out = tmp_path / "out.json"
    subprocess.run([sys.executable, "-m", "facemtl.cli", "predict", str(path), "--json", str(out)], check=True,
                   capture_output=True)
    upright = json.loads(out.read_text())[0]
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    out2 = tmp_path / "plain.json"
    subprocess.run([sys.executable, "-m", "facemtl.cli", "predict", str(plain), "--json", str(out2)], check=True,
                   capture_output=True)
    reference = json.loads(out2.read_text())[0]
    assert (upright["width"], upright["height"]) == (photo.shape[1], photo.shape[0])
    assert len(reference["faces"]) >= 1
    assert len(upright["faces"]) == len(reference["faces"])
    a, b = np.array(upright["faces"][0]["box"]), np.array(reference["faces"][0]["box"])
    assert np.abs(a - b).max() < 0.05 * (b[2] - b[0])
