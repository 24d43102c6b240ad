"""Fuzzed inputs (issue 13.12): real sample files, mutated (cut, bytes flipped, wrong types and
shapes, huge sizes), for every dataset reader and the image loader. Each case either reads or
fails with the project's own per-file error naming the file: never another exception, a hang
or a memory blow-up. Seeded: a failure names its reader and case number to replay it."""

from __future__ import annotations

import json
import re
import resource
import shutil
import signal
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest


from facemtl.io import FileError, read_image

CASES = 200
NUMBER = re.compile(rb"-?\d+(\.\d+)?(e[-+]?\d+)?")
ODD_NUMBERS = [b"1e308", b"-1e308", b"nan", b"inf", b"-inf", b"99999999999999999999999", b"abc", b"",
               b"1e-400", b"0x10", b"-1", b"2147483648", b"1.5"]
ODD_VALUES = [None, "x", "", [], {}, 1e308, -1, 10 ** 12, float("nan"), [[1, 2]], [None], {"a": 1}, True, 3.5]


# -- mutations ---------------------------------------------------------------------------------

def cut(b: bytes, rng) -> bytes:
    return b[: int(rng.integers(0, len(b)))]


def flip(b: bytes, rng) -> bytes:
    a = bytearray(b)
    for i in rng.integers(0, len(a), size=int(rng.integers(1, 12))):
        a[i] ^= int(rng.integers(1, 256))
    return bytes(a)


def splice(b: bytes, rng) -> bytes:
    i, j = sorted(rng.integers(0, len(b), size=2))
    return b[:i] + b[j:] if rng.random() < 0.5 else b[:j] + b[i:j] * int(rng.integers(2, 5)) + b[j:]


def numbers(b: bytes, rng) -> bytes:
    spans = [m.span() for m in NUMBER.finditer(b)]
    if not spans:
        return flip(b, rng)
    for k in rng.choice(len(spans), size=min(len(spans), int(rng.integers(1, 4))), replace=False)[::-1]:
        i, j = spans[k]
        b = b[:i] + ODD_NUMBERS[int(rng.integers(len(ODD_NUMBERS)))] + b[j:]
    return b


