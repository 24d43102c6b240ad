"""Bad input (issue 5): every case gives a clear error naming the file, or an empty face list."""

from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx_stub import build_model  # noqa: E402

from facemtl.infer import FaceAnalyzer  # noqa: E402
from facemtl.io import FileError, _header_size, read_image  # noqa: E402

BGR = (148, 118, 138)


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> FaceAnalyzer:
    model = build_model(tmp_path_factory.mktemp("model") / "toy.onnx", follow=False)
    return FaceAnalyzer(model, max_batch=16, flip=False)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, side: int = 20000) -> Path:
    """A complete, valid side x side grey PNG (all zero), streamed through zlib: ~2 MB on disk."""
    z = zlib.compressobj(1)
    block = bytes((side + 1) * 500)  # 500 rows, each a filter byte + side pixels
    idat = b"".join([z.compress(block) for _ in range(side // 500)] + [z.flush()])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_huge_png_refused_without_decoding(tmp_path, analyzer):
    path = huge_png(tmp_path / "huge.png")
    assert path.stat().st_size < 5_000_000
    before = _max_rss_mb()
    with pytest.raises(FileError, match="20000x20000, more than 50000000 pixels") as e:
        analyzer(path)
    assert e.value.path == str(path)
    # Decoding would need 400 MB (grey) to 1.2 GB (BGR); refusal from the header needs nothing.
    assert _max_rss_mb() - before < 100


@pytest.mark.parametrize("name, header", [
    ("huge.bmp", b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 20000, -20000, 1, 24,
                                                                          0, 0, 0, 0, 0, 0)),
    ("huge.gif", b"GIF89a" + struct.pack("<HH", 20000, 20000) + b"\x00" * 8),
    ("huge.webp", b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\x00" * 4
     + (19999).to_bytes(3, "little") * 2),
    ("huge.tif", b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + struct.pack("<HHII", 256, 4, 1, 20000)
     + struct.pack("<HHII", 257, 3, 1, 20000) + b"\x00" * 4),
])
def test_huge_headers_of_other_formats_refused(tmp_path, name, header):
    path = tmp_path / name
    path.write_bytes(header + b"\x00" * 64)
    with pytest.raises(FileError, match="20000x20000"):
        read_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_of_real_files(ext):
    ok, buf = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8))
    assert _header_size(buf.tobytes()) == (53, 37)


@pytest.mark.parametrize("case", ["empty", "text", "random", "truncated_jpg", "truncated_png", "jpeg_garbage"])
def test_unreadable_files(tmp_path, analyzer, case):
    image = np.random.default_rng(1).integers(0, 255, (120, 150, 3), dtype=np.uint8)
    jpg = cv2.imencode(".jpg", image)[1].tobytes()
    png = cv2.imencode(".png", image)[1].tobytes()
    content, expected = {
        "empty": (b"", "file is empty"),
        "text": (b"hello, this is not an image\n" * 10, "not a readable image"),
        "random": (np.random.default_rng(2).integers(0, 255, 5000, dtype=np.uint8).tobytes(), "not a readable image"),
        "truncated_jpg": (jpg[: len(jpg) * 2 // 3], "not a readable image"),
        "truncated_png": (png[: len(png) * 2 // 3], "not a readable image"),
        "jpeg_garbage": (jpg[:600] + bytes(range(256)) * 20, "not a readable image"),
    }[case]
    path = tmp_path / ("x.png" if "png" in case else "x.jpg")
    path.write_bytes(content)
    with pytest.raises(FileError, match=expected) as e:
        analyzer(path)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path, analyzer):
    with pytest.raises(FileError, match="file not found"):
        analyzer(tmp_path / "nope.jpg")


def test_grey_rgba_16bit_give_the_colour_result(tmp_path, analyzer):
    box = [[40, 30, 100, 90]]
    colour = np.full((120, 150, 3), BGR, np.uint8)
    reference = analyzer(colour, boxes=box)[0].pose.ypr
    np.testing.assert_allclose(reference, np.array(BGR) - 128, atol=1e-3)
    rgba = np.dstack([colour, np.full((120, 150), 77, np.uint8)])
    sixteen = colour.astype(np.uint16) * 257  # 16-bit value v * 257 is 8-bit v after >> 8
    for name, array in [("rgba.png", rgba), ("sixteen.png", sixteen)]:
        cv2.imwrite(str(tmp_path / name), array)
        assert read_image(tmp_path / name).dtype == np.uint8
        np.testing.assert_allclose(analyzer(tmp_path / name, boxes=box)[0].pose.ypr, reference, atol=1e-3)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((120, 150), 100, np.uint8))
    np.testing.assert_allclose(analyzer(tmp_path / "grey.png", boxes=box)[0].pose.ypr, [-28, -28, -28], atol=1e-3)
    # Arrays are accepted in the same forms.
    np.testing.assert_allclose(analyzer(rgba, boxes=box)[0].pose.ypr, reference, atol=1e-3)
    np.testing.assert_allclose(analyzer(np.full((120, 150), 100, np.uint8), boxes=box)[0].pose.ypr, [-28] * 3,
                               atol=1e-3)


def test_no_face_gives_empty_list(analyzer):
    assert analyzer(np.full((480, 640, 3), 200, np.uint8)) == []
    rng = np.random.default_rng(3)
    assert analyzer.batch([np.zeros((10, 10, 3), np.uint8), rng.integers(0, 255, (64, 64), dtype=np.uint8)],
                          [None, []]) == [[], []]


def test_many_boxes_in_several_model_calls(analyzer):
    image = np.full((400, 500, 3), BGR, np.uint8)
    xs, ys = np.meshgrid(np.arange(10) * 45 + 20, np.arange(8) * 45 + 20)
    boxes = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 30, ys.ravel() + 30], 1).astype(float)
    faces = analyzer(image, boxes=boxes)  # 80 crops, max_batch 16
    assert len(faces) == 80
    np.testing.assert_allclose([f.box for f in faces], boxes, atol=1e-3)


def test_many_real_faces_in_one_image(shared, analyzer):
    """A 4x4 mosaic of LFW photos (one face each, 250x250): most faces are found."""
    folders = sorted(p for p in (shared / "data" / "lfw").iterdir() if p.is_dir())[:16]
    tiles = [cv2.imread(str(sorted(f.glob("*.jpg"))[0])) for f in folders]
    mosaic = np.vstack([np.hstack(tiles[r * 4:(r + 1) * 4]) for r in range(4)])
    faces = analyzer(mosaic)
    centres = np.array([(f.box[:2] + f.box[2:]) / 2 for f in faces])
    cells = {(int(x // 250), int(y // 250)) for x, y in centres}
    assert len(cells) >= 12
