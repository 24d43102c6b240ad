"""Render facemtl/assets/demo.jpg: three synthetic people (procedural textures, no photo data).

The README's first command runs `facemtl predict` on it, so a fresh machine without
../shared still has a face image to analyse. Run: python scripts/make_demo.py
"""

from pathlib import Path

import cv2
import numpy as np

from facemtl.synth.config import SynthConfig, sample_rng
from facemtl.synth.render import render_sample

OUT = Path(__file__).resolve().parents[1] / "facemtl" / "assets" / "demo.jpg"
SEEDS = (3, 4, 10)


def main() -> None:
    config = SynthConfig(size=320, textures=None, p_photo_texture=0.0, p_occluder=0.0, p_black_border=0.0,
                         p_low_res=0.0, p_blur=0.0, yaw_range=(-35.0, 35.0), pitch_sd=8.0, roll_sd=6.0,
                         face_frac=(0.36, 0.4), supersample=2, p_torso=1.0, p_photo_background=0.0)
    people = [render_sample(sample_rng(seed, 0), config)[0][:, 53:267] for seed in SEEDS]
    demo = np.full((480, 640, 3), 60, np.uint8)
    demo[80:400] = cv2.resize(np.hstack(people), (640, 320), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(OUT), demo, [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(OUT)


if __name__ == "__main__":
    main()
