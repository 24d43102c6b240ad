"""The BFM landmark fit (pose labels in the Pose_Para frame), holdout splits and ``facemtl profile``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemtl.data.sample import Sample
from facemtl.data.splits import holdout
from facemtl.geometry.rotations import euler_to_matrix, geodesic_distance
from facemtl.synth.bfm import BFM68, fit_bfm, weak_project
from test_rotations import affine_camera_rotation, procrustes_rotation


def toy_bfm(seed: int = 0) -> BFM68:
    """A face-like 68-point model with random bases (generated; no shared data needed)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    # An elliptic, curved "face": depth grows toward the rim, a nose-like bump in the middle.
    mean = np.c_[70 * np.cos(t) * np.linspace(0.3, 1, 68), 90 * np.sin(t), 40 * np.cos(3 * t)]
    mean[27:36, 2] -= 30
    return BFM68(mean=mean, shape_basis=rng.normal(0, 2, (68, 3, 40)), expr_basis=rng.normal(0, 1, (68, 3, 10)),
                 shape_mean=np.zeros(40), shape_std=np.ones(40), expr_mean=np.zeros(10), expr_std=np.ones(10))


@pytest.mark.parametrize("ypr", [(0, 0, 0), (35, -20, 10), (-60, 15, -25)])
def test_fit_recovers_pose_of_exact_projections(ypr):
    model = toy_bfm()
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.5, 40), rng.normal(0, 0.5, 10)
    R = euler_to_matrix(np.array(ypr, dtype=float))
    q = weak_project(model.landmarks(a, b), R, 1.3, np.array([120.0, 140.0]))
    fit = fit_bfm(q, model, sigma=1.0)
    assert geodesic_distance(fit.rotation, R) < 1.0
    assert abs(fit.scale - 1.3) < 0.05
    assert np.nanmax(fit.errors) < 1.0


def test_fit_with_contour_uses_the_slid_jaw():
    """Generated: jaw points drawn where a contour model puts them (offsets growing with yaw, as a
    silhouette does). The fit with that model recovers the pose; the fixed-jaw fit reads it off."""
    from facemtl.geometry.rotations import matrix_to_euler

    class Slide:  # the contour model's interface: offsets (68, 3) mm for a rotation
        def offsets(self, rotation):
            out = np.zeros((68, 3))
            out[:17, 0] = 40.0 * np.sin(np.radians(matrix_to_euler(rotation)[0]))
            return out

    model = toy_bfm()
    R = euler_to_matrix(np.array([35.0, 5.0, 0.0]))
    q = weak_project(model.mean + Slide().offsets(R), R, 1.0, np.zeros(2))
    assert geodesic_distance(fit_bfm(q, model, sigma=1.0, contour=Slide()).rotation, R) < 1.0
    assert geodesic_distance(fit_bfm(q, model, sigma=1.0).rotation, R) > 2.0


def test_fit_ignores_missing_points_and_rejects_too_few():
    model = toy_bfm()
    R = euler_to_matrix(np.array([20.0, 10.0, -5.0]))
    q = weak_project(model.mean, R, 1.0, np.zeros(2))
    q[:20] = np.nan
    fit = fit_bfm(q, model, sigma=1.0)
    assert geodesic_distance(fit.rotation, R) < 2.0
    assert np.isnan(fit.errors[:20]).all() and np.isfinite(fit.errors[20:]).all()
    q[:60] = np.nan
    with pytest.raises(ValueError, match="at least 10"):
        fit_bfm(q, model)


def test_fit_on_aflw2000_model_vertices_matches_pose_para(shared: Path):
    """The real BFM fitted to AFLW2000-3D's own projected 68 vertices gives back ``Pose_Para``
    (the frame check of the labels; measurement only, nothing is tuned on this set)."""
    from facemtl.data.registry import load_dataset

    model = BFM68.load(shared / "facemodels" / "bfm")
    samples = [s for s in load_dataset("aflw2000", shared / "data" / "aflw2000-dev") if np.abs(s.pose).max() < 60][:12]
    err = np.array([fit_bfm(s.landmarks, model).pose - s.pose for s in samples])
    assert np.abs(err).mean() < 1.5
    assert np.abs(err.mean(0)).max() < 1.0  # no frame offset in any angle


