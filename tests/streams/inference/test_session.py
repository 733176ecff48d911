"""The ONNX session: model lookup, provider checks, start-up shape checks, batching and dtypes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto

from defectline.config.models import ModelConfig
from defectline.streams.inference.errors import (
    ModelInputMismatchError,
    ModelLoadError,
    ModelRunError,
    ProviderUnavailableError,
)
from defectline.streams.inference.session import OnnxModel, resolve_model_path

CLASSES = ["red", "green", "blue"]
WEIGHTS = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], np.float32)


def model_config(path: Path | str, **values: object) -> ModelConfig:
    preprocess = {"width_px": 8, "height_px": 6, "color": "rgb", "scale": 1.0}
    preprocess.update(values.pop("preprocess", {}))  # type: ignore[arg-type]
    document: dict[str, object] = {
        "path": str(path),
        "class_names": CLASSES,
        "preprocess": preprocess,
    }
    document.update(values)
    return ModelConfig.model_validate(document)


def channel_batch(values: list[tuple[float, float, float]]) -> np.ndarray:
    """An N×3×6×8 batch where sample i is filled with the per-channel values[i]."""
    batch = np.empty((len(values), 3, 6, 8), np.float32)
    for index, channel_values in enumerate(values):
        batch[index] = np.asarray(channel_values, np.float32)[:, None, None]
    return batch


def test_run_returns_exact_known_output(mean_linear_model: Callable[..., Path]) -> None:
    model = OnnxModel(model_config(mean_linear_model(WEIGHTS, height_px=6, width_px=8)))
    output = model.run(channel_batch([(1.0, 2.0, 3.0), (0.5, 0.0, -1.0)]))

    assert output.dtype == np.float32
    np.testing.assert_allclose(output, [[1.0, 4.0, 9.0], [0.5, 0.0, -3.0]], rtol=1e-6)
    assert model.name == model.path.stem
    assert model.fixed_batch_size is None


def test_dynamic_batch_runs_in_one_call(mean_linear_model: Callable[..., Path]) -> None:
    model = OnnxModel(model_config(mean_linear_model(WEIGHTS, height_px=6, width_px=8)))
    model.run(channel_batch([(1.0, 0.0, 0.0)] * 4))

    assert model.session_calls == 1


def test_fixed_batch_one_runs_frame_by_frame(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8, batch=1)
    model = OnnxModel(model_config(path))
    batch = channel_batch([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.2, 0.3, 0.4)])

    together = model.run(batch)
    assert model.fixed_batch_size == 1
    assert model.session_calls == 4

    one_by_one = np.concatenate([model.run(batch[index:index + 1]) for index in range(4)])
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_allclose(together[3], [0.2, 0.6, 1.2], rtol=1e-6)


def test_fixed_batch_three_pads_last_chunk(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8, batch=3)
    model = OnnxModel(model_config(path))
    output = model.run(channel_batch([(float(index), 0.0, 0.0) for index in range(4)]))

    assert model.session_calls == 2
    np.testing.assert_allclose(output[:, 0], [0.0, 1.0, 2.0, 3.0])


def test_float16_model_input_is_cast(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8, input_type=TensorProto.FLOAT16)
    model = OnnxModel(model_config(path))
    output = model.run(channel_batch([(0.1, 0.2, 0.3)]))

    assert model.input_dtype is np.float16
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, [[0.1, 0.4, 0.9]], rtol=1e-3)


def test_nhwc_model_with_nhwc_layout(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8, layout="nhwc")
    model = OnnxModel(model_config(path, preprocess={"layout": "nhwc"}))
    batch = channel_batch([(1.0, 1.0, 1.0)]).transpose(0, 2, 3, 1).copy()

    np.testing.assert_allclose(model.run(batch), [[1.0, 2.0, 3.0]])


def test_nchw_model_with_nhwc_config_fails_at_start(
    mean_linear_model: Callable[..., Path],
) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)

    with pytest.raises(ModelInputMismatchError) as caught:
        OnnxModel(model_config(path, preprocess={"layout": "nhwc"}))

    assert "['N', 3, 6, 8]" in str(caught.value)
    assert "['batch', 6, 8, 3]" in str(caught.value)


def test_input_rank_mismatch_names_both_shapes(flatten_model: Callable[..., Path]) -> None:
    path = flatten_model(["N", 6, 8], classes=3)

    with pytest.raises(ModelInputMismatchError) as caught:
        OnnxModel(model_config(path))

    message = str(caught.value)
    assert "['N', 6, 8]" in message
    assert "['batch', 3, 6, 8]" in message
    assert "rank 3" in message


def test_channel_count_mismatch_names_both_shapes(flatten_model: Callable[..., Path]) -> None:
    path = flatten_model(["N", 1, 6, 8], classes=3)

    with pytest.raises(ModelInputMismatchError) as caught:
        OnnxModel(model_config(path))

    message = str(caught.value)
    assert "['N', 1, 6, 8]" in message
    assert "['batch', 3, 6, 8]" in message
    assert "color rgb with 3 channel(s)" in message


def test_input_size_mismatch_names_both_shapes(flatten_model: Callable[..., Path]) -> None:
    path = flatten_model(["N", 3, 6, 8], classes=3)

    with pytest.raises(ModelInputMismatchError) as caught:
        OnnxModel(model_config(path, preprocess={"width_px": 16}))

    assert "['N', 3, 6, 8]" in str(caught.value)
    assert "['batch', 3, 6, 16]" in str(caught.value)


def test_output_width_mismatch_fails_at_start(flatten_model: Callable[..., Path]) -> None:
    path = flatten_model(["N", 3, 6, 8], classes=5)

    with pytest.raises(ModelInputMismatchError) as caught:
        OnnxModel(model_config(path))

    assert "['N', 5]" in str(caught.value)
    assert "['batch', 3]" in str(caught.value)


def test_unknown_output_name_lists_outputs(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)

    with pytest.raises(ModelInputMismatchError, match=r"outputs are \['scores'\]"):
        OnnxModel(model_config(path, output_name="probabilities"))


def test_batch_of_wrong_shape_raises(mean_linear_model: Callable[..., Path]) -> None:
    model = OnnxModel(model_config(mean_linear_model(WEIGHTS, height_px=6, width_px=8)))

    with pytest.raises(ModelRunError, match=r"\[2, 3, 8, 6\] does not fit"):
        model.run(np.zeros((2, 3, 8, 6), np.float32))


def test_intra_op_threads_reach_session(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)
    model = OnnxModel(model_config(path, intra_op_threads=1))

    assert model.session.get_session_options().intra_op_num_threads == 1


def test_warm_up_runs_session(mean_linear_model: Callable[..., Path]) -> None:
    model = OnnxModel(model_config(mean_linear_model(WEIGHTS, height_px=6, width_px=8)))
    elapsed_ms = model.warm_up()

    assert model.session_calls == 1
    assert elapsed_ms >= 0


def _unavailable(candidates: list[str]) -> str:
    available = ort.get_available_providers()
    for provider in candidates:
        if provider not in available:
            return provider
    pytest.skip(f"every provider in {candidates} is installed here, so none can be missing")


def test_missing_gpu_provider_names_package(mean_linear_model: Callable[..., Path]) -> None:
    provider = _unavailable(["CUDAExecutionProvider", "TensorrtExecutionProvider"])
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)

    with pytest.raises(ProviderUnavailableError) as caught:
        OnnxModel(model_config(path, providers=[provider, "CPUExecutionProvider"]))

    assert provider in str(caught.value)
    assert "pip install onnxruntime-gpu" in str(caught.value)


def test_missing_openvino_provider_names_package(mean_linear_model: Callable[..., Path]) -> None:
    provider = _unavailable(["OpenVINOExecutionProvider"])
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)

    with pytest.raises(ProviderUnavailableError, match="onnxruntime-openvino"):
        OnnxModel(model_config(path, providers=[provider]))


def test_misspelt_provider_lists_available(mean_linear_model: Callable[..., Path]) -> None:
    path = mean_linear_model(WEIGHTS, height_px=6, width_px=8)

    with pytest.raises(ProviderUnavailableError, match="CPUExecutionProvider") as caught:
        OnnxModel(model_config(path, providers=["CpuExecutionProvider"]))

    assert "typos" in str(caught.value)


def test_missing_model_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model file not found"):
        OnnxModel(model_config(tmp_path / "absent.onnx"))


def test_invalid_model_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf")

    with pytest.raises(ModelLoadError, match="onnxruntime failed to load model"):
        OnnxModel(model_config(path))


def test_unknown_builtin_model_lists_known() -> None:
    with pytest.raises(ModelLoadError, match="builtin:surface-demo"):
        resolve_model_path("builtin:does-not-exist")
