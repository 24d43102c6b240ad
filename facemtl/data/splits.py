"""Held-out splits that do not depend on file order: a face goes to validation by a hash of its name.

``holdout(samples, "val", n)`` keeps the ``n`` samples whose image file names hash lowest
(MD5 of the name, not the path, so the split is the same wherever the data lies);
``holdout(samples, "train", n)`` keeps all the others. Both parts together are the whole set,
with no overlap, and adding files elsewhere in the folder moves no face between the parts
beyond the ``n`` cut.

Samples with ``meta["group"]`` (e.g. the person of a photo) are held out by whole groups, by a
hash of the group name, until at least ``n`` faces are held out: several photos of one person
never land on both sides.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from facemtl.data.sample import Sample

PARTS = ("train", "val")


def _key(sample: Sample) -> str:
    name = Path(sample.image_path).name if sample.image_path else sample.meta.get("name", "")
    return hashlib.md5(f"{name}|{sample.meta.get('face', 0)}".encode()).hexdigest()


def _group_key(sample: Sample) -> str:
    group = sample.meta.get("group")
    return _key(sample) if group is None else hashlib.md5(f"group|{group}".encode()).hexdigest()


def holdout(samples: Sequence[Sample], part: str, n: int = 100) -> list[Sample]:
    """The ``part`` ("train" or "val") of ``samples`` with ``n`` faces held out for validation."""
    if part not in PARTS:
        raise ValueError(f"holdout part must be one of {PARTS}, not {part!r}")
    members: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        members.setdefault(_group_key(s), []).append(i)
    val: set[int] = set()
    for key in sorted(members):
        if len(val) >= n:
            break
        val.update(members[key])
    return [s for i, s in enumerate(samples) if (i in val) == (part == "val")]
