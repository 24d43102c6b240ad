"""A tiny contract-conforming ONNX model (``docs/model-format.md``), built with onnx.helper, for tests.

``build_model(path)``: the landmarks are a fixed face layout (``layout``; by default
``face_layout()`` spanning ``1/6 .. 5/6`` of the crop, so at crop scale 1.5 their tight box is
exactly the crop's box). With ``follow=True`` (the default) they are shifted by the offset of the
crop's brightness centroid from the crop centre: a bright shape on a dark background is thus
followed like a face (the landmark box moves onto the shape). With ``follow=False`` they are the
layout itself, whatever the crop. Pose is ``mean(B, G, R) of the crop - 128`` degrees,
``pose_std = [1, 2, 3]``, visibility a ramp 0 .. 1, expression a softmax of the mean colour,
``presence`` (only when asked for in ``outputs``) the crop's mean brightness / 255.
Every output is a simple function of the crop, so every result can be computed by hand (tests
that check such values run ``FaceAnalyzer(..., flip=False)``: flip averaging would mix in the
mirrored crop's answer).

``squares_frame`` draws such a scene (white squares on a dark frame) and ``BlobDetector`` is a
detector for it (bright blobs as faces).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

EXPRESSION_WEIGHTS = np.array([[1, 0, 0, 0, 0, 0, -1], [0, 1, 0, 0, 0, -1, 0], [0, 0, 1, 0, -1, 0, 0]],
                              dtype=np.float32)
EXPRESSIONS = "neutral,happy,sad,surprise,fear,disgust,angry"


def face_layout() -> np.ndarray:
    """A plausible iBUG-68 layout (jaw, brows, nose, eyes, outer and inner lips) in the unit square,
    touching all four sides."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([0.5 - 0.5 * np.cos(t), 0.25 + 0.75 * np.sin(t)], 1)
    brow = np.stack([np.linspace(0.1, 0.4, 5), [0.1, 0.03, 0.0, 0.03, 0.1]], 1)
    brows = np.concatenate([brow, np.stack([1 - brow[::-1, 0], brow[::-1, 1]], 1)])
    nose = np.concatenate([np.stack([np.full(4, 0.5), np.linspace(0.3, 0.55, 4)], 1),
                           np.stack([np.linspace(0.4, 0.6, 5), [0.62, 0.64, 0.65, 0.64, 0.62]], 1)])
    eye = np.array([[0.2, 0.3], [0.25, 0.27], [0.3, 0.27], [0.35, 0.3], [0.3, 0.32], [0.25, 0.32]])
    eyes = np.concatenate([eye, np.stack([1 - eye[[3, 2, 1, 0, 5, 4], 0], eye[[3, 2, 1, 0, 5, 4], 1]], 1)])
    a = np.linspace(0, 2 * np.pi, 13)[:12]
    outer = np.stack([0.5 - 0.15 * np.cos(a), 0.8 - 0.06 * np.sin(a)], 1)
    a = np.linspace(0, 2 * np.pi, 9)[:8]
    inner = np.stack([0.5 - 0.1 * np.cos(a), 0.8 - 0.03 * np.sin(a)], 1)
    points = np.concatenate([jaw, brows, nose, eyes, outer, inner])
    assert points.shape == (68, 2)
    return (points - points.min(0)) / (points.max(0) - points.min(0))


