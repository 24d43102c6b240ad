"""``facemtl study super-resolution``: do super-resolved tiny faces give better landmarks than bicubic ones?

On a 300-W-format folder (by default the 100 held-out helen-train faces, the 300-W validation split
that no facemtl model trains on), every face's crop (the analyzer's crop of its ground-truth
landmark box, at the landmark model's input size) is shrunk to ``size`` x ``size`` by area
averaging, then brought back to the input size two ways: bicubic interpolation (OpenCV) and the
super-resolution generator (:class:`facemtl.infer.superres.SuperResolver`, the runtime's own
path). For each way:

* ``psnr`` (dB) and ``ssim`` against the full-resolution crop, means over the faces;
* ``nme``: the landmark model's 68-point error on the upsampled crop (mapped back through the
  crop's matrix), mean over the faces, in % of the outer-eye-corner distance.

``original`` holds the landmark model's NME on the full-resolution crops (the ceiling). Writes the JSON
(``{"sizes": {"16": {"bicubic": {...}, "sr": {...}}, ...}, ...}``), a figure (rows: low-res input,
bicubic, SR, original) and the study's section of ``docs/studies.md``.

    facemtl study super-resolution --root ../shared/data/300w/helen-train --holdout val --sizes 16,24,32 --json F
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

STUDY = "super-resolution"
SIZES = (16, 24, 32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="300-W-format folder (.pts + images; default "
                                                  "../shared/data/300w/helen-train)")
    parser.add_argument("--holdout", default="val",
                        help="'val' (default): the 100 held-out faces; 'train': the others; 'all': every face")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="low resolutions, px (default 16,24,32)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--model", type=Path, help="super-resolution ONNX model (default: the shipped one)")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=MODEL",
                        help="score another super-resolution ONNX model too, under NAME (repeatable)")
    parser.add_argument("--landmark-model", type=Path, help="landmark ONNX model (default: the shipped one)")
    parser.add_argument("--figure", type=Path, default=Path("docs") / "studies" / "super_resolution.jpg",
                        help="figure path, .jpg or .png (default docs/studies/super_resolution.jpg: photos)")
    parser.add_argument("--figure-faces", type=int, default=4, help="faces per size in the figure (default 4)")
    parser.add_argument("--doc", default=str(Path("docs") / "studies.md"),
                        help="markdown file whose super-resolution section is (re)written; '' for none")


def load_faces(root: Path, holdout: str) -> list:
    """The 68-landmark samples of ``root`` (a 300-W-format folder), of the ``holdout`` part."""
    from facemtl.data.registry import load_dataset

    samples = load_dataset("300w", root, holdout=None if holdout == "all" else holdout)
    samples = [s for s in samples if s.landmarks is not None and np.isfinite(s.landmarks).all()]
    if not samples:
        raise ValueError(f"{root}: no face with 68 landmarks (holdout {holdout!r})")
    return samples


def full_crops(samples: list, crop_scale: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(crops (N, S, S, 3), matrices (N, 2, 3), landmarks (N, 68, 2))``: the analyzer's crop of
    each face's ground-truth landmark box."""
    from facemtl.contract import crop_face, landmark_box

    crops, matrices = zip(*(crop_face(s.load_image(), landmark_box(s.landmarks), crop_scale, size)
                            for s in samples))
    return np.stack(crops), np.stack(matrices), np.stack([s.landmarks for s in samples])