def json_types(b: bytes, rng) -> bytes:
    """Replace a random value of the JSON tree by one of another type, or delete a key."""
    data = json.loads(b)
    nodes = [(None, None, data)]
    for parent, key, node in nodes:
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        nodes += [(node, k, v) for k, v in children]
    parent, key, _ = nodes[int(rng.integers(1, len(nodes)))]
    if isinstance(parent, dict) and rng.random() < 0.3:
        del parent[key]
    else:
        parent[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    return json.dumps(data).encode()


def byte_mutations(text: bool) -> list[Callable]:
    return [cut, flip, splice] + ([numbers, numbers] if text else [])


# -- the harness -----------------------------------------------------------------------------

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


@pytest.fixture
def limits():
    """Each case gets 2 s; the address space 2 GiB more than now (a huge allocation fails fast)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), hard))
    previous = signal.signal(signal.SIGALRM, _alarm)
    yield
    signal.signal(signal.SIGALRM, previous)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def fuzz(name: str, target: Path, read: Callable[[], object], mutations: list[Callable], seed: int,
         cases: int = CASES) -> None:
    """Write ``cases`` mutations of ``target``'s bytes over it and ``read()`` each."""
    original = target.read_bytes()
    bad = []
    for case in range(cases):
        rng = np.random.default_rng((seed, case))
        mutate = mutations[case % len(mutations)]
        try:
            data = mutate(original, rng)
        except (ValueError, IndexError):  # the mutation itself did not apply
            continue
        target.write_bytes(data)
        signal.setitimer(signal.ITIMER_REAL, 2.0)
        try:
            read()
        except FileError as e:
            if target.name not in str(e) and target.parent.name not in str(e):
                bad.append(f"{name} case {case} ({mutate.__name__}): error does not name the file: {e}")
        except Hang:
            bad.append(f"{name} case {case} ({mutate.__name__}): no answer in 2 s")
        except Exception as e:  # noqa: BLE001 - exactly what this test looks for
            bad.append(f"{name} case {case} ({mutate.__name__}): {type(e).__name__}: {str(e)[:200]}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    target.write_bytes(original)
    assert not bad, f"{len(bad)} of {cases} cases:\n" + "\n".join(bad[:15])


def copy_sample(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst / src.name)
    return dst


@pytest.fixture(scope="module")
def samples(shared) -> Path:
    return shared / "data" / "format-samples"


# -- the readers ---------------------------------------------------------------------------------

def test_fuzz_pts(samples, tmp_path, limits):
    from facemtl.data.pts import read_pts_folder

    root = copy_sample(samples / "misc", tmp_path / "misc")
    fuzz("pts", root / "eos_image_0010.pts", lambda: read_pts_folder(root), byte_mutations(text=True), 1)


def test_fuzz_300vw(samples, tmp_path, limits):
    from facemtl.data.pts import read_300vw

    root = copy_sample(samples / "mmpose" / "tests" / "data" / "300vw", tmp_path / "300vw")
    fuzz("300vw", root / "001" / "annot" / "000006.pts", lambda: read_300vw(root), byte_mutations(text=True), 2)


@pytest.mark.parametrize("name", ["300w", "300wlp", "wflw", "cofw", "aflw", "lapa", "300vw"])
def test_fuzz_coco_json(samples, tmp_path, limits, name):
    from facemtl.data.coco_json import read_coco_json

    src = samples / "mmpose" / "tests" / "data" / name
    root = copy_sample(src, tmp_path / name)
    target = next(root.glob("*.json"))
    fuzz(f"coco-json {name}", target, lambda: read_coco_json(target),
         byte_mutations(text=True) + [json_types] * 4, 3, cases=CASES // 2)


def test_fuzz_dlib_xml(samples, tmp_path, limits):
    from facemtl.data.dlib_xml import read_dlib_xml

    root = copy_sample(samples / "dlib-faces", tmp_path / "dlib")
    target = root / "testing_with_face_landmarks.xml"
    fuzz("dlib-xml", target, lambda: read_dlib_xml(target), byte_mutations(text=True), 4)


def mat_mutations() -> list[Callable]:
    import io

    import scipy.io

    def retype(b: bytes, rng) -> bytes:
        mat = {k: v for k, v in scipy.io.loadmat(io.BytesIO(b)).items() if not k.startswith("__")}
        key = sorted(mat)[int(rng.integers(len(mat)))]
        choice = int(rng.integers(7))
        if choice == 0:
            del mat[key]
        else:
            mat[key] = [np.array("text"), np.zeros((0, 0)), np.full((3, 1), np.nan), np.ones((7, 7, 2)),
                        np.array([[1e308]]), np.array([{"a": 1}], dtype=object)][choice - 1]
        out = io.BytesIO()
        scipy.io.savemat(out, mat)
        return out.getvalue()

    return [cut, flip, splice, retype, retype]


def test_fuzz_mat(samples, tmp_path, limits):
    pytest.importorskip("scipy")
    from facemtl.data.mat3ddfa import read_300w_lp

    root = copy_sample(samples / "300w-lp", tmp_path / "300w-lp")
    fuzz("300w-lp mat", root / "IBUG_image_008_1_0.mat", lambda: read_300w_lp(root), mat_mutations(), 5)


def test_fuzz_aflw2000_mat(aflw2000_dev, tmp_path, limits):
    pytest.importorskip("scipy")
    from facemtl.data.mat3ddfa import read_aflw2000

    root = tmp_path / "aflw"
    root.mkdir()
    first = sorted(aflw2000_dev.glob("*.mat"))[0]
    for suffix in (".mat", ".jpg"):
        shutil.copy(first.with_suffix(suffix), root)
    fuzz("aflw2000 mat", root / first.name, lambda: read_aflw2000(root), mat_mutations(), 6)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def huge_npy_header(b: bytes, rng) -> bytes:
    """An .npz whose ``images`` array declares a huge shape over a few bytes of data."""
    shape = [(10 ** 9, 48, 48), (2 ** 40, 1, 1), (1 << 20, 48, 48)][int(rng.integers(3))]
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(100)
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(b)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.namelist():
            dst.writestr(item, npy if item == "images.npy" else src.read(item))
    return out.getvalue()


def npz_types(b: bytes, rng) -> bytes:
    import io

    with np.load(io.BytesIO(b)) as f:
        arrays = {k: f[k] for k in f.files}
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    arrays[key] = [np.zeros((3, 48)), np.zeros((2, 48, 48), np.float32), np.array(["a", "b"]),
                   np.array([99, -1]), np.zeros(0), np.array(5)][int(rng.integers(6))]
    return npz_bytes(arrays)


def test_fuzz_fer2013_npz(shared, tmp_path, limits):
    from facemtl.data.fer2013 import read_fer2013

    with np.load(shared / "data" / "expression" / "fer2013" / "test.npz") as f:
        small = {"images": f["images"][:20], "labels": f["labels"][:20], "classes": f["classes"]}
    root = tmp_path / "fer"
    root.mkdir()
    (root / "test.npz").write_bytes(npz_bytes(small))
    fuzz("fer2013 npz", root / "test.npz", lambda: read_fer2013(root, split="test"),
         [cut, flip, splice, npz_types, npz_types, huge_npy_header], 7)


# -- the image loader --------------------------------------------------------------------------

def huge_size(b: bytes, rng) -> bytes:
    """The same file declaring a huge width and height in its header."""
    a = bytearray(b)
    w, h = int(rng.integers(1, 65535)), int(rng.integers(30000, 65535))
    if a[:4] == b"\x89PNG":
        a[16:24] = struct.pack(">II", w * 1000, h)
    else:
        i = a.find(b"\xff\xc0")
        i = a.find(b"\xff\xc2") if i < 0 else i
        a[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(a)


@pytest.mark.parametrize("name", ["photos/img1.jpg", "format-samples/misc/eos_image_0010.png"])
def test_fuzz_read_image(shared, tmp_path, limits, name):
    src = shared / "data" / name
    target = tmp_path / src.name
    shutil.copy(src, target)
    fuzz(f"read_image {src.name}", target, lambda: read_image(target), [cut, flip, splice, huge_size], 8)
