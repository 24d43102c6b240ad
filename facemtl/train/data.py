"""Training examples: samples of any source turned into one target dict with masks.

An *example* is a dict of numpy arrays, the same keys for every source, so that one batch can
mix datasets that each carry only some labels (RMT-Net): a missing label has mask 0.

========================  =============  ==============================================
key                       shape / dtype  meaning
========================  =============  ==============================================
``image``                 (3, S, S) f32  BGR crop, 0..255 (normalised inside the model)
``pose``, ``pose_mask``   (3,), ()       yaw, pitch, roll in degrees
``landmarks``             (68, 2) f32    normalised crop coordinates (facemtl.contract)
``landmarks_mask``        (68,) f32      1 where the point is labelled
``visibility``            (68,) f32      1 visible, 0 hidden; ``visibility_mask`` (68,)
``expression``            () int64       index into contract.EXPRESSIONS; ``expression_mask`` ()
========================  =============  ==============================================

Every source is indexed by an integer and draws its randomness from ``rng``, so an example is
a pure function of ``(seed, epoch, index)`` and a resumed run sees the same batches.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import cv2
import numpy as np

from facemtl.contract import FLIP_68, N_LANDMARKS, apply_affine, crop_face, crop_pixels_to_normalised
from facemtl.data.sample import Sample
from facemtl.data.transforms import (Augment, face_box, flip_landmarks, flip_pose, rotate_in_plane,
                                     tight_crop_box)


def empty_example(size: int) -> dict[str, np.ndarray]:
    """An example with every label missing."""
    return {
        "image": np.zeros((3, size, size), np.float32),
        "pose": np.zeros(3, np.float32), "pose_mask": np.float32(0),
        "landmarks": np.zeros((N_LANDMARKS, 2), np.float32),
        "landmarks_mask": np.zeros(N_LANDMARKS, np.float32),
        "visibility": np.zeros(N_LANDMARKS, np.float32),
        "visibility_mask": np.zeros(N_LANDMARKS, np.float32),
        "expression": np.int64(0), "expression_mask": np.float32(0),
    }


def make_example(image: np.ndarray, size: int, crop_scale: float, rng: np.random.Generator,
                 augment: Augment | None, box: np.ndarray, pose: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None, visibility: np.ndarray | None = None,
                 expression: int | None = None) -> dict[str, np.ndarray]:
    """Crop ``image`` around ``box`` (with augmentation) and encode the labels it has."""
    ex = empty_example(size)
    if augment is not None:
        box = augment.jitter_box(box, rng)
    crop, m = crop_face(image, box, crop_scale, size)
    flip = augment is not None and rng.random() < augment.flip
    pts = None if landmarks is None else apply_affine(landmarks.astype(np.float64), m)
    if flip:
        crop = crop[:, ::-1]
        pts = None if pts is None else flip_landmarks(pts, size)
        pose = None if pose is None else flip_pose(pose)
        visibility = None if visibility is None else visibility[FLIP_68]
    # No draw at all when the rotation is off, so older configs keep their exact example stream.
    if augment is not None and augment.rotate > 0 and rng.random() < 0.5:
        crop, pts, pose = rotate_in_plane(crop, rng.uniform(-augment.rotate, augment.rotate), pts, pose)
    if pts is not None:
        labelled = np.isfinite(pts).all(axis=1)
        ex["landmarks"] = np.where(labelled[:, None], crop_pixels_to_normalised(pts, size), 0).astype(np.float32)
        ex["landmarks_mask"] = labelled.astype(np.float32)
    if visibility is not None:
        known = np.isfinite(visibility)
        ex["visibility"] = np.where(known, visibility, 0).astype(np.float32)
        ex["visibility_mask"] = known.astype(np.float32)
    if pose is not None:
        ex["pose"] = np.asarray(pose).astype(np.float32)
        ex["pose_mask"] = np.float32(1)
    if expression is not None:
        ex["expression"], ex["expression_mask"] = np.int64(expression), np.float32(1)
    if augment is not None:
        crop = augment.photometric(np.ascontiguousarray(crop), rng)
    ex["image"] = np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)
    return ex


class Source(Protocol):
    """Anything that turns an index (and a generator) into an example."""

    def __len__(self) -> int: ...

    def example(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]: ...


class SampleSource:
    """Examples from reader samples (any dataset in :mod:`facemtl.data.registry`).

    ``labels`` picks which of the samples' labels are used (default all). The face box is
    :func:`facemtl.data.transforms.face_box`: the tight box of the labelled
    landmarks (the box the model sees at inference after refinement), else the sample's box, else
    the whole image as a tight face crop.
    """

    LABELS = ("pose", "landmarks", "visibility", "expression")

    def __init__(self, samples: Sequence[Sample], size: int, crop_scale: float, augment: Augment | None,
                 labels: Sequence[str] | None = None):
        if not samples:
            raise ValueError("no samples")
        unknown = set(labels or ()) - set(self.LABELS)
        if unknown:
            raise ValueError(f"unknown labels {sorted(unknown)}; known: {', '.join(self.LABELS)}")
        self.samples = list(samples)
        self.labels = set(self.LABELS if labels is None else labels)
        self.size, self.crop_scale, self.augment = size, crop_scale, augment

    def __len__(self) -> int:
        return len(self.samples)

    def example(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = self.samples[index % len(self.samples)]
        image = s.load_image()
        keep = {k: getattr(s, k) if k in self.labels else None for k in self.LABELS}
        return make_example(image, self.size, self.crop_scale, rng, self.augment, face_box(s, image), **keep)


class ExpressionArraySource:
    """Expression-only examples from tight grey face crops (FER2013, CK+ arrays), cropped around
    :func:`facemtl.data.transforms.tight_crop_box` like any face."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int, crop_scale: float,
                 augment: Augment | None):
        self.images, self.labels = images, labels
        self.size, self.crop_scale, self.augment = size, crop_scale, augment

    def __len__(self) -> int:
        return len(self.images)

    def example(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        grey = self.images[index % len(self.images)]
        image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        box = tight_crop_box(grey.shape[1], grey.shape[0])
        return make_example(image, self.size, self.crop_scale, rng, self.augment, box,
                            expression=int(self.labels[index % len(self.labels)]))


class MixedDataset:
    """A torch-style map dataset mixing sources in fixed proportions, reproducibly.

    Item ``(e, i)`` (example ``i`` of data-epoch ``e``) draws its source and its source index
    from a generator seeded by ``(seed, e, i)``; a plain integer ``i`` means ``(epoch, i)`` with
    the epoch set by :meth:`set_epoch`.
    """

    def __init__(self, sources: Sequence[Source], weights: Sequence[float], length: int, seed: int = 0):
        if len(sources) != len(weights) or not sources:
            raise ValueError("need one weight per source and at least one source")
        w = np.asarray(weights, dtype=np.float64)
        self.sources, self.p = list(sources), w / w.sum()
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, np.ndarray]:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng((self.seed, epoch, index))
        k = int(rng.choice(len(self.sources), p=self.p))
        source = self.sources[k]
        return source.example(int(rng.integers(len(source))), rng)


