"""Fixtures of the inference tests: tiny ONNX models built with onnx.helper, outputs known."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_mean_linear_model(
    path: Path,
    weights: np.ndarray,
    *,
    height_px: int,
    width_px: int,
    layout: str = "nchw",
    batch: int | str = "N",
    input_type: int = TensorProto.FLOAT,
    softmax: bool = False,
    output_name: str = "scores",
) -> Path:
    """Write a model computing softmax?(mean_per_channel(x) @ weights); weights is C×K."""
    channels, classes = weights.shape
    if layout == "nchw":
        shape = [batch, channels, height_px, width_px]
        axes = [2, 3]
    else:
        shape = [batch, height_px, width_px, channels]
        axes = [1, 2]

    nodes = []
    source = "images"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["images"], ["images_f32"], to=TensorProto.FLOAT))
        source = "images_f32"
    nodes.append(helper.make_node("ReduceMean", [source], ["channel_mean"], axes=axes, keepdims=0))
    last = output_name if not softmax else "logits"
    nodes.append(helper.make_node("MatMul", ["channel_mean", "weights"], [last]))
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [output_name], axis=1))

    graph = helper.make_graph(
        nodes,
        "mean_linear",
        [helper.make_tensor_value_info("images", input_type, shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, classes])],
        initializer=[numpy_helper.from_array(weights.astype(np.float32), "weights")],
    )
    return _save(graph, path)


def build_flatten_model(path: Path, input_shape: Sequence[int | str], classes: int) -> Path:
    """Write a model Flatten(x) @ ones: any input shape, output [batch, classes]."""
    features = int(np.prod([dim for dim in input_shape[1:] if isinstance(dim, int)]))
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["images"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
        ],
        "flatten_linear",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [input_shape[0], classes])],
        initializer=[
            numpy_helper.from_array(np.ones((features, classes), np.float32), "weights")
        ],
    )
    return _save(graph, path)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own folder, so relative default paths (the archive) stay there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def mean_linear_model(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a mean-linear model into the test's temporary folder."""
    counter = iter(range(1000))

    def build(weights: np.ndarray, **options: object) -> Path:
        path = tmp_path / f"mean_linear_{next(counter)}.onnx"
        return build_mean_linear_model(path, weights, **options)  # type: ignore[arg-type]

    return build


@pytest.fixture
def flatten_model(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a flatten-linear model with any input shape."""
    counter = iter(range(1000))

    def build(input_shape: Sequence[int | str], classes: int) -> Path:
        return build_flatten_model(tmp_path / f"flatten_{next(counter)}.onnx", input_shape, classes)

    return build


def _shared_dir() -> Path:
    """Return the `shared` folder beside the repository checkout, with real models and images."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent.parent / "shared"
    raise RuntimeError(f"no pyproject.toml above {__file__}; run the tests from the checkout")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"real-input data folder {path} is absent beside the checkout")
    return path


@pytest.fixture(scope="session")
def real_sample_dir(shared_dir: Path) -> Path:
    path = shared_dir / "real-sample"
    if not any(path.glob("*/*.jpg")):
        pytest.skip(f"no real photographs under {path}")
    return path


# --- Models of the other families: outputs known exactly --------------------------------------


