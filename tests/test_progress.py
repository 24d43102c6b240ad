"""Progress bars (issue 13.9): count, rate and ETA on a terminal; nothing when stderr is not one."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys

from facemtl.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_count_rate_eta_and_clears(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr("facemtl.progress.time.monotonic", lambda: next(clock))
    out = Terminal()
    with Progress(10, "predict", unit="img", stream=out, min_interval=0) as bar:
        bar.update(2, "a.jpg")  # t = 1: 2 img/s, 8 left -> 4 s
        bar.update(2, "b.jpg")  # t = 2
    text = out.getvalue()
    assert "predict 2/10 [####....................] 2.0 img/s ETA 0:04 a.jpg" in text
    assert "predict 4/10" in text and "ETA 0:03" in text
    assert text.endswith("\r\x1b[K")  # the bar's line is cleared at the end


def test_silent_when_not_a_terminal():
    out = io.StringIO()
    with Progress(3, "eval", stream=out, min_interval=0) as bar:
        for _ in range(3):
            bar.update()
    assert out.getvalue() == ""


def test_unknown_total_shows_count_and_rate():
    bar = Progress(None, "video", unit="frame", stream=Terminal())
    bar.done = 30
    assert bar.line(2.0) == "video 30 15.0 frame/s 0:02 elapsed"


def run_on_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``facemtl argv`` with stderr on a pseudo-terminal; its exit status and what it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "facemtl.cli", *argv], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            data = os.read(master, 65536) if ready else b""
        except OSError:  # the child closed the terminal
            data = b""
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


def test_predict_draws_a_bar_only_on_a_terminal(tmp_path, shared):
    photos = sorted((shared / "data" / "lfw").rglob("*.jpg"))[:6]
    for p in photos:
        (tmp_path / p.name).symlink_to(p)
    argv = ["predict", str(tmp_path), "--json", str(tmp_path / "out.json")]
    rc, drawn = run_on_terminal(argv)
    assert rc == 0
    assert "predict 6/6 [" in drawn and "img/s ETA" in drawn
    piped = subprocess.run([sys.executable, "-m", "facemtl.cli", *argv], capture_output=True, text=True)
    assert piped.returncode == 0 and "\x1b" not in piped.stderr and "ETA" not in piped.stderr