class SynthSource:
    """Faces rendered on the fly by :mod:`facemtl.synth` (pose, landmarks, visibility, expression).

    Every index is a new render (the source is as long as ``length``), deterministic in the
    generator it is given. The renders' own low-resolution and blur augmentation is off: the
    trainer's :class:`Augment` does that for every source alike.
    """

    def __init__(self, size: int, crop_scale: float, augment: Augment | None, render_size: int = 160,
                 length: int = 1 << 30, **synth_options):
        from facemtl.synth.config import SynthConfig

        if "face_frac" in synth_options:
            synth_options["face_frac"] = tuple(synth_options["face_frac"])
        self.config = SynthConfig(size=render_size, p_low_res=0.0, p_blur=0.0, **synth_options)
        self.size, self.crop_scale, self.augment, self.length = size, crop_scale, augment, length

    def __len__(self) -> int:
        return self.length

    def example(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        from facemtl.synth.render import render_sample

        image, labels = render_sample(rng, self.config)
        return make_example(image, self.size, self.crop_scale, rng, self.augment, labels.box,
                            pose=labels.pose, landmarks=labels.landmarks, visibility=labels.visibility,
                            expression=labels.expr_class)


def synth_validation_samples(n: int, seed: int, render_size: int = 160, **synth_options) -> list[Sample]:
    """``n`` held-out synthetic faces as samples (a seed the training sources never use)."""
    from facemtl.synth.config import SynthConfig
    from facemtl.synth.render import SynthDataset

    config = SynthConfig(size=render_size, p_low_res=0.0, p_blur=0.0, **synth_options)
    dataset = SynthDataset(n, seed=seed, config=config)
    return [dataset[i] for i in range(n)]
