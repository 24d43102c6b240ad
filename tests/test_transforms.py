import cv2
import numpy as np
import pytest

from facemtl.contract import FLIP_68, apply_affine, crop_face, crop_matrix, invert_affine, landmark_box
from facemtl.data.transforms import Augment, flip_landmarks, flip_pose


def test_crop_maps_box_to_centre_and_edges():
    box = np.array([10.0, 20.0, 50.0, 40.0])  # 40 x 20, centre (30, 30)
    m = crop_matrix(box, crop_scale=1.0, size=80)  # side 40 -> scale 2
    pts = apply_affine(np.array([[30.0, 30.0], [10.0, 30.0], [50.0, 30.0]]), m)
    # centre -> (S-1)/2; the square spans x in [10, 50] -> crop edges -0.5 and 79.5
    np.testing.assert_allclose(pts, [[39.5, 39.5], [-0.5, 39.5], [79.5, 39.5]])


def test_crop_round_trip_and_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    # Box edges on pixel edges (index - 0.5): the crop is exactly pixels 40..99 x 30..89.
    box = np.array([39.5, 29.5, 99.5, 89.5])
    crop, m = crop_face(image, box, crop_scale=1.0, size=60)
    np.testing.assert_array_equal(crop, image[30:90, 40:100])
    pts = rng.uniform(0, 100, (68, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), invert_affine(m)), pts, atol=1e-9)


def test_strong_downscale_keeps_geometry():
    # A bright dot at a known place must land where the matrix says, even at 1/10 scale.
    image = np.zeros((1000, 1000, 3), np.uint8)
    cv2.circle(image, (700, 300), 25, (255, 255, 255), -1)
    crop, m = crop_face(image, np.array([0.0, 0.0, 999.0, 999.0]), 1.0, 100)
    expected = apply_affine(np.array([[700.0, 300.0]]), m)[0]
    ys, xs = np.nonzero(crop[..., 0] > 100)
    np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.6)


def test_crop_reads_only_the_covered_region_like_a_whole_image_crop():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    # Inside, across the border, outside, and one needing the anti-alias pre-shrink (scale < 0.5).
    boxes = ([100.3, 80.7, 112.1, 95.2], [-5.0, 250.0, 12.0, 290.0], [420.0, 10.0, 450.0, 40.0],
             [50.0, 40.0, 250.0, 260.0])
    for box in boxes:
        crop, m = crop_face(image, np.array(box), 1.5, 32)
        np.testing.assert_allclose(m, crop_matrix(np.array(box), 1.5, 32), atol=1e-12)
        if m[0, 0] >= 0.5:  # the plain warp of the whole image
            ref = cv2.warpAffine(image, m, (32, 32), flags=cv2.INTER_LINEAR, borderValue=0)
            np.testing.assert_array_equal(crop, ref)
        else:  # the whole image halved by 2x2 averaging until the warp shrinks by at most 2x, then warped
            small, to_small = image, m
            while to_small[0, 0] < 0.5:
                small = cv2.resize(small, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
                to_small = to_small @ np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
            ref = cv2.warpAffine(small, to_small, (32, 32), flags=cv2.INTER_LINEAR, borderValue=0)
            # The region starts on its own pixel, so its 2x2 blocks may pair pixels differently.
            assert np.abs(crop.astype(int) - ref.astype(int)).mean() < 1.0
    assert not crop_face(image, np.array(boxes[2]), 1.5, 32)[0].any()  # wholly outside: black
    with pytest.raises(ValueError, match="not finite"):
        crop_face(image, np.array([np.nan, 0, 10, 10]), 1.5, 32)


def test_strongly_shrunk_crops_do_not_alias():
    """One-pixel stripes seen from 3 to 20 times farther: box averaging first leaves flat grey,
    where a plain bilinear warp would sample the stripes into bands."""
    image = np.zeros((800, 800, 3), np.uint8)
    image[:, ::2] = 255
    for side in (100, 400, 700):
        box = np.array([400.0 - side / 2, 400 - side / 2, 400 + side / 2, 400 + side / 2])
        crop, _ = crop_face(image, box, 1.0, 32)
        assert abs(crop.mean() - 127.5) < 3 and crop.std() < 20, (side, crop.std())


def test_flip_permutation_is_an_involution_and_mirrors():
    assert sorted(FLIP_68) == list(range(68))
    np.testing.assert_array_equal(FLIP_68[FLIP_68], np.arange(68))
    assert FLIP_68[36] == 45 and FLIP_68[48] == 54 and FLIP_68[30] == 30 and FLIP_68[0] == 16
    pts = np.random.default_rng(1).uniform(0, 99, (68, 2))
    flipped = flip_landmarks(pts, 100)
    np.testing.assert_allclose(flipped[45], [99 - pts[36, 0], pts[36, 1]])
    np.testing.assert_allclose(flip_landmarks(flipped, 100), pts)
    np.testing.assert_allclose(flip_pose([30.0, 10.0, -5.0]), [-30.0, 10.0, 5.0])


def test_landmark_box_ignores_nan():
    pts = np.array([[1.0, 2.0], [np.nan, np.nan], [5.0, -1.0]])
    np.testing.assert_allclose(landmark_box(pts), [1, -1, 5, 2])


def test_augment_is_seeded_and_changes_pixels():
    image = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    aug = Augment(low_res=1.0, blur=1.0)
    a = aug.photometric(image, np.random.default_rng(5))
    b = aug.photometric(image, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == image.shape and a.dtype == np.uint8 and not np.array_equal(a, image)


def test_rotate_in_plane_turns_pixels_landmarks_and_roll_together():
    from facemtl.data.transforms import rotate_in_plane

    size, c = 65, 32.0
    crop = np.zeros((size, size, 3), np.uint8)
    pts = np.array([[c + 20, c], [c, c - 12]])
    for x, y in pts.astype(int):
        crop[y - 1:y + 2, x - 1:x + 2] = 255
    # Clockwise on screen by 90 deg: right of centre goes below it, above goes right.
    out, moved, pose = rotate_in_plane(crop, 90.0, pts, np.zeros(3))
    np.testing.assert_allclose(moved, [[c, c + 20], [c + 12, c]], atol=1e-9)
    for x, y in np.round(moved).astype(int):
        assert out[y, x].max() > 200  # the drawn dots moved where the labels say
    np.testing.assert_allclose(pose, [0, 0, 90], atol=1e-9)  # positive roll is clockwise
    # On a turned head the rotation composes about the camera axis, not by adding roll.
    _, _, pose = rotate_in_plane(crop, 30.0, None, np.array([40.0, 10.0, 0.0]))
    assert abs(pose[2] - 30) < 8 and abs(pose[0] - 40) > 1

