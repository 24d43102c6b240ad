"""``facemtl predict PATH...``: every face of every image, as JSON, CSV and annotated images.

PATH may be files, folders (their image files, not recursive) or quoted globs. A bad input
(missing, empty, corrupt, non-image or oversized file, invalid box) becomes a record with an
``error`` message; the batch goes on and failures are listed at the end (exit status 1).
Output files are written whole at the end through a temporary file and a rename, so an
existing file is only ever replaced by a complete one. With no output option the JSON goes
to stdout.

JSON: a list of ``{"image", "width", "height", "faces": [Face.to_dict()], "error"}``.
CSV: one row per face (an image without faces has no row; a failed image has one row with
its ``error``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from facemtl.contract import LANDMARK_COLUMNS, N_LANDMARKS, expression_columns
from facemtl.infer.detector import add_detector_arguments, analyzer_settings
from facemtl.io import IMAGE_SUFFIXES, write_atomic
from facemtl.progress import Progress



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or quoted globs")
    parser.add_argument("--out-dir", type=Path, help="write annotated images (box, landmarks, pose axes, labels) here")
    parser.add_argument("--json", type=Path, help="write the records as JSON to this file")
    parser.add_argument("--csv", type=Path, help="write one row per face to this CSV file")
    parser.add_argument("--boxes", type=Path,
                        help="JSON {image file name (or path as given): [[x1, y1, x2, y2], ...]}: use these "
                             "boxes instead of detecting; [] means no face; images not listed are detected")
    add_detector_arguments(parser)
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2; per worker with --workers)")
    parser.add_argument("--super-resolve", action="store_true",
                        help="super-resolve faces smaller than --sr-threshold px before the model (single process)")
    parser.add_argument("--sr-threshold", type=float, default=40.0, help="face size (px) below which to super-resolve")
    parser.add_argument("--sr-model", type=Path, help="super-resolution ONNX model (default: the shipped one)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, each with its own model session; records stay in input order")
    parser.add_argument("--skip-done", action="store_true",
                        help="resume: keep the images already in --json (else --csv) and analyse only the rest")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run on a Dask cluster (scheduler address, or 'local' / 'local:N' for N local "
                             "worker processes); needs facemtl[distributed]")


def expand_inputs(paths: list[str]) -> list[tuple[str, Optional[str]]]:
    """``(path, error)`` per input image in order, without duplicates: folders and globs give
    their image files; a missing path, an empty folder or a glob without match gives an error."""
    items: list[tuple[str, Optional[str]]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(str(f) for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            items += [(f, None) for f in files] if files else [(p, "folder has no image files")]
        elif path.is_file():
            items.append((p, None))
        elif glob.has_magic(p):
            files = sorted(f for f in glob.glob(p, recursive=True)
                           if Path(f).is_file() and Path(f).suffix.lower() in IMAGE_SUFFIXES)
            items += [(f, None) for f in files] if files else [(p, "no image file matches this pattern")]
        else:
            items.append((p, "file not found"))
    seen: set[str] = set()
    unique = []
    for path, error in items:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, error))
    return unique


def read_boxes(path: Path) -> dict[str, list[list[float]]]:
    """The ``--boxes`` file: ``{image file name: [[x1, y1, x2, y2], ...]}``; ValueError naming the file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the boxes file ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{image file name: [[x1, y1, x2, y2], ...]}}")
    for name, boxes in data.items():
        if not (isinstance(boxes, list) and all(
                isinstance(b, list) and len(b) in (4, 5) and all(isinstance(v, (int, float)) for v in b)
                for b in boxes)):
            raise ValueError(f"{path}: entry {name!r} is not a list of [x1, y1, x2, y2] boxes")
    return data


def dumps(records: list[dict[str, Any]]) -> str:
    """The JSON list with one image record per line."""
    return "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"


