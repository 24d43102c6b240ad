"""``facemtl data show`` on real samples: grid size, labels really drawn, pose axes direction, errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.data import show
from facemtl.data.sample import Sample


def _show(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    show.add_arguments(parser)
    return show.run(parser.parse_args([str(a) for a in argv]))


def _grids(tmp_path: Path, dataset: str, root: Path, *options: str) -> tuple[np.ndarray, np.ndarray]:
    """The grid with labels and the same grid without them."""
    labelled, plain = tmp_path / "labels.png", tmp_path / "plain.png"
    assert _show(dataset, root, "--out", labelled, *options) == 0
    assert _show(dataset, root, "--out", plain, "--no-labels", *options) == 0
    return cv2.imread(str(labelled)), cv2.imread(str(plain))


def _tiles(grid: np.ndarray, size: int) -> list[np.ndarray]:
    return [grid[r:r + size, c:c + size] for r in range(0, grid.shape[0], size) for c in range(0, grid.shape[1], size)]


def test_show_aflw2000(tmp_path: Path, aflw2000_dev: Path):
    labelled, plain = _grids(tmp_path, "aflw2000", aflw2000_dev, "--n", "5", "--cols", "3", "--size", "96")
    assert labelled.shape == plain.shape == (2 * 96, 3 * 96, 3)
    for k, (a, b) in enumerate(zip(_tiles(labelled, 96), _tiles(plain, 96))):
        changed = np.any(a != b, axis=2).mean()
        if k < 5:  # landmarks, axes and the pose text cover a good part of each tile
            assert changed > 0.05, k
        else:  # the unused cell stays black
            assert not a.any() and not b.any()
    # the crops are of faces, not black padding, and the pick depends on the seed
    assert plain[:96, :96].mean() > 30
    assert _show("aflw2000", aflw2000_dev, "--out", tmp_path / "seed1.png", "--n", "5", "--cols", "3",
                 "--size", "96", "--seed", "1") == 0
    assert not np.array_equal(cv2.imread(str(tmp_path / "seed1.png")), labelled)


def test_show_dlib_xml(tmp_path: Path, shared: Path):
    xml = shared / "data" / "format-samples" / "dlib-faces" / "training_with_face_landmarks.xml"
    labelled, plain = _grids(tmp_path, "dlib-xml", xml, "--n", "8", "--size", "64")
    assert labelled.shape == (2 * 64, 4 * 64, 3)
    for a, b in zip(_tiles(labelled, 64), _tiles(plain, 64)):
        assert np.any(a != b, axis=2).mean() > 0.03


def test_show_fer2013_whole_image_with_expression_text(tmp_path: Path, shared: Path):
    root = shared / "data" / "expression" / "fer2013"
    labelled, plain = _grids(tmp_path, "fer2013", root, "--option", "split=test", "--n", "3", "--size", "96")
    assert labelled.shape == (96, 3 * 96, 3)
    changed = np.any(labelled != plain, axis=2)
    # only the caption band at the bottom changes: no box, landmarks or pose in FER2013
    assert changed[-20:].mean() > 0.1 and not changed[:60].any()
    # the plain tile is the 48x48 face scaled 2x: grey, so all channels equal
    assert np.array_equal(plain[..., 0], plain[..., 2])


def _blue_red_green(tile: np.ndarray) -> list[np.ndarray]:
    """Mean (x, y) of the pure blue, red and green pixels of a tile drawn on grey."""
    b, g, r = (tile[..., i].astype(int) for i in range(3))
    masks = [(b > 150) & (g < 100) & (r < 100), (r > 150) & (g < 100) & (b < 100), (g > 150) & (r < 100) & (b < 100)]
    return [np.argwhere(mask)[:, ::-1].mean(axis=0) for mask in masks]


@pytest.mark.parametrize("pose, forward", [((40, 0, 0), "left"), ((-40, 0, 0), "right"),
                                           ((0, 40, 0), "up"), ((0, -40, 0), "down")])
def test_pose_axes_point_where_the_face_looks(pose, forward):
    # no box nor landmarks: the tile is the whole image and the axes start at its centre
    sample = Sample(source="test", image=np.full((200, 200, 3), 128, np.uint8), pose=np.array(pose, dtype=float))
    tile = show.render_tile(sample, size=200)
    blue, red, green = _blue_red_green(tile)
    center = np.array([99.5, 99.5])
    dx, dy = blue - center
    expected = {"left": dx < -10, "right": dx > 10, "up": dy < -10, "down": dy > 10}
    assert expected[forward], (blue, center)
    assert red[0] > center[0] + 5 and green[1] > center[1] + 5  # head x still to the right, y down


def test_errors_are_clear(tmp_path: Path, capsys):
    assert _show("no-such-set", tmp_path) == 2
    assert "unknown dataset 'no-such-set'; known:" in capsys.readouterr().err
    assert _show("ckplus", tmp_path) == 2  # empty folder
    assert f"{tmp_path}: no images" in capsys.readouterr().err
    assert _show("ckplus", tmp_path / "absent") == 2
    assert "absent: dataset root not found" in capsys.readouterr().err
    assert _show("ckplus", tmp_path, "--option", "split") == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
