"""facemtl.geometry.resample: shrinking warps average like INTER_AREA and put pixels where the matrix says."""

import cv2
import numpy as np

from facemtl.geometry.resample import shrink_warp


def _scale(s: float) -> np.ndarray:
    return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])  # pixel edges to pixel edges


def test_shrink_warp_does_not_alias_and_keeps_positions():
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8)
    m = _scale(0.2)
    out = shrink_warp(noise, m, (128, 96)).astype(float)
    plain = cv2.warpAffine(noise, m, (128, 96), flags=cv2.INTER_LINEAR).astype(float)
    area = cv2.resize(noise, (128, 96), interpolation=cv2.INTER_AREA).astype(float)
    # A bilinear warp alone samples a few pixels per output pixel and keeps the noise; averaging
    # removes most of it, as INTER_AREA does.
    assert out.std() < 0.4 * plain.std() and np.abs(out - area).mean() < 8

    square = np.zeros((480, 640), np.uint8)
    square[200:240, 400:440] = 255  # centre (419.5, 219.5)
    for s in (0.2, 0.65, 1.5):
        size = (round(640 * s), round(480 * s))
        got = shrink_warp(square, _scale(s), size).astype(float)
        ys, xs = np.mgrid[:size[1], :size[0]]
        centre = np.array([(got * xs).sum(), (got * ys).sum()]) / got.sum()
        np.testing.assert_allclose(centre, _scale(s) @ [419.5, 219.5, 1.0], atol=0.05)


def test_area_resize_reads_as_inter_area_on_a_photo():
    from pathlib import Path

    from facemtl.geometry.resample import area_resize

    photo = cv2.imread(str(Path(__file__).parents[1] / "facemtl" / "assets" / "demo.jpg"))
    for side in (416, 250, 150):  # shrinking by 1.5x, 2.6x and more than 4x
        s = side / max(photo.shape[:2])
        size = (round(photo.shape[1] * s), round(photo.shape[0] * s))
        want = cv2.resize(photo, size, interpolation=cv2.INTER_AREA).astype(float)
        got = area_resize(photo, size)
        assert got.shape == want.shape
        bilinear = cv2.resize(photo, size, interpolation=cv2.INTER_LINEAR).astype(float)
        assert np.abs(got - want).mean() < min(0.6, np.abs(bilinear - want).mean())
    assert area_resize(photo, (800, 600)).shape == (600, 800, 3)  # enlarging: bilinear
