"""Many images for ``facemtl predict``: one image's record, worker processes, resuming.

* :func:`analyse_one`: one image -> its JSON record (an ``error`` instead of an exception).
* :func:`analyse_parallel`: the same over ``workers`` processes, each with its own onnxruntime
  session, records yielded in input order.
* :func:`load_done`: the records already in a partly written ``--json`` (or ``--csv``) file, so
  ``--skip-done`` analyses only the rest and nothing written before is lost.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

if TYPE_CHECKING:
    from facemtl.infer.analyzer import FaceAnalyzer


@dataclass
class Task:
    """One input image: its path, an input ``error`` found before reading (missing file...),
    the caller's ``boxes`` (None: detect) and where to write the annotated image (None: not)."""

    path: str
    error: Optional[str] = None
    boxes: Optional[list] = None
    annotated: Optional[str] = None


def analyse_one(analyzer: FaceAnalyzer, task: Task) -> dict[str, Any]:
    """The record ``{"image", "width", "height", "faces", "error"}`` of one image."""
    import cv2

    from facemtl.infer.predict import draw_faces
    from facemtl.io import FileError, read_image, write_atomic

    record: dict[str, Any] = {"image": task.path, "width": None, "height": None, "faces": [], "error": task.error}
    if task.error is not None:
        return record
    try:
        image = read_image(task.path)
        record["height"], record["width"] = image.shape[:2]
        faces = analyzer(image, boxes=task.boxes)  # [] in the boxes file: no face, no detection
        record["faces"] = [f.to_dict() for f in faces]
        if task.annotated:
            ok, buf = cv2.imencode(Path(task.annotated).suffix, draw_faces(image, faces))
            if not ok:
                raise OSError(f"cannot encode {task.annotated}")
            write_atomic(task.annotated, buf.tobytes())
    except FileError as e:
        record["error"] = e.problem
    except Exception as e:  # one bad file must not stop the batch: report it in its record
        record["error"] = f"{type(e).__name__}: {e}"
    return record


# The analyzer of a worker process (or Dask worker), made once by worker_analyzer: settings are
# FaceAnalyzer's keyword arguments (plain, picklable values), the same in every worker.
_ANALYZER: Optional[FaceAnalyzer] = None
_SETTINGS: Optional[dict[str, Any]] = None


def worker_analyzer(settings: dict[str, Any]) -> FaceAnalyzer:
    """This process's ``FaceAnalyzer(**settings)``, made on first use and kept."""
    global _ANALYZER, _SETTINGS
    if _ANALYZER is None or _SETTINGS != settings:
        import cv2

        from facemtl.infer import onnx_model
        from facemtl.infer.analyzer import FaceAnalyzer

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        onnx_model.SPIN_WITHIN_RUN = False  # the workers share the cores
        _ANALYZER, _SETTINGS = FaceAnalyzer(**settings), dict(settings)
    return _ANALYZER


def analyse_task(task: Task, settings: dict[str, Any]) -> dict[str, Any]:
    """:func:`analyse_one` with this process's analyzer: what a worker runs."""
    return analyse_one(worker_analyzer(settings), task)


def _run(task: Task) -> dict[str, Any]:
    return analyse_one(_ANALYZER, task)


def analyse_parallel(tasks: list[Task], workers: int, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Records of ``tasks`` from ``workers`` processes, each with ``FaceAnalyzer(**settings)``, in
    input order.

    Processes are spawned, not forked: a forked onnxruntime or OpenCV thread pool can hang."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, worker_analyzer, (settings,)) as pool:
        yield from pool.imap(_run, tasks, chunksize=1)


def load_done(json_path: Optional[Path], csv_path: Optional[Path]) -> dict[str, dict[str, Any]]:
    """``{image: record}`` of the images analysed without error in an earlier run's output.

    The JSON is read line by line (one record per line, as :func:`~facemtl.infer.predict.dumps`
    writes it), so a file cut anywhere still gives every complete record. Without a JSON, the
    CSV gives the images with at least one face row (their rows kept as they are); its last
    image is left out, as its rows may be incomplete. A missing or empty file gives ``{}``."""
    if json_path is not None and json_path.is_file():
        done = {}
        for line in json_path.read_text(errors="replace").splitlines():
            line = line.strip().rstrip(",")
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line cut mid-way
            if isinstance(record, dict) and isinstance(record.get("image"), str) and record.get("error") is None:
                done[record["image"]] = record
        return done
    if csv_path is not None and csv_path.is_file():
        return _done_from_csv(csv_path)
    return {}


def _done_from_csv(path: Path) -> dict[str, dict[str, Any]]:
    """Records holding the CSV rows of each image (``"rows"``, written back as they were)."""
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header, done = rows[0], {}
    for row in rows[1:]:
        if len(row) != len(header) or row[-1]:
            continue  # a cut row, or a failed image (to redo)
        done.setdefault(row[0], []).append(row)
    if done:
        done.pop(next(reversed(done)))  # the last image may have lost rows
    return {image: {"image": image, "width": None, "height": None, "faces": [None] * len(rows), "error": None,
                    "rows": rows, "header": header} for image, rows in done.items()}


def in_input_order(paths: Iterable[str], done: dict[str, dict[str, Any]],
                   new: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of ``paths`` in order (new ones win), then earlier records of images no longer
    given: a resumed run drops nothing it wrote before."""
    paths = list(paths)
    records = [new.get(p) or done[p] for p in paths if p in new or p in done]
    given = set(paths)
    return records + [r for p, r in done.items() if p not in given]
