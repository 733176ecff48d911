"""The ONNX model session: model file lookup, providers, start-up checks and batched runs."""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from defectline.config.models import Layout, ModelConfig, ModelTask
from defectline.streams.inference.errors import (
    ModelInputMismatchError,
    ModelLoadError,
    ModelRunError,
    ProviderUnavailableError,
)

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"surface-demo": "surface_demo.onnx"}
BUILTIN_PACKAGE = "defectline.models"

# Providers that ship in a separate onnxruntime wheel rather than the default CPU one.
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "ROCMExecutionProvider": "onnxruntime-rocm",
    "MIGraphXExecutionProvider": "onnxruntime-migraphx",
    "QNNExecutionProvider": "onnxruntime-qnn",
}

INPUT_DTYPES: dict[str, type[np.floating]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}

# onnxruntime raises its own exception classes, which do not derive from RuntimeError.
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(ort_state, name)
    for name in (
        "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel",
        "NotFound", "NotImplemented", "RuntimeException", "EPFail", "EngineError",
    )
    if hasattr(ort_state, name)
) + (RuntimeError,)

Dim = int | str | None


def resolve_model_path(path: str) -> Path:
    """Return the ONNX file for `model.path`: a file path, or 'builtin:<name>' (bundled)."""
    if not path.startswith(BUILTIN_PREFIX):
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise ModelLoadError(
                f"model file not found: {path} (resolved to {resolved.absolute()}); "
                "set model.path to an existing .onnx file or to 'builtin:surface-demo'"
            )
        return resolved

    name = path[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_MODELS:
        raise ModelLoadError(
            f"unknown built-in model '{path}'; built-in models are "
            f"{[BUILTIN_PREFIX + known for known in BUILTIN_MODELS]}"
        )
    return _builtin_file(BUILTIN_MODELS[name], path)


def _builtin_file(file_name: str, path: str) -> Path:
    try:
        candidate = Path(str(resources.files(BUILTIN_PACKAGE).joinpath(file_name)))
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"built-in model '{path}' is not installed because package {BUILTIN_PACKAGE} is "
            "missing; reinstall defectline or set model.path to an .onnx file"
        ) from exc

    if not candidate.is_file():
        raise ModelLoadError(
            f"built-in model '{path}' is not installed: {candidate} does not exist; "
            "reinstall defectline or set model.path to an .onnx file"
        )
    return candidate


def check_providers(requested: tuple[str, ...]) -> list[str]:
    """Raise `ProviderUnavailableError` unless every requested execution provider is available."""
    available = ort.get_available_providers()
    for provider in requested:
        if provider in available:
            continue
        package = PROVIDER_PACKAGES.get(provider)
        fix = (
            f"install the {package} package in place of onnxruntime "
            f"(pip uninstall onnxruntime && pip install {package})"
            if package
            else "check the provider name for typos"
        )
        raise ProviderUnavailableError(
            f"execution provider '{provider}' in model.providers is not available in this "
            f"onnxruntime {ort.__version__} installation (available: {available}); {fix}, "
            "or remove it from model.providers"
        )
    return list(requested)