def draw_faces(image, faces, prefixes: Optional[list[str]] = None) -> Any:
    """Draw each face's box (with expression, its probability, the detector score and the pose angles,
    after its ``prefixes`` entry: the video's track id), landmarks (red where the model thinks they
    are hidden) and pose axes on a copy of ``image``, all sized by the face."""
    import numpy as np

    from facemtl.geometry.draw import draw_axes, draw_box, draw_landmarks

    canvas = image.copy()
    labels: list = []  # label rectangles drawn so far: neighbours' labels must not cover each other
    for k, face in enumerate(faces):
        side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
        thickness = max(1, round(side / 150))  # sized by the face, not the image
        label = ("" if prefixes is None else prefixes[k]) + face.label()
        if face.pose is not None:
            label += f" y{face.pose.yaw:+.0f} p{face.pose.pitch:+.0f} r{face.pose.roll:+.0f}"
        draw_box(canvas, face.box, label=label, thickness=thickness, taken=labels)
        if face.landmarks is not None:
            visible = None if face.visibility is None else (face.visibility >= 0.5).astype(np.float64)
            draw_landmarks(canvas, face.landmarks, visible, radius=max(1.0, side / 80))
        if face.pose is not None:
            centre = face.landmarks[30] if face.landmarks is not None else (face.box[:2] + face.box[2:]) / 2
            draw_axes(canvas, face.pose.matrix, centre, side / 2, thickness=thickness)
    return canvas


def csv_rows(records: list[dict[str, Any]], expressions: tuple[str, ...]) -> list[list[Any]]:
    """Header and rows of the CSV: one row per face, one row per failed image."""
    header = (["image", "face", "x1", "y1", "x2", "y2", "score", "presence", "yaw", "pitch", "roll",
               "yaw_std", "pitch_std", "roll_std", "expression"] + expression_columns(expressions)
              + LANDMARK_COLUMNS
              + ["error"])
    rows: list[list[Any]] = [header]
    blank = [""] * (len(header) - 2)
    for r in records:
        if "rows" in r:  # from an earlier run's CSV (--skip-done): written back as they were
            if r["header"] != header:
                raise ValueError("the CSV to resume has other columns (another model?): give a new --csv")
            rows += r["rows"]
            continue
        if r["error"] is not None:
            rows.append([r["image"]] + blank + [r["error"]])
        for k, f in enumerate(r["faces"]):
            pose, expr = f["pose"], f["expression"]
            lm = f["landmarks"]
            row = [r["image"], k] + f["box"] + [f["score"], f["presence"]]
            row += [pose[a] for a in ("yaw", "pitch", "roll")] if pose else [""] * 3
            row += (pose["uncertainty"] if pose and pose["uncertainty"] else [""] * 3)
            row += [expr["label"]] + [expr["probs"].get(n, "") for n in expressions] if expr else [""] * (
                1 + len(expressions))
            row += [p[0] for p in lm] + [p[1] for p in lm] if lm else [""] * (2 * N_LANDMARKS)
            row += f["visibility"] if f["visibility"] else [""] * N_LANDMARKS
            rows.append(row + [""])
    return [["" if v is None else v for v in row] for row in rows]


