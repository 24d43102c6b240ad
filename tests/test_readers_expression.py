"""FER2013, CK+ and RAF-DB readers on the real shared files and on small written ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.contract import EXPRESSIONS
from facemtl.data.ckplus import read_ckplus
from facemtl.data.fer2013 import load_fer2013_arrays, read_fer2013
from facemtl.data.rafdb import read_rafdb
from facemtl.data.registry import load_dataset
from facemtl.io import FileError

FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# ---------------------------------------------------------------- FER2013


@pytest.mark.parametrize("split, count", [("train", 28709), ("validation", 3589), ("test", 3589)])
def test_fer2013_real_npz(shared: Path, split: str, count: int):
    root = shared / "data" / "expression" / "fer2013"
    images, labels = load_fer2013_arrays(root, split)
    assert images.shape == (count, 48, 48) and images.dtype == np.uint8
    with np.load(root / f"{split}.npz") as raw:
        names = raw["classes"][raw["labels"]]
        np.testing.assert_array_equal(images, raw["images"])
    assert [EXPRESSIONS[i] for i in labels[:200]] == list(names[:200])
    assert np.bincount(labels, minlength=7)[EXPRESSIONS.index("disgust")] == np.sum(names == "disgust")

    samples = read_fer2013(root, split=split)
    assert len(samples) == count
    sample = samples[-1]
    image = sample.load_image()
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, 1], images[-1])
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])
    assert not image.flags.writeable  # a view of the shared grey array
    assert sample.expression == labels[-1] and sample.meta == {"split": split, "index": count - 1}
    assert sample.source == "fer2013"


def _faces(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


def test_fer2013_csv_splits_and_labels(tmp_path: Path):
    faces = _faces(4)
    usages = ["Training", "PublicTest", "Training", "PrivateTest"]
    emotions = [0, 3, 6, 5]  # angry, happy, neutral, surprise
    _write_csv(tmp_path / "fer2013.csv",
               [(str(e), " ".join(map(str, f.ravel())), u) for e, f, u in zip(emotions, faces, usages)])

    images, labels = load_fer2013_arrays(tmp_path, "train")  # folder holding fer2013.csv
    np.testing.assert_array_equal(images, faces[[0, 2]])
    assert [EXPRESSIONS[i] for i in labels] == ["angry", "neutral"]
    images, labels = load_fer2013_arrays(tmp_path / "fer2013.csv", "validation")
    np.testing.assert_array_equal(images, faces[[1]])
    assert [EXPRESSIONS[i] for i in labels] == ["happy"]
    samples = read_fer2013(tmp_path / "fer2013.csv", split="test")
    assert len(samples) == 1 and EXPRESSIONS[samples[0].expression] == "surprise"
    np.testing.assert_array_equal(samples[0].load_image()[:, :, 2], faces[3])


def test_fer2013_npz_maps_labels_by_class_name(tmp_path: Path):
    faces = _faces(3)
    classes = np.array(["neutral", "sad", "happy", "angry", "fear", "surprise", "disgust"])  # not FER's order
    np.savez(tmp_path / "test.npz", images=faces, labels=np.array([1, 3, 0], np.uint8), classes=classes)
    images, labels = load_fer2013_arrays(tmp_path, "test")
    np.testing.assert_array_equal(images, faces)
    assert [EXPRESSIONS[i] for i in labels] == ["sad", "angry", "neutral"]


@pytest.mark.parametrize("row, problem", [
    (("3", "1 2 3", "Training"), "line 3: 3 pixels, expected 2304"),
    (("3", " ".join(["7"] * 2303 + ["x"]), "Training"), "line 3: not an integer"),
    (("3", " ".join(["300"] * 2304), "Training"), "line 3: pixel values outside 0..255"),
    (("7", " ".join(["1"] * 2304), "Training"), "line 3: emotion 7 not in 0..6"),
    (("3", " ".join(["1"] * 2304), "Validation"), "line 3: unknown Usage 'Validation'"),
])
def test_fer2013_csv_errors_name_file_and_line(tmp_path: Path, row, problem):
    good = ("0", " ".join(["5"] * 2304), "Training")
    path = _write_csv(tmp_path / "fer2013.csv", [good, row])
    with pytest.raises(FileError, match=problem) as error:
        load_fer2013_arrays(path, "train")
    assert error.value.path == str(path)


def test_fer2013_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(FileError, match="no train.npz or fer2013.csv"):
        read_fer2013(tmp_path)
    (tmp_path / "fer2013.csv").write_text("emotion,pixels\n0,1 2\n")
    with pytest.raises(FileError, match=r"lacks columns \['Usage'\]"):
        load_fer2013_arrays(tmp_path, "train")
    np.savez(tmp_path / "train.npz", images=_faces(2), labels=np.array([0, 1]), classes=np.array(["angry", "bored"]))
    with pytest.raises(FileError, match=r"unknown classes \['bored'\]") as error:
        load_fer2013_arrays(tmp_path, "train")
    assert error.value.path == str(tmp_path / "train.npz")
    np.savez(tmp_path / "train.npz", images=_faces(2), labels=np.array([0, 7]), classes=np.array(FER_ORDER))
    with pytest.raises(FileError, match="label 7 at index 1"):
        load_fer2013_arrays(tmp_path, "train")
    np.savez(tmp_path / "train.npz", images=_faces(2), labels=np.array([0, 1]))
    with pytest.raises(FileError, match=r"missing arrays \['classes'\]"):
        load_fer2013_arrays(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_fer2013_arrays(tmp_path, "val")


# ---------------------------------------------------------------- CK+


def test_ckplus_real(shared: Path):
    root = shared / "data" / "expression" / "ckplus48"
    with_contempt = read_ckplus(root, include_contempt=True)
    assert len(with_contempt) == 981
    samples = load_dataset("ckplus", root)
    assert len(samples) == 981 - len(list((root / "contempt").glob("*.png")))
    assert {s.meta["label"] for s in samples} == {"anger", "disgust", "fear", "happy", "sadness", "surprise"}
    for s in samples:
        assert EXPRESSIONS[s.expression] == {"anger": "angry", "sadness": "sad"}.get(s.meta["label"], s.meta["label"])
    contempt = [s for s in with_contempt if s.meta["label"] == "contempt"]
    assert contempt and all(s.expression is None for s in contempt)
    first = samples[0]
    assert first.meta == {"label": "anger", "subject": "S010"} and first.image is None
    image = first.load_image()
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8


def test_ckplus_written_and_errors(tmp_path: Path):
    with pytest.raises(FileError, match="root folder not found"):
        read_ckplus(tmp_path / "absent")
    (tmp_path / "happy").mkdir()
    with pytest.raises(FileError, match="no images"):
        read_ckplus(tmp_path)
    cv2.imwrite(str(tmp_path / "happy" / "face.png"), np.full((48, 48), 90, np.uint8))
    (tmp_path / "happy" / "notes.txt").write_text("not an image")
    (samples,) = read_ckplus(tmp_path)
    assert EXPRESSIONS[samples.expression] == "happy" and samples.meta == {"label": "happy"}
    assert (samples.load_image() == 90).all()
    (tmp_path / "bored").mkdir()
    with pytest.raises(FileError, match="unknown expression folder") as error:
        read_ckplus(tmp_path)
    assert error.value.path == str(tmp_path / "bored")


# ---------------------------------------------------------------- RAF-DB


def _write_rafdb(root: Path, lines: list[str], aligned: bool = True) -> None:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    folder = root / "Image" / ("aligned" if aligned else "original")
    folder.mkdir(parents=True)
    for i, line in enumerate(lines):
        name = Path(line.split()[0])
        file = f"{name.stem}_aligned{name.suffix}" if aligned else name.name
        cv2.imwrite(str(folder / file), np.full((100, 100, 3), 10 * i, np.uint8))


def test_rafdb_written(tmp_path: Path):
    lines = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7", "test_0002.jpg 6", "train_00003.jpg 4"]
    _write_rafdb(tmp_path, lines)
    train = read_rafdb(tmp_path)
    assert [s.meta["name"] for s in train] == ["train_00001.jpg", "train_00002.jpg", "train_00003.jpg"]
    assert [EXPRESSIONS[s.expression] for s in train] == ["sad", "surprise", "happy"]
    assert train[0].image_path == str(tmp_path / "Image" / "aligned" / "train_00001_aligned.jpg")
    assert train[1].load_image().shape == (100, 100, 3) and train[0].source == "rafdb"
    test = load_dataset("rafdb", tmp_path, split="test")
    assert [EXPRESSIONS[s.expression] for s in test] == ["neutral", "angry"]
    assert len(read_rafdb(tmp_path, split=None)) == 5
    with pytest.raises(FileError, match=r"original: image folder not found \(aligned=True reads"):
        read_rafdb(tmp_path, aligned=False)


def test_rafdb_original_images_and_label_file_at_root(tmp_path: Path):
    _write_rafdb(tmp_path, ["test_0001.jpg 2"], aligned=False)
    (tmp_path / "EmoLabel" / "list_patition_label.txt").rename(tmp_path / "list_patition_label.txt")
    (sample,) = read_rafdb(tmp_path, split="test", aligned=False)
    assert sample.image_path == str(tmp_path / "Image" / "original" / "test_0001.jpg")
    assert EXPRESSIONS[sample.expression] == "fear"


@pytest.mark.parametrize("line, problem", [
    ("train_00002.jpg 8", "line 2: label 8 not in 1..7"),
    ("train_00002.jpg", "line 2: expected '<image name> <label 1-7>'"),
    ("val_00002.jpg 3", "line 2: image name 'val_00002.jpg' does not start with train_ or test_"),
])
def test_rafdb_malformed_label_file(tmp_path: Path, line: str, problem: str):
    _write_rafdb(tmp_path, ["train_00001.jpg 3"])
    label_file = tmp_path / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(f"train_00001.jpg 3\n{line}\n")
    with pytest.raises(FileError, match=problem) as error:
        read_rafdb(tmp_path, split=None)
    assert error.value.path == str(label_file)


def test_rafdb_missing_files(tmp_path: Path):
    with pytest.raises(FileError, match="no EmoLabel/list_patition_label.txt"):
        read_rafdb(tmp_path)
    _write_rafdb(tmp_path, ["train_00001.jpg 3", "train_00002.jpg 3"])
    missing = tmp_path / "Image" / "aligned" / "train_00002_aligned.jpg"
    missing.unlink()
    with pytest.raises(FileError, match=r"image \(listed on line 2 of .*\) not found") as error:
        read_rafdb(tmp_path)
    assert error.value.path == str(missing)