class OnnxModel:
    """An onnxruntime session for one model, with its input checked against the configuration.

    The output checks of classification models happen here; the adapters of the other model
    families check their outputs themselves (`defectline.streams.inference.adapters`).

    `run` is synchronous and CPU- or GPU-bound; callers on an event loop run it in a thread.
    onnxruntime allows concurrent `run` calls on one session.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.path = resolve_model_path(config.path)
        self.name = config.name or self.path.stem
        self.version = config.version
        self.session_calls = 0  # session.run calls so far, for metrics and tests

        providers = check_providers(config.providers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_op_threads
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=providers
            )
        except ORT_ERRORS as exc:
            raise ModelLoadError(f"onnxruntime failed to load model {self.path}: {exc}") from exc

        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.outputs: dict[str, list[Dim]] = {
            item.name: list(item.shape) for item in self._session.get_outputs()
        }
        self._check_input()
        self._select_output()
        if config.task is ModelTask.CLASSIFICATION:
            self.check_classification_output()
        logger.info(
            "model loaded model=%s version=%s path=%s providers=%s input=%s%s output=%s%s",
            self.name, self.version, self.path, self._session.get_providers(),
            self.input_name, self.input_shape, self.output_name, self.output_shape,
        )

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session, for metadata and options."""
        return self._session

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses, in priority order."""
        return list(self._session.get_providers())

    @property
    def fixed_batch_size(self) -> int | None:
        """The batch size the model was exported with, or None when the batch axis is dynamic."""
        first = self.input_shape[0]
        return first if isinstance(first, int) else None

    def expected_sample_shape(self) -> tuple[int, int, int]:
        """Shape of one preprocessed sample, without the batch axis, for the configured layout."""
        pre = self.config.preprocess
        if pre.layout is Layout.NCHW:
            return (pre.channels, pre.height_px, pre.width_px)
        return (pre.height_px, pre.width_px, pre.channels)

    def warm_up(self) -> float:
        """Run one all-zero batch so lazy allocations happen before the first frame; return ms."""
        batch = np.zeros((self.fixed_batch_size or 1, *self.expected_sample_shape()), np.float32)
        started = time.perf_counter()
        self.run_outputs(batch)
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info("model warmed up model=%s warm_up_ms=%.1f", self.name, elapsed_ms)
        return elapsed_ms

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed N×... batch and return the N×classes output as float32.

        A model with a dynamic batch axis gets the whole batch in one call. A model exported with
        a fixed batch size gets chunks of that size, and the last chunk is padded by repeating its
        last frame.
        """
        output = self.run_outputs(batch, [self.output_name])[self.output_name]
        classes = len(self.config.class_names)
        if output.shape != (len(batch), classes):
            raise ModelRunError(
                f"model {self.name} output '{self.output_name}' has shape {list(output.shape)}, "
                f"expected [{len(batch)}, {classes}] (batch, class_names)"
            )
        return output.astype(np.float32, copy=False)

    def run_outputs(
        self, batch: np.ndarray, names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run a preprocessed batch and return the named outputs (default: all), batch first.

        Inputs are cast to the model's input dtype. A fixed batch size is served in chunks as
        `run` describes, so every output has exactly len(batch) rows.
        """
        self._check_batch(batch)
        batch = batch.astype(self.input_dtype, copy=False)
        wanted = list(self.outputs) if names is None else names

        fixed = self.fixed_batch_size
        if fixed is None:
            return self._run_chunk(batch, wanted)

        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, len(batch), fixed):
            chunk = batch[start:start + fixed]
            used = len(chunk)
            if used < fixed:
                padding = np.repeat(chunk[-1:], fixed - used, axis=0)
                chunk = np.concatenate([chunk, padding])
            outputs = self._run_chunk(chunk, wanted)
            parts.append({name: value[:used] for name, value in outputs.items()})
        return {name: np.concatenate([part[name] for part in parts]) for name in wanted}

    def _run_chunk(self, batch: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        try:
            outputs = self._session.run(names, {self.input_name: batch})
        except ORT_ERRORS as exc:
            raise ModelRunError(
                f"onnxruntime failed to run model {self.name} on a batch of shape "
                f"{list(batch.shape)}: {exc}"
            ) from exc
        finally:
            self.session_calls += 1

        results: dict[str, np.ndarray] = {}
        for name, value in zip(names, outputs, strict=True):
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != len(batch):
                raise ModelRunError(
                    f"model {self.name} output '{name}' has shape {list(array.shape)}; expected "
                    f"the batch size {len(batch)} as its first dimension"
                )
            results[name] = array
        return results

    def _check_batch(self, batch: np.ndarray) -> None:
        expected = self.expected_sample_shape()
        if batch.ndim != 4 or batch.shape[0] == 0 or tuple(batch.shape[1:]) != expected:
            raise ModelRunError(
                f"batch of shape {list(batch.shape)} does not fit model {self.name}: expected "
                f"[N>=1, {', '.join(map(str, expected))}]; build it with preprocess_batch"
            )

    def _check_input(self) -> None:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelInputMismatchError(
                f"model {self.path} has {len(inputs)} inputs {[item.name for item in inputs]}; "
                "defectline feeds exactly one image tensor, so export the model with one input"
            )
        model_input = inputs[0]
        self.input_name: str = model_input.name
        self.input_shape: list[Dim] = list(model_input.shape)

        dtype = INPUT_DTYPES.get(model_input.type)
        if dtype is None:
            raise ModelInputMismatchError(
                f"model input '{self.input_name}' has type {model_input.type}; "
                f"supported input types are {sorted(INPUT_DTYPES)}"
            )
        self.input_dtype: type[np.floating] = dtype

        expected = ["batch", *self.expected_sample_shape()]
        pre = self.config.preprocess
        described = (
            f"layout {pre.layout.value}, color {pre.color.value} with {pre.channels} channel(s), "
            f"{pre.width_px}x{pre.height_px} px"
        )
        if len(self.input_shape) != 4:
            raise ModelInputMismatchError(
                f"model input '{self.input_name}' has shape {self.input_shape} (rank "
                f"{len(self.input_shape)}) but the configuration expects {expected} (rank 4: "
                f"{described}); defectline feeds one 4-D image batch"
            )
        for actual_dim, expected_dim in zip(self.input_shape[1:], expected[1:], strict=True):
            if isinstance(actual_dim, int) and actual_dim != expected_dim:
                raise ModelInputMismatchError(
                    f"model input '{self.input_name}' has shape {self.input_shape} but the "
                    f"configuration expects {expected} ({described}); set model.preprocess "
                    "(layout, color, width_px, height_px) to match the model"
                )
        if isinstance(self.input_shape[0], int) and self.input_shape[0] < 1:
            raise ModelInputMismatchError(
                f"model input '{self.input_name}' has batch size {self.input_shape[0]}; "
                "expected >= 1"
            )

    def _select_output(self) -> None:
        wanted = self.config.output_name or next(iter(self.outputs))
        if wanted not in self.outputs:
            raise ModelInputMismatchError(
                f"model.output_name '{wanted}' is not an output of {self.path}; "
                f"outputs are {list(self.outputs)}"
            )
        self.output_name: str = wanted
        self.output_shape: list[Dim] = self.outputs[wanted]

    def check_classification_output(self) -> None:
        """Raise `ModelInputMismatchError` unless the output is batch × len(class_names).

        A binary model may also have one output column (the probability or logit of the second
        class name).
        """
        wanted = self.output_name
        classes = len(self.config.class_names)
        width = self.output_shape[-1] if self.output_shape else None
        binary = classes == 2 and width == 1
        wrong_width = isinstance(width, int) and width != classes and not binary
        if len(self.output_shape) != 2 or wrong_width:
            raise ModelInputMismatchError(
                f"model output '{wanted}' has shape {self.output_shape} but the configuration "
                f"expects ['batch', {classes}] for class_names {list(self.config.class_names)}; "
                "list one class name per model output column"
            )