def build_constant_model(
    path: Path,
    input_shape: Sequence[int | str],
    outputs: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a model whose outputs are fixed arrays (leading axis 1) repeated for every frame."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=list(range(1, len(input_shape))),
                         keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
    ]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        value = value.astype(np.float32)
        shape = np.array([-1] + [1] * (value.ndim - 1), np.int64)  # [N, 1, ...] to broadcast
        nodes += [
            helper.make_node("Reshape", ["zeros", f"{name}_shape"], [f"{name}_zeros"]),
            helper.make_node("Add", [f"{name}_zeros", f"{name}_value"], [name]),
        ]
        initializers += [
            numpy_helper.from_array(shape, f"{name}_shape"),
            numpy_helper.from_array(value, f"{name}_value"),
        ]
        graph_outputs.append(
            helper.make_tensor_value_info(
                name, TensorProto.FLOAT, [input_shape[0], *value.shape[1:]]
            )
        )
    graph = helper.make_graph(
        nodes, "constant", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                          list(input_shape))],
        graph_outputs, initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_brightness_segmenter(path: Path, height_px: int, width_px: int) -> Path:
    """Write a one-channel segmenter: logit = 20 * mean_over_channels(x) - 10 per pixel.

    With scale 1/255, white pixels give logit +10 (p = 0.99995) and black ones -10.
    """
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images", "channel_axis"], ["brightness"], keepdims=1),
            helper.make_node("Mul", ["brightness", "gain"], ["scaled"]),
            helper.make_node("Add", ["scaled", "offset"], ["logits"]),
        ],
        "brightness_segmenter",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height_px, width_px])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, height_px, width_px])],
        initializer=[
            numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
            numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
            numpy_helper.from_array(np.array(-10.0, np.float32), "offset"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_brightness_anomaly(
    path: Path, height_px: int, width_px: int, metadata: dict[str, str] | None = None
) -> Path:
    """Write an anomalib-style model: anomaly_map = channel mean of x, pred_score = its maximum."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images", "channel_axis"], ["anomaly_map"], keepdims=1),
            helper.make_node("ReduceMax", ["anomaly_map", "map_axes"], ["pred_score"], keepdims=0),
        ],
        "brightness_anomaly",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height_px, width_px])],
        [
            helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info(
                "anomaly_map", TensorProto.FLOAT, ["N", 1, height_px, width_px]
            ),
        ],
        initializer=[
            numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "map_axes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def raw_yolo_output(classes: int, anchors: list[tuple[float, float, float, float, list[float]]]
                    ) -> np.ndarray:
    """A raw Ultralytics output (1, 4 + classes, anchors) from (cx, cy, w, h, scores) tuples."""
    output = np.zeros((1, 4 + classes, len(anchors)), np.float32)
    for index, (cx, cy, w, h, scores) in enumerate(anchors):
        output[0, :4, index] = (cx, cy, w, h)
        output[0, 4:, index] = scores
    return output


def family_config(
    path: Path,
    *,
    task: str,
    width_px: int,
    height_px: int,
    resize: str = "letterbox",
    decision: dict | None = None,  # type: ignore[type-arg]
    archive_dir: Path | None = None,
    **model: object,
):  # type: ignore[no-untyped-def]
    """A plant with one station 'line-1' and the given model; scale 1/255, no mean or std."""
    from defectline.config.models import PlantConfig

    document = {
        "model": {
            "path": str(path),
            "task": task,
            "preprocess": {"width_px": width_px, "height_px": height_px, "resize": resize,
                           "color": "rgb"},
            **model,
        },
        "stations": [{"id": "line-1", "decision": decision or {}}],
        "archive": {"evidence": archive_dir is not None,
                    "store": {"type": "local", "path": str(archive_dir or path.parent)}},
    }
    return PlantConfig.model_validate(document)


def frame_meta(sequence: int, width_px: int, height_px: int, station: str = "line-1"):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from defectline.schemas.frames import FrameMeta

    return FrameMeta(camera_id="cam-t", station_id=station, frame_id=f"f{sequence}",
                     sequence=sequence, captured_at=datetime.now(UTC), encoding="png",
                     width_px=width_px, height_px=height_px)


def png(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture
def kit():  # type: ignore[no-untyped-def]
    """The model builders and frame helpers above, for test modules (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        constant_model=build_constant_model,
        brightness_segmenter=build_brightness_segmenter,
        brightness_anomaly=build_brightness_anomaly,
        raw_yolo_output=raw_yolo_output,
        family_config=family_config,
        frame_meta=frame_meta,
        png=png,
    )