def landmark_nme(model, crops: np.ndarray, matrices: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-face NME (%, outer eye corners) of ``model``'s landmarks on ``crops``."""
    from facemtl.contract import landmarks_to_image
    from facemtl.metrics.landmarks import nme

    pred = landmarks_to_image(model.predict(crops)["landmarks"].astype(np.float64), matrices, crops.shape[1])
    return 100 * nme(pred, gt, norm="inter_ocular")


def upsampled(lows: list[np.ndarray], size: int, resolvers: dict[str, Any]) -> dict[str, np.ndarray]:
    """The low-resolution crops brought back to ``size`` by bicubic interpolation and by each generator."""
    ups = {"bicubic": np.stack([cv2.resize(lo, (size, size), interpolation=cv2.INTER_CUBIC) for lo in lows])}
    return ups | {name: np.stack([r.to_size(lo, size) for lo in lows]) for name, r in resolvers.items()}


def resolvers(args: argparse.Namespace) -> dict[str, Any]:
    """``{"sr": the --model generator, NAME: each --also generator}``."""
    from facemtl.infer.superres import SuperResolver

    out = {"sr": SuperResolver(args.model, threads=2)}
    for item in args.also:
        name, _, path = item.partition("=")
        if not name or not path or name in out or name == "bicubic":
            raise ValueError(f"--also {item!r}: expected a new NAME=MODEL")
        out[name] = SuperResolver(Path(path), threads=2)
    return out


def shown(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies below it (for the report)."""
    p = Path(path).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(path)


def score(ups: np.ndarray, crops: np.ndarray, nme_values: np.ndarray) -> dict[str, float]:
    from facemtl.metrics.image import psnr, ssim

    return {"psnr": float(np.mean([psnr(u, c) for u, c in zip(ups, crops)])),
            "ssim": float(np.mean([ssim(u, c) for u, c in zip(ups, crops)])),
            "nme": float(np.mean(nme_values))}


def run_study(args: argparse.Namespace) -> tuple[dict[str, Any], dict[int, dict[str, np.ndarray]], np.ndarray]:
    """The result dict, the images of each size (``low``, ``bicubic``, ``sr``) and the original crops."""
    from facemtl.data.degrade import downsample
    from facemtl.infer.onnx_model import OnnxModel

    sizes = [int(v) for v in args.sizes.split(",")]
    model, gens = OnnxModel(args.landmark_model, threads=2), resolvers(args)
    samples = load_faces(args.root, args.holdout)
    crops, matrices, gt = full_crops(samples, model.crop_scale, model.input_size)
    result: dict[str, Any] = {
        "study": STUDY, "root": str(args.root), "holdout": args.holdout, "n": len(samples),
        "landmark_model": shown(model.path), "sr_model": shown(gens["sr"].path), "sr_scale": gens["sr"].scale,
        "also": {name: shown(r.path) for name, r in gens.items() if name != "sr"},
        "input_size": model.input_size, "crop_scale": model.crop_scale,
        "original": {"nme": float(np.mean(landmark_nme(model, crops, matrices, gt)))}, "sizes": {}}
    images = {}
    for size in sizes:
        lows = [downsample(c, size) for c in crops]
        ups = upsampled(lows, model.input_size, gens)
        result["sizes"][str(size)] = {way: score(ups[way], crops, landmark_nme(model, ups[way], matrices, gt))
                                      for way in ups}
        images[size] = {"low": np.stack(lows), **ups}
    return result, images, crops


def figure(images: dict[int, dict[str, np.ndarray]], crops: np.ndarray, n: int) -> np.ndarray:
    """Rows: low-res input (nearest-neighbour enlarged), bicubic, SR, original; columns: ``n``
    faces at each size, sizes side by side; labels on a white margin."""
    s = crops.shape[1]
    n = min(n, len(crops))
    rows = ("low-res", "bicubic", "SR", "original")
    margin, gap = 90, 8
    blocks = []
    for size, imgs in images.items():
        tiles = [[cv2.resize(imgs["low"][i], (s, s), interpolation=cv2.INTER_NEAREST) for i in range(n)],
                 list(imgs["bicubic"][:n]), list(imgs["sr"][:n]), list(crops[:n])]
        block = np.concatenate([np.concatenate(r, axis=1) for r in tiles], axis=0)
        head = np.full((24, block.shape[1], 3), 255, np.uint8)
        cv2.putText(head, f"{size} x {size} px", (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        blocks += [np.concatenate([head, block]), np.full((24 + 4 * s, gap, 3), 255, np.uint8)]
    grid = np.concatenate(blocks[:-1], axis=1)
    left = np.full((grid.shape[0], margin, 3), 255, np.uint8)
    for k, name in enumerate(rows):
        cv2.putText(left, name, (4, 24 + k * s + s // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([left, grid], axis=1)


def to_markdown(result: dict[str, Any], command: str, image: str) -> str:
    from facemtl.tools.studies import markdown_table

    rows = []
    for size, ways in result["sizes"].items():
        b = ways["bicubic"]
        for way, v in ways.items():
            name = {"sr": f"SR `{result['sr_model']}`"}.get(way, way if way == "bicubic" else f"SR `{way}`")
            rows.append([f"{size} px", name, v["psnr"], v["psnr"] - b["psnr"], f"{v['ssim']:.3f}", v["nme"],
                         f"{100 * (v['nme'] / b['nme'] - 1):+.1f} %"])
    also = "".join(f" `{name}`: `{path}`." for name, path in result["also"].items())
    return "\n".join([
        "## Super-resolution of tiny faces (Super-FAN)", "",
        f"Command: `{command}` ({result['wall_s']:.0f} s). {result['n']} faces of `{result['root']}` "
        f"(holdout `{result['holdout']}`): each face's analyzer crop ({result['input_size']} px, crop scale "
        f"{result['crop_scale']:g}, ground-truth landmark box) shrunk to the size by area averaging, then brought "
        f"back by bicubic interpolation or by the x{result['sr_scale']} generator `{result['sr_model']}` "
        f"(then resized to {result['input_size']} px). PSNR / SSIM against the full-resolution crop; NME: "
        f"`{result['landmark_model']}` on the upsampled crop, % of the outer-eye-corner distance "
        f"(on the full-resolution crops: {result['original']['nme']:.2f} %). Means over the faces.{also}", "",
        "The generators: `facemtl train --config superres` (x4, 16 -> 64 px crops of the 300-W training faces "
        "and LFW, degraded; pixel + heatmap + adversarial losses, the heatmap critic being the shipped main "
        "model's weights, frozen) or `--config superres_no_adv` (no adversarial term), then "
        "`facemtl export --checkpoint runs/NAME/last.pt --onnx OUT.onnx`.", "",
        markdown_table(["size", "upsampling", "PSNR (dB)", "vs bicubic (dB)", "SSIM", "NME (%)", "NME vs bicubic"],
                       rows),
        f"![low-res, bicubic, SR, original]({image})", ""])


def run(args: argparse.Namespace) -> int:
    from facemtl.io import FileError, shared_dir, write_atomic
    from facemtl.tools.studies import update_section

    tic = time.time()
    if args.root is None:
        args.root = shared_dir() / "data" / "300w" / "helen-train"
    try:
        result, images, crops = run_study(args)
    except (FileError, ValueError, FileNotFoundError) as e:
        print(f"facemtl study {STUDY}: {e}", file=sys.stderr)
        return 2
    result["wall_s"] = time.time() - tic
    command = " ".join(["facemtl study", STUDY] + sys.argv[3:]) if sys.argv[1:3] == ["study", STUDY] else STUDY
    result["command"] = command
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(args.figure.suffix or ".jpg", figure(images, crops, args.figure_faces),
                               [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        print(f"facemtl study {STUDY}: cannot write {args.figure} (use .jpg or .png)", file=sys.stderr)
        return 2
    write_atomic(args.figure, encoded.tobytes())
    if args.doc:
        import os

        doc = Path(args.doc)
        image = Path(os.path.relpath(args.figure, doc.parent)).as_posix()
        update_section(doc, STUDY, to_markdown(result, command, image))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.json, (json.dumps(result, indent=2) + "\n").encode())
    for size, ways in result["sizes"].items():
        print(f"{size:>3} px  " + "  ".join(f"{w}: PSNR {v['psnr']:.2f} SSIM {v['ssim']:.3f} NME {v['nme']:.2f}"
                                           for w, v in ways.items()))
    return 0
