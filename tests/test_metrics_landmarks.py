import numpy as np
import pytest

from facemtl.metrics.landmarks import auc, ced_curve, failure_rate, nme, normaliser

# Point k at (k, 0) for even k and (k, 10) for odd k. Hand-computed normalisers:
#   inter-ocular: 36 = (36, 0), 45 = (45, 10) -> sqrt(81 + 100) = sqrt(181)
#   inter-pupil: eye centroids (38.5, 5) and (44.5, 5) -> 6
#   bbox of the points: x 0..67, y 0..10 -> sqrt(67 * 10); diagonal sqrt(67^2 + 10^2)
K = np.arange(68.0)
GT = np.stack([K, 10.0 * (K % 2)], axis=-1)[None]


def test_normalisers_by_hand():
    assert normaliser(GT, "inter_ocular")[0] == pytest.approx(np.sqrt(181))
    assert normaliser(GT, "inter_pupil")[0] == pytest.approx(6.0)
    assert normaliser(GT, "bbox")[0] == pytest.approx(np.sqrt(670))
    assert normaliser(GT, "diagonal")[0] == pytest.approx(np.sqrt(67**2 + 100))
    box = np.array([[0.0, 0, 20, 5]])
    assert normaliser(GT, "bbox", box)[0] == pytest.approx(10.0)
    assert normaliser(GT, "diagonal", box)[0] == pytest.approx(np.sqrt(425))
    with pytest.raises(ValueError, match="unknown norm"):
        normaliser(GT, "face")


def test_nme_constant_offset():
    pred = GT + [3.0, 4.0]  # every point 5 px off
    for norm, scale in [("inter_ocular", np.sqrt(181)), ("inter_pupil", 6.0), ("bbox", np.sqrt(670))]:
        assert nme(pred, GT, norm)[0] == pytest.approx(5 / scale)


def test_nme_excludes_nan_and_occluded_points():
    pred = GT.copy()
    pred[0, :34] += [3.0, 4.0]  # first half 5 px off, second half exact -> mean 2.5 px
    assert nme(pred, GT, "inter_pupil")[0] == pytest.approx(2.5 / 6)
    visible = np.ones((1, 68))
    visible[0, :34] = 0
    assert nme(pred, GT, "inter_pupil", visible=visible)[0] == pytest.approx(0.0)
    visible[0, :34] = np.nan  # unknown visibility is scored
    assert nme(pred, GT, "inter_pupil", visible=visible)[0] == pytest.approx(2.5 / 6)
    # A NaN ground-truth point is not scored, whatever its prediction (NaN included).
    gt = GT.copy()
    gt[0, :2] = np.nan
    pred[0, :2] = np.nan
    assert nme(pred, gt, "inter_pupil")[0] == pytest.approx(32 * 5 / 66 / 6)


def test_nme_unscorable_samples_are_nan():
    gt = np.concatenate([GT, GT, np.full_like(GT, np.nan)])
    gt[1, 36] = np.nan  # outer corner missing: no inter-ocular, the bbox still works
    pred = np.nan_to_num(gt + 1.0)
    e = nme(pred, gt, "inter_ocular")
    assert np.isfinite(e[0]) and np.isnan(e[1]) and np.isnan(e[2])
    assert np.isfinite(nme(pred, gt, "bbox")[1])


def test_nme_errors():
    with pytest.raises(ValueError, match="empty"):
        nme(np.zeros((0, 68, 2)), np.zeros((0, 68, 2)))
    with pytest.raises(ValueError, match="shape"):
        nme(GT, GT[:, :67])
    with pytest.raises(ValueError, match="68"):
        nme(GT[:, :20], GT[:, :20], "inter_ocular")
    with pytest.raises(ValueError, match="finite"):
        nme(np.full_like(GT, np.nan), GT)
    with pytest.raises(ValueError, match="zero"):
        nme(GT, GT, "bbox", boxes=np.array([[0.0, 0, 0, 5]]))


def test_ced_auc_failure_by_hand():
    # Fraction of errors <= t: an error of exactly 0 counts at t = 0.
    t, f = ced_curve([0.0, 0.015, 0.045, 0.2], max_error=0.1, steps=10)
    np.testing.assert_allclose(t, np.linspace(0, 0.1, 11))
    np.testing.assert_allclose(f, [0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75])
    # Areas under the CED up to 0.1, per error: 0.1 - e clipped at 0 -> (0.1, 0.05, 0) / 0.1 / 3 = 0.5.
    assert auc([0.0, 0.05, 0.2], 0.1) == pytest.approx(0.5)
    # 0.1 itself is not a failure: 2 of 4 are above.
    assert failure_rate([0.05, 0.1, 0.15, 0.3], 0.1) == 0.5


def test_auc_matches_integrated_ced():
    errors = np.random.default_rng(0).gamma(2.0, 0.02, size=500)
    t, f = ced_curve(errors, 0.08, steps=20000)
    assert auc(errors, 0.08) == pytest.approx(np.trapezoid(f, t) / 0.08, abs=1e-4)


def test_error_summaries_reject_empty_and_nan():
    for fn in (ced_curve, auc, failure_rate):
        with pytest.raises(ValueError, match="empty"):
            fn([])
        with pytest.raises(ValueError, match="NaN"):
            fn([0.1, np.nan])