def build_model(path: Path, size: int = 32, crop_scale: float = 1.5, follow: bool = True,
                outputs: tuple[str, ...] = ("pose", "pose_std", "landmarks", "visibility", "expression"),
                layout: np.ndarray | None = None, batch: int | str = "N", metadata: bool = True) -> Path:
    """Write the stub model to ``path`` (module docstring); returns ``path``.

    ``layout``: (68, 2) landmarks in normalised crop coordinates (default: ``face_layout()``
    filling the landmark box). ``batch``: the batch dimension (an int for a fixed-batch export).
    ``metadata=False`` leaves out the ``facemtl_*`` metadata (an invalid model).
    """
    if layout is None:
        layout = 0.5 + (face_layout() - 0.5) / crop_scale
    coords = (np.arange(size) + 0.5) / size  # normalised crop coordinate of each pixel column / row

    def c(name: str, a: np.ndarray) -> onnx.TensorProto:
        return helper.make_tensor(name, TensorProto.FLOAT, np.shape(a), np.asarray(a, np.float32).ravel())

    inits = [c("c128", np.array(128.0)), c("zero", np.array(0.0)), c("inv255", np.array(1 / 255)),
             c("half", np.array(0.5)), c("eps", np.array(1e-3)), c("eps_half", np.array(0.5e-3)),
             c("layout", layout), c("std", np.array([1.0, 2.0, 3.0])), c("vis", np.linspace(0, 1, 68)),
             c("w_expr", EXPRESSION_WEIGHTS), c("coords", coords[:, None]),
             helper.make_tensor("shape_n12", TensorProto.INT64, [3], [-1, 1, 2]),
             helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
             helper.make_tensor("axis2", TensorProto.INT64, [1], [2])]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0),  # (N, 3) BGR means
        helper.make_node("Mul", ["mean", "zero"], ["mean0"]),
        helper.make_node("ReduceMean", ["mean0"], ["n0"], axes=[1], keepdims=1),  # (N, 1) zeros
        helper.make_node("Sub", ["mean", "c128"], ["pose"]),
        helper.make_node("Add", ["mean0", "std"], ["pose_std"]),
        helper.make_node("Add", ["n0", "vis"], ["visibility"]),
        helper.make_node("Mul", ["mean", "inv255"], ["mean01"]),
        helper.make_node("MatMul", ["mean01", "w_expr"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["expression"], axis=-1),
        helper.make_node("ReduceMean", ["mean01"], ["presence"], axes=[1], keepdims=0),
    ]
    if follow:
        # Brightness centroid (cx, cy) in normalised crop coordinates; 0.5 for a black crop.
        nodes += [
            helper.make_node("ReduceMean", ["image"], ["grey"], axes=[1], keepdims=0),  # (N, S, S)
            helper.make_node("ReduceSum", ["grey", "axis1"], ["cols"], keepdims=0),  # (N, S) over rows
            helper.make_node("ReduceSum", ["grey", "axis2"], ["rows"], keepdims=0),  # (N, S) over columns
            helper.make_node("ReduceSum", ["cols", "axis1"], ["total"], keepdims=1),  # (N, 1)
            helper.make_node("Add", ["total", "eps"], ["total_eps"]),
            helper.make_node("MatMul", ["cols", "coords"], ["sx"]),
            helper.make_node("MatMul", ["rows", "coords"], ["sy"]),
            helper.make_node("Add", ["sx", "eps_half"], ["sx_eps"]),
            helper.make_node("Add", ["sy", "eps_half"], ["sy_eps"]),
            helper.make_node("Div", ["sx_eps", "total_eps"], ["cx"]),
            helper.make_node("Div", ["sy_eps", "total_eps"], ["cy"]),
            helper.make_node("Concat", ["cx", "cy"], ["centroid"], axis=1),  # (N, 2)
            helper.make_node("Sub", ["centroid", "half"], ["shift"]),
            helper.make_node("Reshape", ["shift", "shape_n12"], ["shift3"]),
            helper.make_node("Add", ["shift3", "layout"], ["landmarks"]),
        ]
    else:
        nodes += [helper.make_node("Unsqueeze", ["n0", "axis2"], ["n00"]),  # (N, 1, 1) zeros
                  helper.make_node("Add", ["n00", "layout"], ["landmarks"])]
    shapes = {"pose": [batch, 3], "pose_std": [batch, 3], "landmarks": [batch, 68, 2], "visibility": [batch, 68],
              "expression": [batch, 7], "presence": [batch]}
    graph = helper.make_graph(
        nodes, "stub", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata:
        helper.set_model_props(model, {"facemtl_model": "stub", "facemtl_input_size": str(size),
                                       "facemtl_crop_scale": str(crop_scale), "facemtl_expressions": EXPRESSIONS})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def squares_frame(squares: list[tuple[float, float, float]], width: int = 160, height: int = 120) -> np.ndarray:
    """A dark BGR frame with white squares ``(x, y, side)`` over the pixels x .. x + side (anti-aliased)."""
    image = np.full((height, width, 3), 20, np.uint8)
    for x, y, side in squares:
        pts = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]]) * 16
        cv2.fillPoly(image, [np.round(pts).astype(np.int32)], (255, 255, 255), cv2.LINE_AA, shift=4)
    return image


class BlobDetector:
    """Bright blobs (> 50 pixels) as faces: exact boxes in pixel-centre coordinates, score 0.9.

    Counts its calls; raises ``raise_on_call``'s exception at that call number if given.
    """

    def __init__(self, raise_on_call: tuple[int, BaseException] | None = None):
        self.calls = 0
        self.raise_on_call = raise_on_call

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        if self.raise_on_call is not None and self.calls == self.raise_on_call[0]:
            raise self.raise_on_call[1]
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        _, _, stats, _ = cv2.connectedComponentsWithStats((grey > 128).astype(np.uint8))
        boxes = np.array([[x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5] for x, y, w, h, area in stats[1:]
                          if area > 50], dtype=np.float64).reshape(-1, 4)
        return boxes, np.full(len(boxes), 0.9)


def outputs(model, crops: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of ``model`` (an ``onnx.ModelProto``) on uint8 crops (N, S, S, 3), by name, in order."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))
