"""Detector training canvases and MOS's online data feedback.

A canvas is a square ``spec.input_size`` image with its faces (landmark box, five points,
pose, an ignore flag, and the *kinds* each face is: small, turned, dark, blurred, occluded),
turned into per-anchor targets by :func:`facemtl.train.detection.targets.build_targets`.

Sources (each ``example(rng, focus)``):

* :class:`SceneSource`: rendered multi-face scenes read from a ``facemtl synth --scene``
  folder (exact boxes, landmarks, pose; crowds, occlusion by nearer heads), zoomed, shifted and
  mirrored at random onto the canvas. Faces the scene marks as hardly visible are ignored.
* :class:`CompositeSource`: real faces with 68 landmarks (300-W crops, LFW with its shipped
  pseudo-landmarks) cut out with a feathered ellipse and pasted onto real or procedural
  backgrounds at many scales and positions (LFW's burned-in drawings inpainted first), 0 to
  ``max_faces`` per canvas (0: a face-free negative); or a whole real photo scaled onto the
  canvas (real context around its face); or a mosaic, a grid of head-and-shoulders cuts of the
  photos (small faces with their real context, which a pasted face lacks).

Data feedback: every example is asked for with a *focus*, one of ``KINDS`` or ``None``; the
source then makes its faces of that kind (shrinks them, picks turned ones, darkens, blurs or
occludes them). The batch sampler draws the focus per example from the loss module's running
miss rates (:class:`facemtl.train.detection.loss.DetectionLoss`), so the kinds the model misses
more are sampled more (:func:`focus_probabilities`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from facemtl.contract import FLIP_68, apply_affine, crop_face, landmark_box
from facemtl.data.sample import Sample
from facemtl.data.transforms import Augment, flip_pose
from facemtl.geometry.anchors import AnchorSpec, five_points, priors
from facemtl.train.detection.targets import build_targets

KINDS = ("small", "turned", "dark", "blurred", "occluded")  # the face kinds the data feedback tracks
MAX_FACES = 16  # faces per canvas kept for the miss statistics (targets keep them all)
SMALL = 20.0  # a face whose landmark box is narrower than this many canvas pixels is "small"


@dataclass
class CanvasFace:
    """One face on a canvas: landmark box, five points and pose (NaN where unknown)."""

    box: np.ndarray
    points: np.ndarray = field(default_factory=lambda: np.full((5, 2), np.nan))
    pose: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    ignore: bool = False
    kinds: set[str] = field(default_factory=set)


def is_turned(landmarks: np.ndarray, pose: np.ndarray | None = None) -> bool:
    """Yaw beyond about 45 degrees: from the pose when known, else the nose tip's place between
    the jaw ends (it leaves the middle fifth-to-four-fifths as the head turns)."""
    if pose is not None and np.isfinite(pose[0]):
        return abs(float(pose[0])) > 45
    x0, x16, x30 = landmarks[0, 0], landmarks[16, 0], landmarks[30, 0]
    if not np.isfinite([x0, x16, x30]).all() or abs(x16 - x0) < 1e-6:
        return False
    r = (x30 - x0) / (x16 - x0)
    return not 0.2 < r < 0.8


LFW_LANDMARKS = Path(__file__).resolve().parents[2] / "assets" / "lfw_landmarks.npz"


def lfw_faces(root: str | Path, part: str = "train", min_score: float = 0.5) -> list[Sample]:
    """LFW photos with the shipped pseudo-landmarks as samples; ``part``: ``train`` or ``val``, one
    identity in five (by a hash of its name) held out for the benchmark's LFW recall."""
    import hashlib

    d = np.load(LFW_LANDMARKS)
    out = []
    for path, lm, score in zip(d["path"], d["landmarks"], d["score"]):
        held = int(hashlib.md5(str(path).split("/")[0].encode()).hexdigest(), 16) % 5 == 0
        if held == (part == "val") and score >= min_score and np.isfinite(lm).all():
            out.append(Sample("lfw", image_path=str(Path(root) / str(path)), landmarks=lm.astype(np.float64)))
    return out


