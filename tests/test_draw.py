"""Drawing: pixels change where the labels are, in the documented colours and directions."""

from __future__ import annotations

import numpy as np
import pytest

from facemtl.geometry.draw import draw_axes, draw_box, draw_cube, draw_landmarks
from facemtl.geometry.rotations import euler_to_matrix


def _blank(size: int = 200) -> np.ndarray:
    return np.zeros((size, size, 3), np.uint8)


def _mask(image: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    """Pixels dominated by one channel of ``bgr`` (anti-aliased lines are not pure colours)."""
    k = int(np.argmax(bgr))
    others = [i for i in range(3) if i != k]
    return (image[..., k] > 100) & (image[..., others] < 60).all(axis=-1)


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(xs) > 0, "nothing drawn in that colour"
    return np.array([xs.mean(), ys.mean()])


def test_axes_frontal_point_right_down_and_blue_is_a_dot():
    image = _blank()
    out = draw_axes(image, np.zeros(3), (100.0, 100.0), 60)
    assert out is image
    red, green = _centroid(_mask(image, (0, 0, 255))), _centroid(_mask(image, (0, 255, 0)))
    assert red[0] > 120 and abs(red[1] - 100) < 3  # +x to the image right
    assert green[1] > 120 and abs(green[0] - 100) < 3  # +y down
    # the forward axis points at the viewer: it projects onto the centre only
    assert _mask(image, (255, 0, 0)).sum() < 20


@pytest.mark.parametrize("yaw", [60.0, -60.0])
def test_axes_yaw_blue_follows_the_nose(yaw):
    image = draw_axes(_blank(), np.array([yaw, 0.0, 0.0]), (100, 100), 60)
    blue = _centroid(_mask(image, (255, 0, 0)))
    # +yaw turns the nose to the image left (rotations.py), and blue is the nose direction
    assert (blue[0] < 90) if yaw > 0 else (blue[0] > 110)
    assert abs(blue[1] - 100) < 3


def test_axes_pitch_up_and_rotation_matrix_input():
    by_angles = draw_axes(_blank(), np.array([0.0, 40.0, 0.0]), (100, 100), 60)
    by_matrix = draw_axes(_blank(), euler_to_matrix(np.array([0.0, 40.0, 0.0])), (100, 100), 60)
    np.testing.assert_array_equal(by_angles, by_matrix)
    assert _centroid(_mask(by_angles, (255, 0, 0)))[1] < 90  # looking up: the nose axis points up


def test_axes_roll_clockwise_turns_red_down():
    image = draw_axes(_blank(), np.array([0.0, 0.0, 30.0]), (100, 100), 60)
    red = _centroid(_mask(image, (0, 0, 255)))
    assert red[0] > 110 and red[1] > 105  # clockwise on screen: the right-pointing axis dips


def test_landmarks_colours_visibility_and_nan():
    image = _blank()
    pts = np.array([[20.0, 20.0], [60.5, 60.5], [np.nan, np.nan], [150.0, 40.0]])
    draw_landmarks(image, pts, np.array([1.0, 0.0, 1.0, np.nan]), radius=3)
    assert _mask(image, (0, 255, 0))[20, 20] and _mask(image, (0, 255, 0))[40, 150]  # visible and unknown
    assert _mask(image, (0, 0, 255))[60:62, 60:62].any() and not _mask(image, (0, 255, 0))[55:66, 55:66].any()
    assert image[100:, :].sum() == 0  # nothing drawn for the NaN row
    with pytest.raises(ValueError, match="visibility"):
        draw_landmarks(image, pts, np.ones(3))


def test_box_edges_and_label():
    image = draw_box(_blank(), [40.2, 60.7, 160.4, 180.1], label="face 0.93")
    on_edge = _mask(image, (0, 255, 0))
    assert on_edge[120, 39:42].any() and on_edge[120, 159:162].any() and on_edge[180:182, 100].any()
    assert not image[100:140, 60:140].any()  # the inside stays untouched
    assert on_edge[40:60, 40:100].sum() > 50  # the filled label band above the box
    with pytest.raises(ValueError, match="uint8"):
        draw_box(np.zeros((10, 10, 3), np.float32), [1, 1, 5, 5])


def test_labels_stay_inside_the_image_and_off_each_other():
    image, taken = _blank(), []
    label = "happy 87% det 0.99"  # wider than each box, narrower than the image
    for box in ([20, 80, 60, 120], [64, 82, 104, 122], [170, 80, 199, 120]):  # neighbours, one at the edge
        draw_box(image, box, label=label, taken=taken)
    assert len(taken) == 3
    assert all(0 <= x1 and x2 < image.shape[1] and 0 <= y1 and y2 < image.shape[0] for x1, y1, x2, y2 in taken)
    for i in range(3):
        for j in range(i):
            a, b = taken[i], taken[j]
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_cube_front_square_follows_yaw():
    frontal = draw_cube(_blank(), np.zeros(3), (100, 100), 80)
    # frontal: front and back squares coincide, the green front drawn last covers the red back
    assert _mask(frontal, (0, 255, 0)).sum() > 100 and _mask(frontal, (0, 0, 255)).sum() < 20
    turned = draw_cube(_blank(), np.array([50.0, 0.0, 0.0]), (100, 100), 80)
    front, back = _centroid(_mask(turned, (0, 255, 0))), _centroid(_mask(turned, (0, 0, 255)))
    assert front[0] < back[0] - 10  # +yaw: the face side moves to the image left
    assert _mask(turned, (255, 0, 0)).sum() > 50  # the depth edges become visible


def test_a_large_face_label_is_no_wider_than_its_box():
    """A thick box's label shrinks to the box's width (it would cover the neighbours' faces), and a
    narrow box's stays at the readable minimum."""
    image, taken = np.zeros((600, 600, 3), np.uint8), []
    label = "happy 42% det 0.65 y+26 p+9 r+2"
    draw_box(image, [300, 300, 560, 560], label=label, thickness=3, taken=taken)
    draw_box(image, [20, 300, 60, 340], label=label, thickness=3, taken=taken)
    (wide, narrow) = [r[2] - r[0] for r in taken]
    assert wide <= 260 and wide > 200
    assert narrow > 150  # the readable minimum is wider than a 40 px box
