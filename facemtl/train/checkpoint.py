"""Checkpoints written atomically, a CSV metric log and its loss-curve plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from facemtl.io import write_atomic


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message names the file and why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint of :func:`save_atomic`, unpickled with ``weights_only=True``: only tensors,
    numbers, strings and plain containers are rebuilt, so a downloaded ``.pt`` that carries
    code (a pickled callable) is refused instead of run. :class:`CheckpointError` otherwise."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"refused: holds more than tensors, numbers, strings and plain containers "
                                    f"(maybe code): {first}") from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise CheckpointError(path, f"not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(state, dict) or not {"model", "config"} <= set(state):
        raise CheckpointError(path, "not a facemtl checkpoint (no 'model' and 'config' entries)")
    return state


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` through :func:`facemtl.io.write_atomic`: a crash mid-write leaves the
    previous checkpoint intact."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


class CsvLog:
    """Append rows of metrics to a CSV file; a row with new keys widens the columns (earlier rows
    get blanks there), so sets with different metrics share one log."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), None)

    def write(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in (self.fields or [])]
        if new:
            rows = self.read()
            self.fields = (self.fields or []) + new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)

    def read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run repeats them)."""
        rows = [r for r in self.read() if int(r["step"]) <= step]
        if self.fields is not None:
            self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.fields)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, buffer.getvalue().encode())


def plot_curves(log: CsvLog, out: str | Path, keys: list[str] | None = None) -> None:
    """Plot logged columns (default: every ``loss*`` column) against ``step`` into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log.read()
    if not rows:
        return
    keys = keys or [k for k in rows[0] if k.startswith("loss")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        # Log scale: a total under uncertainty weighting can go negative (its log-sigma terms).
        pts = [(int(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "") and float(r[k]) > 0]
        if pts:
            ax.plot(*zip(*pts), label=k)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