def encode(canvas: np.ndarray, faces: Sequence[CanvasFace], spec: AnchorSpec,
           anchors: np.ndarray) -> dict[str, np.ndarray]:
    """A canvas and its faces -> the training example (image, per-anchor targets, face kinds)."""
    n = len(faces)
    boxes = np.array([f.box for f in faces], np.float64).reshape(n, 4)
    points = np.array([f.points for f in faces], np.float64).reshape(n, 5, 2)
    pose = np.array([f.pose for f in faces], np.float64).reshape(n, 3)
    ignore = np.array([f.ignore for f in faces], bool)
    ex = build_targets(anchors, spec, boxes, points, pose, ignore)
    kinds, valid = np.zeros((MAX_FACES, len(KINDS)), np.float32), np.zeros(MAX_FACES, np.float32)
    for j, f in enumerate(faces[:MAX_FACES]):
        valid[j] = not f.ignore
        kinds[j] = [k in f.kinds for k in KINDS]
    ex["face"] = np.where(ex["face"] < MAX_FACES, ex["face"], -1)
    ex.update(image=np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), face_kinds=kinds,
              face_valid=valid)
    return ex


def darken(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dim, low-contrast version (gain 0.15-0.45, gamma 1.2-2): underexposed faces."""
    lut = (np.arange(256) / 255.0) ** rng.uniform(1.2, 2.0) * rng.uniform(0.15, 0.45) * 255
    return cv2.LUT(image, np.clip(lut, 0, 255).astype(np.uint8))


def blur(image: np.ndarray, rng: np.random.Generator, face_px: float) -> np.ndarray:
    """Gaussian blur of 3-8 % of the face's size (defocus, motion at speed)."""
    return cv2.GaussianBlur(image, (0, 0), max(0.8, face_px * rng.uniform(0.03, 0.08)))


class _Occluders:
    """The synthetic engine's occluders (shapes, bars, hands); its assets load once per process."""

    assets = None

    @classmethod
    def draw(cls, rng: np.random.Generator, patch: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
        from facemtl.synth.compose import draw_occluders

        if cls.assets is None:
            from facemtl.synth.assets import get_assets

            cls.assets = get_assets()
        image = patch.astype(np.float32) / 255
        draw_occluders(rng, image, points, scale, cls.assets)
        return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def background(rng: np.random.Generator, size: int, p_photo: float = 0.8) -> np.ndarray:
    """A face-free background: an LFW photo region away from its face, or a procedural one."""
    from facemtl.synth.compose import sample_background

    if _Occluders.assets is None:
        from facemtl.synth.assets import get_assets

        _Occluders.assets = get_assets()
    return np.clip(sample_background(rng, _Occluders.assets, size, p_photo) * 255 + 0.5, 0, 255).astype(np.uint8)


# Hard negatives that real photos have and the backgrounds lack: lettering, logos, patterned cloth.
_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789&@"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_ITALIC | cv2.FONT_HERSHEY_SIMPLEX)


def clutter(canvas: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` face-free distractors in place: words (1-5 glyphs), logos (a filled disc or box
    with a word on it) and flower-like clusters of dots, 8-25 % of the canvas tall, and signs (2-4
    stacked lines of words, up to 80 % of the canvas: a lettered wall has rows where a face has
    eyes, nose and mouth)."""
    size = canvas.shape[0]

    def colour():
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    for _ in range(n):
        h = rng.uniform(0.08, 0.25) * size
        x, y = (int(v) for v in rng.uniform(0, size - h, 2))
        kind = rng.random()
        if kind < 0.7:
            if kind >= 0.4:  # a logo: the word on a filled shape
                r = int(h * rng.uniform(0.5, 0.8))
                if rng.random() < 0.5:
                    cv2.circle(canvas, (x + r, y + r), r, colour(), -1, cv2.LINE_AA)
                else:
                    cv2.rectangle(canvas, (x, y), (x + 2 * r, y + 2 * r), colour(), -1, cv2.LINE_AA)
            lines = int(rng.integers(2, 5)) if kind < 0.2 else 1
            font, ink = _FONTS[int(rng.integers(len(_FONTS)))], colour()
            line_h = h if lines == 1 else h * rng.uniform(0.4, 0.8)  # a sign is taller than one word
            scale = line_h / 2 / 22.0  # Hershey glyphs are about 22 px tall at scale 1
            thickness = max(1, int(scale * rng.uniform(1, 4)))
            for k in range(lines):
                word = "".join(rng.choice(list(_GLYPHS), int(rng.integers(1, 6))))
                cv2.putText(canvas, word, (x, int(y + line_h * (k + 0.75))), font, scale, ink, thickness,
                            cv2.LINE_AA)
        else:  # petals around a centre
            centre, k = np.array([x, y]) + h / 2, int(rng.integers(4, 8))
            petal, c = h * rng.uniform(0.12, 0.25), colour()
            for a in np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, np.pi):
                p = centre + h * 0.3 * np.array([np.cos(a), np.sin(a)])
                cv2.circle(canvas, (int(p[0]), int(p[1])), max(1, int(petal)), c, -1, cv2.LINE_AA)
            cv2.circle(canvas, (int(centre[0]), int(centre[1])), max(1, int(petal * 0.8)), colour(), -1, cv2.LINE_AA)
    return canvas


class Source(Protocol):
    def example(self, rng: np.random.Generator, focus: str | None) -> tuple[np.ndarray, list[CanvasFace]]: ...


def _warp_face(landmarks: np.ndarray, pose: np.ndarray, m: np.ndarray, flip: bool, size: int) -> CanvasFace:
    """A face's 68 landmarks (image pixels) through the canvas matrix ``m``, mirrored if ``flip``."""
    pts = apply_affine(landmarks, m)
    if flip:
        pts = pts[FLIP_68]
        pts[:, 0] = size - 1 - pts[:, 0]
        pose = flip_pose(pose) if np.isfinite(pose).all() else pose
    return CanvasFace(box=landmark_box(pts), points=five_points(pts), pose=np.asarray(pose, np.float64))


class SceneSource:
    """Rendered scenes (``facemtl synth --scene`` folders, read with the ``synth-scenes`` reader)."""

    def __init__(self, samples: Sequence[Sample], size: int, min_visible: float = 0.3):
        if not samples:
            raise ValueError("no scenes")
        self.samples, self.size, self.min_visible = list(samples), size, min_visible

    def example(self, rng: np.random.Generator, focus: str | None) -> tuple[np.ndarray, list[CanvasFace]]:
        s = self.samples[int(rng.integers(len(self.samples)))]
        if focus == "turned":  # a few draws for a scene with a turned face
            for _ in range(4):
                if np.any(np.abs(s.meta["pose"][:, 0]) > 45):
                    break
                s = self.samples[int(rng.integers(len(self.samples)))]
        image = s.load_image()
        h, w = image.shape[:2]
        zoom = rng.uniform(0.3, 0.6) if focus == "small" else np.exp(rng.uniform(np.log(0.6), np.log(2.0)))
        scale = self.size / max(h, w) * zoom
        # Anywhere the scene covers the canvas, or fits in it when zoomed out.
        free = (self.size - w * scale, self.size - h * scale)
        x0, y0 = (rng.uniform(min(0.0, f), max(0.0, f)) for f in free)
        m = np.array([[scale, 0, x0], [0, scale, y0]])
        canvas = cv2.warpAffine(image, m, (self.size, self.size),
                                flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        flip = rng.random() < 0.5
        if flip:
            canvas = np.ascontiguousarray(canvas[:, ::-1])
        faces = []
        vis = s.meta.get("visibility")
        for j in range(len(s.meta["landmarks"])):
            f = _warp_face(s.meta["landmarks"][j], s.meta["pose"][j], m, flip, self.size)
            seen = float(np.nanmean(vis[j])) if vis is not None else 1.0
            side = max(f.box[2] - f.box[0], f.box[3] - f.box[1])
            inside = (f.box[0] < self.size - 4) and (f.box[1] < self.size - 4) and f.box[2] > 4 and f.box[3] > 4
            f.ignore = seen < self.min_visible or side < 6 or not inside
            f.kinds = {k for k, on in (("small", side < SMALL), ("turned", is_turned(s.meta["landmarks"][j], f.pose)),
                                       ("occluded", seen < 0.7)) if on}
            faces.append(f)
        return _photometric(canvas, faces, rng, focus), faces


def _photometric(canvas: np.ndarray, faces: list[CanvasFace], rng: np.random.Generator,
                 focus: str | None) -> np.ndarray:
    """Whole-canvas darkening / blur when asked for (or now and then); marks the faces' kinds."""
    sides = [max(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces] or [40.0]
    for kind, fn in (("dark", lambda im: darken(im, rng)),
                     ("blurred", lambda im: blur(im, rng, float(np.median(sides))))):
        if focus == kind or rng.random() < 0.05:
            canvas = fn(canvas)
            for f in faces:
                f.kinds.add(kind)
    return canvas


class CompositeSource:
    """Real faces with 68 landmarks pasted onto backgrounds; ``p_photo``: the whole photo instead;
    ``p_mosaic``: a 2x2 to 4x4 grid of head-and-shoulders squares, unblended (4x4 to 6x6 with a
    ``small`` focus); ``p_negative``: no face at all. ``min_side`` / ``max_side``: landmark-box width
    range on the canvas (log-uniform); a ``small`` focus draws from ``small_side`` instead.
    ``p_clutter``: a pasted or face-free canvas's background gets 1-6 :func:`clutter` distractors."""

    def __init__(self, samples: Sequence[Sample], size: int, max_faces: int = 4, p_photo: float = 0.25,
                 p_negative: float = 0.1, min_side: float = 10.0, max_side: float | None = None,
                 small_side: tuple[float, float] = (8.0, SMALL), p_kind: float = 0.05, clean: bool = False,
                 p_mosaic: float = 0.0, p_clutter: float = 0.0):
        self.samples = [s for s in samples if s.landmarks is not None and np.isfinite(s.landmarks).all()]
        if not self.samples:
            raise ValueError("no faces with 68 landmarks")
        self.turned = [i for i, s in enumerate(self.samples) if is_turned(s.landmarks, s.pose)]
        self.size, self.max_faces, self.p_photo, self.p_negative = size, max_faces, p_photo, p_negative
        self.sides = (min_side, max_side or 0.55 * size)
        self.small_side, self.p_kind, self.clean, self.p_mosaic = small_side, p_kind, clean, p_mosaic
        self.p_clutter = p_clutter

    def _load(self, s: Sample) -> np.ndarray:
        """The sample's image; with ``clean``, thin pure-green drawings inpainted (the shared LFW
        copy has a face box and landmark dots burned into every photo)."""
        image = s.load_image()
        if self.clean:
            from facemtl.synth.texture import remove_overlay

            image = remove_overlay(image)
        return image

    def _pick(self, rng: np.random.Generator, focus: str | None) -> Sample:
        pool = self.turned if focus == "turned" and self.turned else range(len(self.samples))
        return self.samples[pool[int(rng.integers(len(pool)))]]

    def example(self, rng: np.random.Generator, focus: str | None) -> tuple[np.ndarray, list[CanvasFace]]:
        if focus is None and rng.random() < self.p_negative:
            return _photometric(self._background(rng), [], rng, None), []
        if self.p_mosaic and focus != "occluded" and rng.random() < self.p_mosaic:
            return self._mosaic(rng, focus)
        if rng.random() < self.p_photo and focus not in ("small", "occluded"):
            return self._photo(rng, focus)
        canvas = self._background(rng)
        faces: list[CanvasFace] = []
        taken: list[np.ndarray] = []
        for _ in range(int(rng.integers(1, self.max_faces + 1))):
            face = self._paste(canvas, rng, focus, taken)
            if face is not None:
                faces.append(face)
        return _photometric(canvas, faces, rng, focus if focus == "dark" else None), faces

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        canvas = background(rng, self.size)
        return clutter(canvas, rng, int(rng.integers(1, 7))) if rng.random() < self.p_clutter else canvas

    def _photo(self, rng: np.random.Generator, focus: str | None) -> tuple[np.ndarray, list[CanvasFace]]:
        s = self._pick(rng, focus)
        image = self._load(s)
        h, w = image.shape[:2]
        scale = self.size / max(h, w) * rng.uniform(0.35, 1.0)
        x0, y0 = rng.uniform(0, self.size - w * scale), rng.uniform(0, self.size - h * scale)
        m = np.array([[scale, 0, x0], [0, scale, y0]])
        canvas = cv2.warpAffine(image, m, (self.size, self.size), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_CONSTANT)
        flip = rng.random() < 0.5
        if flip:
            canvas = np.ascontiguousarray(canvas[:, ::-1])
        face = _warp_face(s.landmarks, s.pose if s.pose is not None else np.full(3, np.nan), m, flip, self.size)
        face.kinds = {"turned"} if is_turned(s.landmarks, s.pose) else set()
        return _photometric(canvas, [face], rng, focus), [face]

    def _mosaic(self, rng: np.random.Generator, focus: str | None) -> tuple[np.ndarray, list[CanvasFace]]:
        # Square cuts of 1.5-2x the landmark box: the head, hair and shoulders, little of the
        # photo's edge, where unlabelled bystanders would be learnt as background.
        k = int(rng.integers(4, 7)) if focus == "small" else int(rng.integers(2, 5))
        cell = self.size // k
        canvas = background(rng, self.size)
        faces = []
        for row in range(k):
            for col in range(k):
                s = self._pick(rng, focus)
                tile = int(cell * rng.uniform(0.85, 1.0))
                patch, pts, pose = self._cut(s, rng.uniform(1.5, 2.0), tile, rng)
                x, y = (i * cell + int(rng.integers(0, cell - tile + 1)) for i in (col, row))
                canvas[y:y + tile, x:x + tile] = patch
                faces.append(_face(s, pts + [x, y], pose, set()))
        return _photometric(canvas, faces, rng, focus), faces

    def _paste(self, canvas: np.ndarray, rng: np.random.Generator, focus: str | None,
               taken: list[np.ndarray]) -> CanvasFace | None:
        """Paste one face where it overlaps no earlier one; None when no room was found."""
        s = self._pick(rng, focus)
        lo, hi = self.small_side if focus == "small" else self.sides
        side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        margin = 1.9  # patch side over the landmark box's longer side: hair, chin, ears
        patch_px = int(np.ceil(side * margin))
        if patch_px >= self.size:
            return None
        for _ in range(10):
            x, y = rng.integers(0, self.size - patch_px + 1, 2)
            rect = np.array([x, y, x + patch_px, y + patch_px], np.float64)
            if all(_overlap(rect, t) < 0.15 for t in taken):
                break
        else:
            return None
        patch, pts, pose = self._cut(s, margin, patch_px, rng)
        patch, kinds = self._degrade(patch, pts, side, rng, focus)
        _blend(canvas, patch, int(x), int(y), rng)
        taken.append(rect)
        return _face(s, pts + [x, y], pose, kinds)

    def _cut(self, s: Sample, margin: float, patch_px: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The face cut square (``margin`` x its landmark box, ``patch_px`` side), mirrored half the
        time: the patch, its 68 points and the pose."""
        patch, m = crop_face(self._load(s), landmark_box(s.landmarks), margin, patch_px)
        pts = apply_affine(s.landmarks, m)
        pose = s.pose if s.pose is not None else np.full(3, np.nan)
        if rng.random() < 0.5:
            patch, pts, pose = patch[:, ::-1], pts[FLIP_68], flip_pose(pose) if np.isfinite(pose).all() else pose
            pts[:, 0] = patch_px - 1 - pts[:, 0]
        return np.ascontiguousarray(patch), pts, pose

    def _degrade(self, patch: np.ndarray, pts: np.ndarray, side: float, rng: np.random.Generator,
                 focus: str | None) -> tuple[np.ndarray, set[str]]:
        kinds = set()
        if focus == "occluded" or rng.random() < self.p_kind:
            patch = _Occluders.draw(rng, patch, pts[17:], side * 2)
            kinds.add("occluded")
        if focus == "blurred" or rng.random() < self.p_kind:
            patch = blur(patch, rng, side)
            kinds.add("blurred")
        if focus == "dark" or rng.random() < self.p_kind:
            patch = darken(patch, rng)
            kinds.add("dark")
        return patch, kinds


def _face(s: Sample, pts: np.ndarray, pose: np.ndarray, kinds: set[str]) -> CanvasFace:
    """A cut-out face on the canvas (its 68 points in canvas pixels), with its small / turned kinds."""
    box = landmark_box(pts)
    small = max(box[2] - box[0], box[3] - box[1]) < SMALL
    kinds = kinds | {k for k, on in (("small", small), ("turned", is_turned(s.landmarks, s.pose))) if on}
    return CanvasFace(box=box, points=five_points(pts), pose=np.asarray(pose, np.float64), kinds=kinds)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller of two ``[x1, y1, x2, y2]`` rectangles."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max(1e-9, min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])))


def _blend(canvas: np.ndarray, patch: np.ndarray, x: int, y: int, rng: np.random.Generator) -> None:
    """Paste ``patch`` at ``(x, y)`` through a feathered ellipse (no rectangle edge to learn from)."""
    n = patch.shape[0]
    alpha = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    axes = (max(1, int(n * rng.uniform(0.36, 0.46))), max(1, int(n * rng.uniform(0.42, 0.5))))
    cv2.ellipse(alpha, (int(c), int(c)), axes, 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.06 * n))[..., None]
    region = canvas[y:y + n, x:x + n].astype(np.float32)
    canvas[y:y + n, x:x + n] = np.clip(region * (1 - alpha) + patch.astype(np.float32) * alpha, 0, 255).astype(np.uint8)


def focus_probabilities(miss: np.ndarray, p_plain: float = 0.5, floor: float = 0.05) -> np.ndarray:
    """Probabilities of ``(None,) + KINDS`` from the running miss rates (``miss[:len(KINDS)]``):
    ``p_plain`` for plain examples, the rest shared in proportion to ``miss_k + floor``."""
    w = np.asarray(miss[:len(KINDS)], np.float64) + floor
    return np.r_[p_plain, (1 - p_plain) * w / w.sum()]


class DetectionDataset:
    """Map dataset over keys ``(epoch, index, focus)``: the source is drawn by weight, every random
    choice comes from a generator seeded by ``(seed, epoch, index)``."""

    def __init__(self, sources: Sequence[Source], weights: Sequence[float], spec: AnchorSpec,
                 augment: Augment | None = None, seed: int = 0):
        if len(sources) != len(weights) or not sources:
            raise ValueError("need one weight per source and at least one source")
        w = np.asarray(weights, np.float64)
        self.sources, self.p, self.spec, self.seed = list(sources), w / w.sum(), spec, seed
        self.augment = augment
        self.anchors = priors(spec)

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, np.ndarray]:
        epoch, index, focus = key
        rng = np.random.default_rng((self.seed, epoch, index))
        source = self.sources[int(rng.choice(len(self.sources), p=self.p))]
        canvas, faces = source.example(rng, None if focus < 0 else KINDS[focus])
        if self.augment is not None:  # colour, low resolution, blur: the trainer's usual jitter
            canvas = self.augment.photometric(canvas, rng)
        return encode(canvas, faces, self.spec, self.anchors)
