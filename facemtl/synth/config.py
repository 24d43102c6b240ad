"""The options of a synthetic render and the per-sample generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class SynthConfig:
    """What to sample. Angles in degrees, lengths in mm, probabilities in [0, 1].

    Pose: yaw uniform in ``yaw_range``; pitch and roll normal (``*_sd``) truncated at
    ``*_max``. Framing: ``face_frac`` is the width of the 68 landmarks' box of the *frontal*
    head over the image side (AFLW2000's crops: about 0.42), so profiles come out narrower as
    in real crops; the face centre is jittered by ``center_jitter`` x side; the camera stands
    ``distance_mm`` from the face (log-uniform), which with the framing sets the focal length.
    ``supersample``: render at this factor and area-downsample (anti-aliasing).
    ``textures``: folder of photos for photo textures (:mod:`facemtl.synth.texture`), used
    with probability ``p_photo_texture``; ``shared``: the shared data folder (LFW backgrounds; default :func:`facemtl.io.shared_dir`).
    """

    size: int = 128
    yaw_range: tuple[float, float] = (-99.0, 99.0)
    pitch_sd: float = 20.0
    pitch_max: float = 60.0
    roll_sd: float = 12.0
    roll_max: float = 45.0
    face_frac: tuple[float, float] = (0.32, 0.52)
    center_jitter: float = 0.06
    distance_mm: tuple[float, float] = (450.0, 3000.0)
    n_identities: int = 100_000
    identity_modes: int = 60
    p_neutral: float = 0.3
    p_torso: float = 0.97
    p_photo_background: float = 0.7
    p_occluder: float = 0.25
    p_black_border: float = 0.1
    p_low_res: float = 0.15
    low_res_factor: tuple[float, float] = (1.0, 15.0)
    p_blur: float = 0.15
    blur_sigma: tuple[float, float] = (0.4, 1.8)
    noise_sd: tuple[float, float] = (0.0, 0.02)
    p_grey: float = 0.05
    supersample: int = 1
    scene_faces: tuple[int, int] = (2, 6)
    shared: Optional[str] = None
    model_path: Optional[str] = None
    textures: Optional[str] = None
    p_photo_texture: float = 0.5


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a dataset with ``seed`` (independent of workers)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
