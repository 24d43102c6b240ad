"""Sampling a person (identity shape and appearance), an expression, a pose and the light."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.synth.config import SynthConfig
from facemtl.synth.labels import EXPRESSION_SHAPES


# Identity appearance depends on the identity id alone (not on the dataset seed): the same id
# is the same person in every dataset.
IDENTITY_SALT = 0x1D3E7
# Colour anchors, RGB in [0, 1] (converted to BGR where used).
SKIN_TONES = np.array([[0.95, 0.82, 0.74], [0.89, 0.71, 0.60], [0.80, 0.60, 0.47], [0.68, 0.49, 0.36],
                        [0.52, 0.36, 0.25], [0.36, 0.24, 0.17], [0.25, 0.17, 0.13]])
_HAIR_COLOURS = np.array([[0.05, 0.04, 0.04], [0.14, 0.09, 0.06], [0.28, 0.18, 0.11], [0.45, 0.32, 0.20],
                          [0.70, 0.57, 0.38], [0.48, 0.20, 0.10], [0.55, 0.54, 0.52], [0.82, 0.81, 0.78]])
_HAIR_P = np.array([0.30, 0.25, 0.15, 0.10, 0.07, 0.03, 0.06, 0.04])
_EYE_COLOURS = np.array([[0.25, 0.14, 0.07], [0.40, 0.25, 0.12], [0.30, 0.40, 0.55], [0.30, 0.42, 0.30],
                         [0.45, 0.50, 0.55]])
_HAIR_STYLES = ("bald", "buzz", "short", "volume", "long")
# Clothes: black, white, greys, navy, blue, light-blue shirt, dark green, beige, brown, red.
_CLOTH_COLOURS = np.array([[0.05, 0.05, 0.06], [0.85, 0.85, 0.84], [0.45, 0.45, 0.46], [0.22, 0.22, 0.24],
                           [0.10, 0.12, 0.28], [0.25, 0.38, 0.65], [0.62, 0.72, 0.86], [0.12, 0.25, 0.15],
                           [0.68, 0.60, 0.45], [0.35, 0.22, 0.14], [0.60, 0.10, 0.12]])
_CLOTH_P = np.array([0.2, 0.12, 0.08, 0.1, 0.1, 0.08, 0.08, 0.04, 0.06, 0.06, 0.08])


def bgr(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64)[..., ::-1].copy()


@dataclass
class Person:
    """Identity-level shape and appearance (all fixed by the identity id)."""

    identity: int
    shape: np.ndarray
    skin: np.ndarray
    skin_var: np.ndarray
    cheeks: float
    lips: np.ndarray
    brow_colour: np.ndarray
    brows: tuple[float, float]
    beard: tuple[float, float, float]  # full beard, moustache/goatee, stubble
    hair_style: str
    hair_colour: np.ndarray
    hairline: tuple[float, float, float]
    hair_thickness: float
    hair_length: float
    hair_noise: tuple[float, float]  # amplitudes of fine locks and coarse volume changes
    eye_colour: np.ndarray
    cloth: np.ndarray
    cloth2: np.ndarray
    neckline: float
    torso: tuple[float, float]  # shoulder half-width, chest half-depth (mm)


def sample_person(identity: int, n_modes: int = 60) -> Person:
    """The person with this identity id (shape ~ N(0, 1) on the first ``n_modes`` modes)."""
    rng = np.random.default_rng(np.random.SeedSequence([IDENTITY_SALT, int(identity)]))
    shape = np.zeros(100)
    shape[:n_modes] = rng.standard_normal(n_modes)
    masculine = rng.random() < 0.5
    t = rng.beta(1.6, 2.2) * (len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    skin = (1 - (t - i)) * SKIN_TONES[i] + (t - i) * SKIN_TONES[i + 1]
    skin = np.clip(skin * rng.uniform(0.92, 1.06) + rng.normal(0, 0.015, 3), 0.05, 1)
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_P)] * rng.uniform(0.8, 1.2)
    if t > 3.5:  # darker skin: mostly dark hair
        hair = _HAIR_COLOURS[rng.choice(3)] * rng.uniform(0.8, 1.2)
    style_p = [0.10, 0.15, 0.45, 0.22, 0.08] if masculine else [0.01, 0.02, 0.17, 0.30, 0.50]
    style = _HAIR_STYLES[rng.choice(5, p=style_p)]
    beard = (0.0, 0.0, 0.0)
    if masculine:
        kind = rng.choice(4, p=[0.55, 0.15, 0.1, 0.2])
        beard = [(0, 0, 0), (rng.uniform(0.5, 1), 0, 0.5), (0, rng.uniform(0.5, 1), 0.3),
                 (0, 0, rng.uniform(0.4, 1))][kind]
    lips = skin * np.array([0.85, 0.62, 0.66]) + (rng.uniform(0, 0.15) if not masculine else 0) * np.array([0.4, -0.1, 0.0])
    cloth = _CLOTH_COLOURS[rng.choice(len(_CLOTH_COLOURS), p=_CLOTH_P)] * rng.uniform(0.8, 1.15)
    if rng.random() < 0.15:  # anything else
        cloth = rng.uniform(0.05, 0.9, 3)
    return Person(
        identity=int(identity),
        shape=shape,
        skin=bgr(skin),
        skin_var=rng.uniform([0.02, 0.01], [0.07, 0.04]),
        cheeks=float(rng.uniform(0, 0.6)),
        lips=bgr(np.clip(lips, 0, 1)),
        brow_colour=bgr(hair * rng.uniform(0.6, 1.0) if style != "bald" or rng.random() < 0.5 else hair * 0.5),
        brows=(float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.0, 0.7 if masculine else 0.3))),
        beard=tuple(float(b) for b in beard),
        hair_style=style,
        hair_colour=bgr(np.clip(hair, 0, 1)),
        hairline=(float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.0, 0.6))),
        hair_thickness=float({"bald": 0, "buzz": 1.5, "short": rng.uniform(5, 14), "volume": rng.uniform(14, 35),
                              "long": rng.uniform(5, 15)}[style]),
        hair_length=float(rng.uniform(80, 320)),
        hair_noise=(float(rng.uniform(0, 0.35)), float(rng.uniform(0, 0.3))),
        eye_colour=bgr(_EYE_COLOURS[rng.choice(len(_EYE_COLOURS))] * rng.uniform(0.7, 1.2)),
        cloth=bgr(np.clip(cloth, 0, 1)),
        cloth2=bgr(_CLOTH_COLOURS[rng.choice(len(_CLOTH_COLOURS), p=_CLOTH_P)]),
        neckline=float(rng.choice([0.0, rng.uniform(0.3, 1.0)], p=[0.6, 0.4])),
        torso=(float(rng.uniform(165, 215) if masculine else rng.uniform(150, 190)), float(rng.uniform(95, 125))),
    )


def sample_expression(rng: np.random.Generator, names: Sequence[str], p_neutral: float = 0.3) -> np.ndarray:
    """Blendshape weights (53,): a target class's action units at 0.45-1, plus small others.

    The class label is derived from the weights afterwards (:func:`labels.expression_class`);
    neutral draws only small random weights.
    """
    w = np.zeros(len(names))
    index = {n: i for i, n in enumerate(names)}
    target = "neutral" if rng.random() < p_neutral else EXPRESSIONS[1 + rng.integers(len(EXPRESSIONS) - 1)]
    # A few random shapes, weak, on every face (gaze, blinks, asymmetries).
    extra = rng.choice(len(names), size=rng.integers(0, 5), replace=False)
    w[extra] = rng.uniform(0, 0.25, len(extra))
    if rng.random() < 0.08:
        w[[index["eyeBlink_L"], index["eyeBlink_R"]]] = rng.uniform(0.7, 1.0)
    if target != "neutral":
        level = rng.uniform(0.45, 1.0)
        for s in EXPRESSION_SHAPES[target]:
            w[index[s]] = np.clip(level + rng.normal(0, 0.08), 0, 1)
        if target == "angry" and rng.random() < 0.5:  # either the lids or the lips carry it
            w[[index["mouthPress_L"], index["mouthPress_R"]]] *= rng.uniform(0, 0.5)
        if target == "happy" and rng.random() < 0.6:
            w[[index["cheekSquint_L"], index["cheekSquint_R"]]] = rng.uniform(0.2, 0.8)
            if rng.random() < 0.4:
                w[index["jawOpen"]] = rng.uniform(0.05, 0.3)
    return w


def _truncnorm(rng: np.random.Generator, sd: float, limit: float) -> float:
    while True:
        x = rng.normal(0, sd)
        if abs(x) <= limit:
            return float(x)


def sample_pose(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """``[yaw, pitch, roll]`` degrees (see :class:`SynthConfig`)."""
    yaw = rng.uniform(*config.yaw_range)
    return np.array([yaw, _truncnorm(rng, config.pitch_sd, config.pitch_max), _truncnorm(rng, config.roll_sd, config.roll_max)])


@dataclass
class Light:
    ambient: np.ndarray  # (3,) BGR
    directions: np.ndarray  # (k, 3) unit, from the surface toward the light, camera frame
    colours: np.ndarray  # (k, 3) BGR


def sample_light(rng: np.random.Generator) -> Light:
    """Ambient + one key light from the camera's side (+ sometimes a weaker fill/rim light)."""
    tint = lambda s: np.clip(1 + rng.normal(0, s, 3), 0.8, 1.2)  # noqa: E731
    k = 1 + int(rng.random() < 0.4)
    dirs, cols = [], []
    for i in range(k):
        az, el = rng.uniform(-80, 80) if i == 0 else rng.uniform(-150, 150), rng.uniform(-30, 60)
        a, e = np.deg2rad(az), np.deg2rad(el)
        dirs.append([np.sin(a) * np.cos(e), -np.sin(e), -np.cos(a) * np.cos(e)])
        cols.append(tint(0.04) * (rng.uniform(0.35, 0.85) if i == 0 else rng.uniform(0.1, 0.35)))
    return Light(ambient=tint(0.03) * rng.uniform(0.25, 0.65), directions=np.array(dirs), colours=np.array(cols))