def test_contour_march_offsets_zero_when_frontal(face_model):
    """The jaw keeps the BFM's own vertices on a frontal face (any pitch and roll) and slides on a
    turned one; only the sliding contour points move."""
    from facemtl.synth.bfm import ContourMarch
    from facemtl.synth.fit import SLIDING

    march = ContourMarch.load(face_model)
    np.testing.assert_array_equal(march.offsets(euler_to_matrix(np.array([0.0, 12.0, -6.0]))), 0.0)
    turned = march.offsets(euler_to_matrix(np.array([40.0, 5.0, 0.0])))
    still = np.setdiff1d(np.arange(68), SLIDING)
    assert np.abs(turned[still]).max() == 0 and np.linalg.norm(turned[SLIDING], axis=1).max() > 3  # mm


def test_jaw_marching_fits_turned_300w_photos_better(shared: Path, face_model):
    """Real annotations: on the afw photos whose manual points are clearly turned (nose tip far off
    the middle of the jaw), the fit with jaw marching leaves a smaller residual on the 51 inner
    points (which marching does not move) and reads a larger |yaw| than the fixed-vertex fit."""
    from facemtl.data.registry import load_dataset
    from facemtl.synth.bfm import ContourMarch

    bfm, march = BFM68.load(shared / "facemodels" / "bfm"), ContourMarch.load(face_model)
    turned = []
    for s in load_dataset("300w", shared / "data" / "300w" / "afw"):
        q = s.landmarks
        if q is not None and np.isfinite(q).all():
            off_middle = abs((q[30, 0] - q[0, 0]) / (q[16, 0] - q[0, 0]) - 0.5)
            turned += [q] if off_middle > 0.2 else []
    assert len(turned) >= 15
    fixed = [fit_bfm(q, bfm) for q in turned[:15]]
    slid = [fit_bfm(q, bfm, contour=march) for q in turned[:15]]
    inner = lambda fits: np.mean([np.nanmean(f.errors[17:]) / f.scale for f in fits])  # noqa: E731  mm
    assert inner(slid) < 0.95 * inner(fixed)
    assert np.mean([abs(b.pose[0]) - abs(a.pose[0]) for a, b in zip(fixed, slid)]) > 1.5


def test_bfm_load_names_missing_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="bfm_mean68.npy"):
        BFM68.load(tmp_path)


def test_holdout_is_disjoint_complete_and_order_free():
    samples = [Sample(source="x", image_path=f"/data/{i:04d}.jpg") for i in range(50)]
    val, train = holdout(samples, "val", 10), holdout(samples, "train", 10)
    names = lambda ss: {s.image_path for s in ss}  # noqa: E731
    assert len(val) == 10 and len(train) == 40 and not names(val) & names(train)
    # The same faces wherever the folder lies and whatever the order.
    moved = [Sample(source="x", image_path=f"/elsewhere/{i:04d}.jpg") for i in reversed(range(50))]
    assert {Path(p).name for p in names(holdout(moved, "val", 10))} == {Path(p).name for p in names(val)}
    with pytest.raises(ValueError):
        holdout(samples, "test", 10)


def _changed_about_the_head(new: np.ndarray, old: np.ndarray, face_box: np.ndarray, grow: float,
                            level: int) -> tuple[int, int]:
    """Pixels of ``new`` that differ from ``old`` by more than ``level``: how many lie within the face
    box grown by ``grow`` of its size on every side, and how many in all."""
    moved = np.abs(new.astype(int) - old).max(-1) > level
    corners = face_box.reshape(2, 2)
    (cx, cy), (w, h) = corners.mean(0), corners[1] - corners[0]
    x0, y0 = int(max(cx - grow * w, 0)), int(max(cy - grow * h, 0))
    return int(moved[y0:int(cy + grow * h), x0:int(cx + grow * w)].sum()), int(moved.sum())


