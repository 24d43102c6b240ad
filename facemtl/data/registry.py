"""Named datasets: ``load_dataset(name, root)`` returns the samples of one format's reader.

Each entry points at ``module:function``; the function takes the dataset root (a folder or a
file, as its docstring says) plus keyword options and returns a list of :class:`Sample`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from facemtl.data.sample import Sample

DATASETS: dict[str, str] = {
    # pose + landmarks
    "300w-lp": "facemtl.data.mat3ddfa:read_300w_lp",
    "aflw2000": "facemtl.data.mat3ddfa:read_aflw2000",
    "synth": "facemtl.data.mat3ddfa:read_synth",
    "biwi": "facemtl.data.biwi:read_biwi",
    # landmarks
    "300w": "facemtl.data.pts:read_pts_folder",
    "300vw": "facemtl.data.pts:read_300vw",
    "coco-json": "facemtl.data.coco_json:read_coco_json",
    "wflw": "facemtl.data.wflw:read_wflw",
    "cofw": "facemtl.data.cofw:read_cofw",
    "aflw": "facemtl.data.aflw:read_aflw",
    "afw": "facemtl.data.afw:read_afw",
    "dlib-xml": "facemtl.data.dlib_xml:read_dlib_xml",
    # detection
    "wider": "facemtl.data.wider:read_wider",
    "synth-scenes": "facemtl.data.mat3ddfa:read_synth_scenes",
    # expression
    "fer2013": "facemtl.data.fer2013:read_fer2013",
    "ckplus": "facemtl.data.ckplus:read_ckplus",
    "rafdb": "facemtl.data.rafdb:read_rafdb",
    "faces-mux": "facemtl.data.facesmux:read_faces_mux",
}


def load_dataset(name: str, root: str | Path, holdout: str | None = None, holdout_n: int = 100,
                 **options: Any) -> list[Sample]:
    """Read dataset ``name`` (a key of :data:`DATASETS`) from ``root``.

    ``holdout="val"`` keeps only the ``holdout_n`` faces held out for validation,
    ``holdout="train"`` all the others (:func:`facemtl.data.splits.holdout`).
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    module_name, function_name = DATASETS[name].split(":")
    reader = getattr(importlib.import_module(module_name), function_name)
    samples = reader(Path(root), **options)
    if holdout is None:
        return samples
    from facemtl.data.splits import holdout as split

    return split(samples, holdout, int(holdout_n))
