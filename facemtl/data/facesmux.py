"""faces-mux: colour (and some grey) face photos, at most 128 px, one expression each.

Layout: ``root/legend.csv`` with a header ``image,emotion`` and one row per face, the image
file under ``root/images/`` (or ``root/`` itself). The faces are tight crops (brows to chin,
about cheek to cheek, as in FER2013), so the protocol crops them like FER2013
(:func:`facemtl.data.transforms.tight_crop_box`). Emotion names are mapped onto
:data:`~facemtl.data.sample.EXPRESSIONS` (``anger``/``happiness``/``sadness`` aliases accepted).

**Contempt is dropped** (8 faces; it has no class among the seven, and folding it into
disgust or angry would teach a label the other datasets do not use); ``include_contempt=True``
yields those faces with ``expression=None`` instead.

The photos come from a few people with many images each (video frames of one actor, many
photos of one politician), so ``meta["group"]`` holds the person (the file name without its
trailing ``_NNNN`` number) and the held-out validation part keeps whole people
(:func:`facemtl.data.splits.holdout`): ``load_dataset("faces-mux", root, holdout="val",
holdout_n=VAL_N)`` is the validation part (whole people, by a hash of the name) never trained
on, ``holdout="train"`` all the others.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from facemtl.data._common import require
from facemtl.contract import EXPRESSIONS
from facemtl.data.sample import Sample
from facemtl.io import FileError

_ALIASES = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise"}
_PERSON = re.compile(r"^(.*?)_?\d+$")
# Faces held out for validation (whole people, at least this many faces; about 15 % of the 3,904).
VAL_N = 600


def person(image_name: str) -> str:
    """The person of an image file name: ``George_W_Bush_0012.jpg`` -> ``George_W_Bush``."""
    stem = Path(image_name).stem
    match = _PERSON.match(stem)
    return match.group(1) if match and match.group(1) else stem


def read_faces_mux(root: str | Path, include_contempt: bool = False) -> list[Sample]:
    """Read ``root/legend.csv`` (every face; the parts come from ``load_dataset``'s ``holdout``).

    Images are read lazily (``image_path``). ``meta`` holds ``label`` (the csv's emotion) and
    ``group`` (the person). Raises :class:`FileError` naming the file and line for a missing
    legend or image, a bad header or an unknown emotion.
    """
    root = require(Path(root), "faces-mux root folder", is_dir=True)
    legend = require(root / "legend.csv", "faces-mux legend.csv")
    images = root / "images" if (root / "images").is_dir() else root
    samples = []
    try:
        with open(legend, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            if "image" not in header or "emotion" not in header:
                raise FileError(legend, f"line 1: header {header} lacks the columns image, emotion")
            col_image, col_emotion = header.index("image"), header.index("emotion")
            for row in reader:
                if not row or not "".join(row).strip():
                    continue
                where = f"line {reader.line_num}"
                if len(row) != len(header):
                    raise FileError(legend, f"{where}: {len(row)} fields, expected {len(header)}")
                name, label = row[col_image].strip(), row[col_emotion].strip().lower()
                label = _ALIASES.get(label, label)
                if label == "contempt":
                    if not include_contempt:
                        continue
                    expression = None
                elif label in EXPRESSIONS:
                    expression = EXPRESSIONS.index(label)
                else:
                    raise FileError(legend, f"{where}: unknown emotion {row[col_emotion]!r}; expected one of "
                                               f"{', '.join(EXPRESSIONS)} or contempt")
                path = images / name
                if not path.is_file():
                    raise FileError(legend, f"{where}: image {path} not found")
                samples.append(Sample(source="faces-mux", image_path=str(path), expression=expression,
                                      meta={"label": label, "group": person(name)}))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FileError(legend, f"not a readable csv ({e})") from e
    if not samples:
        raise FileError(legend, "no faces listed")
    return samples