def test_profile_views_turn_photo_and_labels(shared: Path, face_model):
    """A real 300-W photo turned: view 0 keeps the manual points; every view's label rotation
    differs from the photo's by the turn the image shows, seen along the ray through the face (what a
    weak-perspective fit of the turned head's projection reads), not by the camera-frame turn."""
    from facemtl.data.registry import load_dataset
    from facemtl.synth.fit import contour_candidates
    from facemtl.synth.lp import profile_views

    sample = load_dataset("300w", shared / "data" / "300w" / "afw")[1]
    bfm = BFM68.load(shared / "facemodels" / "bfm")
    views = profile_views(sample, np.random.default_rng(0), 3, 160, face_model, bfm, contour_candidates(face_model))
    assert sorted(views) == [0, 1, 2, 3]
    image0, lab0 = views[0]
    s = 160 / max(sample.load_image().shape[:2])
    np.testing.assert_allclose(lab0.landmarks, (sample.landmarks + 0.5) * s - 0.5, atol=1e-9)
    for image, lab in views.values():
        assert image.shape[:2] == image0.shape[:2] and image.dtype == np.uint8
        assert np.isfinite(lab.landmarks).all() and np.isfinite(lab.pose).all()
        np.testing.assert_allclose(euler_to_matrix(lab.pose), lab.rotation, atol=1e-9)
    # The turned views' landmarks lie on the image, and the poses differ from the photo's.
    turned = np.array([views[v][1].pose for v in (1, 2, 3)])
    assert (np.abs(turned[:, 0] - lab0.pose[0]) > 1).any()
    # The label's turn is the one the image shows: the affine-camera (weak-perspective) rotation of
    # the turned head's inner points (17-67 do not slide), projected by the fit's camera, relative to
    # view 0's. That estimate carries perspective's own 1-2 deg, so the test asks for the label to be
    # well closer to it than the camera-frame turn of the head (the label before, 4-7 deg off here).
    inner = slice(17, 68)
    cam0 = lab0.landmarks_3d[inner]

    def seen(lab):
        cam = lab.landmarks_3d[inner]
        return affine_camera_rotation(cam0, cam[:, :2] / cam[:, 2:] * lab.camera[0, 0])

    for v in (1, 2, 3):
        lab = views[v][1]
        shown = seen(lab) @ seen(lab0).T
        camera_turn = procrustes_rotation(cam0, lab.landmarks_3d[inner])
        assert geodesic_distance(shown, np.eye(3)) > 10
        error = geodesic_distance(shown, lab.rotation @ lab0.rotation.T)
        assert error < 3.0 and error < 0.7 * geodesic_distance(shown, camera_turn), (v, lab.pose, lab0.pose)
    # Skipped views are drawn but not made: the others are the same views.
    some = profile_views(sample, np.random.default_rng(0), 3, 160, face_model, bfm, skip={0, 1})
    assert sorted(some) == [2, 3]
    np.testing.assert_array_equal(some[3][0], views[3][0])
    np.testing.assert_array_equal(some[3][1].pose, views[3][1].pose)
    for v in (1, 2, 3):
        lab = views[v][1]
        assert (lab.landmarks > -5).all() and (lab.landmarks < 165).all()
    # Jaw marching changes the labels only: the same images and points, every view's rotation
    # moved by the one change of the photo's own fit.
    marched = profile_views(sample, np.random.default_rng(0), 3, 160, face_model, bfm, jaw_marching=True)
    change = views[0][1].rotation.T @ marched[0][1].rotation
    assert geodesic_distance(change, np.eye(3)) > 0.05
    for v in (0, 1, 2, 3):
        np.testing.assert_array_equal(marched[v][0], views[v][0])
        np.testing.assert_array_equal(marched[v][1].landmarks, views[v][1].landmarks)
        np.testing.assert_allclose(marched[v][1].rotation, views[v][1].rotation @ change, atol=1e-9)
    # Soft seams, and head content on top of them, change the turned images only, and only on and
    # about the head: the labels and the photo itself are the same. Soft seams: within the face box
    # grown to twice its size (ears, neck and skull are skin too); head content: 1.5 times more on
    # each side (the skull is drawn now).
    soft = profile_views(sample, np.random.default_rng(0), 3, 160, face_model, bfm, soft_seams=True)
    full = profile_views(sample, np.random.default_rng(0), 3, 160, face_model, bfm, soft_seams=True, head_content=True)
    for new, old, grow, level, least in ((soft, views, 1.0, 0, 1), (full, soft, 1.5, 8, 100)):
        np.testing.assert_array_equal(new[0][0], views[0][0])
        for v in (1, 2, 3):
            np.testing.assert_array_equal(new[v][1].pose, old[v][1].pose)
            np.testing.assert_array_equal(new[v][1].landmarks, old[v][1].landmarks)
            head, moved = _changed_about_the_head(new[v][0], old[v][0], new[v][1].face_box, grow, level)
            assert moved >= least and head > 0.97 * moved, (head, moved)


