import numpy as np

from facemtl.data.sample import Sample
from facemtl.data.transforms import Augment
from facemtl.train.data import ExpressionArraySource, MixedDataset, SampleSource, make_example


def _face(rng):
    image = rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)
    landmarks = rng.uniform([60, 50], [180, 170], (68, 2))
    return image, landmarks


def test_make_example_encodes_landmarks_in_normalised_crop_coords():
    rng = np.random.default_rng(0)
    image, lm = _face(rng)
    box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
    ex = make_example(image, 64, 1.0, rng, None, box, pose=np.array([10.0, 5, -3]), landmarks=lm,
                      visibility=np.ones(68))
    # crop_scale 1 and a square-ish box: the extreme landmarks touch the crop's edges on the long side
    side = max(box[2] - box[0], box[3] - box[1])
    assert ex["image"].shape == (3, 64, 64) and ex["image"].dtype == np.float32
    assert np.isclose(ex["landmarks"][:, 0].max() - ex["landmarks"][:, 0].min(), (box[2] - box[0]) / side)
    assert ex["pose_mask"] == 1 and ex["expression_mask"] == 0 and ex["landmarks_mask"].sum() == 68


def test_flip_mirrors_labels():
    rng = np.random.default_rng(1)
    image, lm = _face(rng)
    box = np.array([60.0, 50, 180, 170])
    flip_always = Augment(box_jitter=0, flip=1.0, low_res=0, blur=0, color=0)
    plain = make_example(image, 64, 1.2, np.random.default_rng(2), None, box, pose=np.array([20.0, 5, 7]),
                         landmarks=lm)
    flipped = make_example(image, 64, 1.2, np.random.default_rng(2), flip_always, box,
                           pose=np.array([20.0, 5, 7]), landmarks=lm)
    np.testing.assert_allclose(flipped["pose"], [-20, 5, -7])
    np.testing.assert_allclose(flipped["image"], plain["image"][:, :, ::-1])
    np.testing.assert_allclose(flipped["landmarks"][45, 0], 1 - plain["landmarks"][36, 0], atol=1e-6)


def test_partial_labels_are_masked():
    rng = np.random.default_rng(3)
    image, lm = _face(rng)
    lm[17:27] = np.nan  # a dataset without eyebrows
    ex = SampleSource([Sample("x", image=image, landmarks=lm)], 32, 1.5, None).example(0, rng)
    assert ex["landmarks_mask"].sum() == 58 and ex["landmarks_mask"][20] == 0 and ex["pose_mask"] == 0


def test_mixed_dataset_is_reproducible_and_mixes():
    rng = np.random.default_rng(4)
    image, lm = _face(rng)
    faces = SampleSource([Sample("x", image=image, landmarks=lm, pose=np.zeros(3))], 32, 1.5, Augment())
    expr = ExpressionArraySource(rng.integers(0, 255, (10, 48, 48), dtype=np.uint8), np.arange(10) % 7, 32, 1.5,
                                 Augment())
    ds = MixedDataset([faces, expr], [1, 1], length=40, seed=7)
    a = [ds[i] for i in range(40)]
    b = [ds[i] for i in range(40)]
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    kinds = {(float(x["pose_mask"]), float(x["expression_mask"])) for x in a}
    assert kinds == {(1.0, 0.0), (0.0, 1.0)}
    ds.set_epoch(1)
    assert not np.array_equal(ds[0]["image"], a[0]["image"])


def test_sample_source_keeps_only_the_chosen_labels():
    rng = np.random.default_rng(5)
    image, lm = _face(rng)
    s = Sample("x", image=image, landmarks=lm, pose=np.array([10.0, 0, 0]), expression=3)
    ex = SampleSource([s], 32, 1.5, None, labels=["pose", "landmarks"]).example(0, rng)
    assert ex["pose_mask"] == 1 and ex["landmarks_mask"].sum() == 68 and ex["expression_mask"] == 0