def _annotated_path(out_dir: Path, source: str, used: set[Path]) -> Path:
    """``out_dir/<name>``; ``<stem>-1<suffix>``... when that would overwrite the input or an
    image already written in this run. Formats OpenCV cannot write become ``.jpg``."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff",
                                                          ".webp"} else ".jpg"
    candidate, k = out_dir / (src.stem + suffix), 0
    while candidate.resolve() in used or candidate.resolve() == src.resolve():
        k += 1
        candidate = out_dir / f"{src.stem}-{k}{suffix}"
    used.add(candidate.resolve())
    return candidate


def run(args: argparse.Namespace) -> int:
    import cv2

    from facemtl.infer.analyzer import FaceAnalyzer
    from facemtl.io import FileError
    from facemtl.infer.batch import load_done

    # Decoder errors are reported per file below; OpenCV's own log lines would only repeat them.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    if args.workers < 1:
        print(f"facemtl predict: --workers must be >= 1, not {args.workers}", file=sys.stderr)
        return 2
    try:
        given = read_boxes(args.boxes) if args.boxes else {}
        settings = analyzer_settings(args)
        analyzer = FaceAnalyzer(**settings)
        done = load_done(args.json, args.csv) if args.skip_done else {}
    except (FileError, ValueError, OSError) as e:
        print(f"facemtl predict: {e}", file=sys.stderr)
        return 2
    items = expand_inputs(args.paths)
    tasks = _tasks(items, given, args.out_dir, skip=set(done))
    if done:
        print(f"facemtl predict: {len(done)} images already done, {len(tasks)} to go", file=sys.stderr)
    new: dict[str, dict[str, Any]] = {}
    progress = Progress(len(tasks), "predict", unit="img", enabled=None if len(tasks) > 1 else False)
    try:
        for k, record in enumerate(_records(tasks, analyzer, settings, args), 1):
            new[record["image"]] = record
            progress.update(1, Path(record["image"]).name)
            if k % FLUSH_EVERY == 0 and k < len(tasks):  # a killed run leaves this much to --skip-done
                _write_outputs(args, [p for p, _ in items], done, new, analyzer.expressions)
        progress.close()
        records = _write_outputs(args, [p for p, _ in items], done, new, analyzer.expressions)
    except (OSError, ValueError) as e:
        progress.close()
        print(f"facemtl predict: cannot write output: {e}", file=sys.stderr)
        return 2
    if not (args.json or args.csv or args.out_dir):
        sys.stdout.write(dumps(records))
    failed = [r for r in records if r["error"] is not None]
    n_faces = sum(len(r["faces"]) for r in records)
    print(f"facemtl predict: {len(records)} images, {n_faces} faces, {len(failed)} failed", file=sys.stderr)
    for r in failed:
        print(f"  {r['image']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


# With --json/--csv, the outputs are rewritten (whole, atomically) after every this many images.
FLUSH_EVERY = 100


def _tasks(items: list[tuple[str, Optional[str]]], given: dict[str, list], out_dir: Optional[Path],
           skip: set[str]) -> list:
    """One :class:`~facemtl.infer.batch.Task` per image not in ``skip``; annotated image names
    are chosen here, so that workers never write to the same file."""
    from facemtl.infer.batch import Task

    used: set[Path] = set()
    tasks = []
    for path, error in items:
        if path in skip:
            continue
        boxes = given.get(path, given.get(Path(path).name))
        annotated = str(_annotated_path(out_dir, path, used)) if out_dir and error is None else None
        tasks.append(Task(path, error, boxes, annotated))
    return tasks


def _records(tasks: list, analyzer: Any, settings: dict[str, Any], args: argparse.Namespace):
    """The records of ``tasks`` in order: here, in worker processes, or on a Dask cluster."""
    from facemtl.infer import batch

    if args.dask:
        from facemtl.infer.distributed import analyse_on_dask

        return analyse_on_dask(tasks, args.dask, settings)
    if args.workers > 1 and len(tasks) > 1:
        return batch.analyse_parallel(tasks, min(args.workers, len(tasks)), settings)
    return (batch.analyse_one(analyzer, t) for t in tasks)


def _write_outputs(args: argparse.Namespace, paths: list[str], done: dict, new: dict,
                   expressions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Write the JSON and CSV of every record so far (earlier runs' included); the records."""
    from facemtl.infer.batch import in_input_order

    records = in_input_order(paths, done, new)
    if args.json:
        write_atomic(args.json, dumps([{k: v for k, v in r.items() if k not in ("rows", "header")}
                                       for r in records]).encode())
    if args.csv:
        import csv
        import io

        text = io.StringIO()
        csv.writer(text).writerows(csv_rows(records, expressions))
        write_atomic(args.csv, text.getvalue().encode())
    return records