def test_profile_command_writes_train_and_val(shared: Path, tmp_path: Path):
    """``facemtl profile`` on two photos: one held out; a re-run skips what is written, and more
    views add the missing ones (the views a fresh run makes)."""
    import shutil

    from facemtl.cli import main
    from facemtl.data.registry import load_dataset

    src = tmp_path / "helen-train"
    src.mkdir()
    for name in ("100032540_1",):
        for ext in (".jpg", ".pts"):
            shutil.copy(shared / "data" / "300w" / "helen-train" / f"{name}{ext}", src)
    other = tmp_path / "afw"
    other.mkdir()
    for ext in (".jpg", ".pts"):
        shutil.copy(shared / "data" / "300w" / "afw" / f"1051618982_1{ext}", other)
    out = tmp_path / "lp"
    args = ["profile", str(other), str(src), "--out", str(out), "--views", "2", "--size", "128",
            "--holdout", "helen-train:1", "--workers", "1", "--bfm", str(shared / "facemodels" / "bfm")]
    assert main(args) == 0
    train, val = load_dataset("synth", out / "train"), load_dataset("synth", out / "val")
    assert len(train) == 3 and len(val) == 3
    stamp = (out / "train" / "00000_00.mat").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "train" / "00000_00.mat").stat().st_mtime_ns == stamp
    # Fewer views with the same seed are the first views of this set: read_synth(max_view=N).
    fewer = tmp_path / "lp1"
    fewer_args = [str(fewer) if a == str(out) else "1" if a == "2" else a for a in args]
    assert main(fewer_args) == 0
    small, cut = load_dataset("synth", fewer / "train"), load_dataset("synth", out / "train", max_view=1)
    assert [Path(s.image_path).name for s in small] == [Path(s.image_path).name for s in cut] != []
    np.testing.assert_array_equal([s.pose for s in small], [s.pose for s in cut])
    # Extending the one-view set to two views: view 2 appears, equal to the two-view set's, and
    # the views written before are left as they are.
    stamp = (fewer / "train" / "00000_01.mat").stat().st_mtime_ns
    more = list(fewer_args)
    more[more.index("--views") + 1] = "2"
    assert main(more) == 0
    assert (fewer / "train" / "00000_01.mat").stat().st_mtime_ns == stamp
    grown = load_dataset("synth", fewer / "train")
    assert [Path(s.image_path).name for s in grown] == [Path(s.image_path).name for s in train]
    np.testing.assert_array_equal([s.pose for s in grown], [s.pose for s in train])
    # A set is never extended with another labeller's poses.
    assert main(more + ["--views", "3", "--jaw-marching"]) == 2
    assert main(more + ["--views", "3", "--soft-seams"]) == 2
    assert main(more + ["--views", "3", "--head-content"]) == 2
    assert not (fewer / "train" / "00000_03.mat").exists()
