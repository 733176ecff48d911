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
