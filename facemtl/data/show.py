"""``facemtl data show``: a grid of dataset samples with their labels drawn on them.

Each tile is the square crop around the face (``box``, else the landmarks' box, with a margin;
the whole image when a sample has neither) resampled to ``size`` pixels, with the box (yellow;
other faces of the image white), the 68 landmarks (visible cyan, occluded magenta), the pose
axes at the nose tip
(Hopenet's Figure 1: red = head x, green = head y (down), blue = facing direction), and the
expression name and yaw/pitch/roll as text. Labels are drawn after resampling so that lines
stay thin on small faces (FER2013's 48 pixels) and visible on large ones.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.data.sample import Sample

# Crop side = CROP_SCALE x the face box's longer side: room for the pose axes.
CROP_SCALE = 1.6
NOSE_TIP = 30  # iBUG-68 index
# Landmark colours (BGR) apart from the axes' red, green and blue and the box's yellow.
VISIBLE, OCCLUDED = (255, 255, 0), (255, 0, 255)  # cyan, magenta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (see facemtl.data.registry.DATASETS), e.g. aflw2000")
    parser.add_argument("root", help="dataset folder or file, as the dataset's reader expects")
    parser.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    parser.add_argument("--out", default="grid.png", help="output PNG (default grid.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pick (default 0)")
    parser.add_argument("--cols", type=int, default=4, help="tiles per row (default 4)")
    parser.add_argument("--size", type=int, default=256, help="tile side in pixels (default 256)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option, repeatable, e.g. --option split=test")
    parser.add_argument("--no-labels", action="store_true", help="draw the crops only")


def run(args: argparse.Namespace) -> int:
    import cv2

    from facemtl.data.registry import load_dataset
    from facemtl.io import FileError

    if args.n < 1 or args.cols < 1 or args.size < 16:
        return _fail("--n and --cols must be >= 1 and --size >= 16")
    try:
        options = dict(_parse_option(text) for text in args.option)
        if not Path(args.root).exists():
            raise FileError(args.root, "dataset root not found")
        samples = load_dataset(args.dataset, args.root, **options)
        if not samples:
            raise FileError(args.root, f"no {args.dataset} samples found")
        grid = render_grid(samples, n=args.n, seed=args.seed, cols=args.cols, size=args.size,
                           labels=not args.no_labels)
    except KeyError as e:  # unknown dataset name
        return _fail(e.args[0])
    except (ValueError, FileError, FileError) as e:
        return _fail(str(e))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid):
        return _fail(f"{out}: could not write the image")
    print(f"{out}: {min(args.n, len(samples))} of {len(samples)} {args.dataset} samples, "
          f"{grid.shape[1]}x{grid.shape[0]} pixels")
    return 0


def render_grid(samples: Sequence[Sample], n: int = 8, seed: int = 0, cols: int = 4, size: int = 256,
                labels: bool = True) -> np.ndarray:
    """Pick ``n`` samples at random (``seed``) and tile them, ``cols`` per row, into a BGR image.

    Returns uint8 (rows * size, min(cols, n) * size, 3); unused cells of the last row are black.
    """
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(samples), size=min(n, len(samples)), replace=False)
    cols = min(cols, len(picked))
    rows = -(-len(picked) // cols)
    grid = np.zeros((rows * size, cols * size, 3), np.uint8)
    for k, index in enumerate(picked):
        r, c = divmod(k, cols)
        grid[r * size:(r + 1) * size, c * size:(c + 1) * size] = render_tile(samples[index], size, labels)
    return grid


def render_tile(sample: Sample, size: int = 256, labels: bool = True) -> np.ndarray:
    """The sample's face crop, ``size`` x ``size`` BGR uint8, with its labels drawn if ``labels``."""
    from facemtl.contract import apply_affine, crop_face, landmark_box

    image = sample.load_image()
    has_landmarks = sample.landmarks is not None and np.isfinite(sample.landmarks).any()
    if sample.box is not None:
        tile, m = crop_face(image, sample.box, CROP_SCALE, size)
    elif has_landmarks:
        tile, m = crop_face(image, landmark_box(sample.landmarks), CROP_SCALE, size)
    else:  # pixel edges of the whole image map onto the tile's edges
        h, w = image.shape[:2]
        tile, m = crop_face(image, np.array([-0.5, -0.5, w - 0.5, h - 0.5]), 1.0, size)
    if not labels:
        return tile
    from facemtl.geometry.draw import WHITE, YELLOW, draw_axes, draw_box, draw_landmarks

    def to_tile(points: np.ndarray) -> np.ndarray:
        return apply_affine(np.asarray(points, dtype=np.float64), m)

    box = None if sample.box is None else to_tile(np.reshape(sample.box, (2, 2))).ravel()
    if sample.boxes is not None:  # every face of the image, the sample's own box on top
        for other in to_tile(np.reshape(sample.boxes, (-1, 2, 2))):
            draw_box(tile, other.ravel(), WHITE)
    if box is not None:
        draw_box(tile, box, YELLOW)
    landmarks = to_tile(sample.landmarks) if has_landmarks else None
    if landmarks is not None:
        draw_landmarks(tile, landmarks, sample.visibility, VISIBLE, OCCLUDED)
    if sample.pose is not None:
        draw_axes(tile, sample.rotation, _axes_center(landmarks, box, size), size / 4)
    _draw_text(tile, _caption(sample))
    return tile


def _axes_center(landmarks: Optional[np.ndarray], box: Optional[np.ndarray], size: int) -> np.ndarray:
    """The nose tip if annotated, else the box centre, else the tile centre (tile pixels)."""
    if landmarks is not None and np.isfinite(landmarks[NOSE_TIP]).all():
        return landmarks[NOSE_TIP]
    if box is not None:
        return (box[:2] + box[2:]) / 2
    return np.full(2, (size - 1) / 2)


def _caption(sample: Sample) -> list[str]:
    lines = []
    if sample.expression is not None:
        lines.append(EXPRESSIONS[sample.expression])
    if sample.pose is not None:
        yaw, pitch, roll = sample.pose
        lines.append(f"y {yaw:+.0f} p {pitch:+.0f} r {roll:+.0f}")
    return lines


def _draw_text(tile: np.ndarray, lines: list[str]) -> None:
    """Write ``lines`` at the tile's bottom left, white on a dark band for legibility."""
    import cv2

    if not lines:
        return
    size = tile.shape[0]
    scale = 0.5 * size / 256
    thickness = max(1, round(size / 256))
    line_height = round(20 * size / 256)
    top = size - line_height * len(lines) - 4
    tile[top:] = tile[top:] // 3
    for i, line in enumerate(lines):
        y = top + line_height * (i + 1) - round(5 * size / 256)
        cv2.putText(tile, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _parse_option(text: str) -> tuple[str, Any]:
    """``"split=test"`` -> ``("split", "test")``; Python literals (``True``, ``3``, ``None``) are parsed."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"--option {text!r}: expected KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _fail(message: str) -> int:
    print(f"facemtl data show: error: {message}", file=sys.stderr)
    return 2
