"""The inference core: encoded frames to verdicts with an ONNX model of any family, Kafka-free."""

from defectline.streams.inference.classify import Classification, classify, softmax
from defectline.streams.inference.decode import decode_image
from defectline.streams.inference.errors import (
    FrameDecodeError,
    InferenceError,
    ModelInputMismatchError,
    ModelLoadError,
    ModelOutputError,
    ModelRunError,
    ProviderUnavailableError,
)
from defectline.streams.inference.inspector import InferenceFailure, Inspector
from defectline.streams.inference.preprocess import (
    LetterboxParams,
    compute_letterbox,
    preprocess,
    preprocess_batch,
)
from defectline.streams.inference.session import OnnxModel, resolve_model_path

__all__ = [
    "Classification",
    "FrameDecodeError",
    "InferenceError",
    "InferenceFailure",
    "Inspector",
    "LetterboxParams",
    "ModelInputMismatchError",
    "ModelLoadError",
    "ModelOutputError",
    "ModelRunError",
    "OnnxModel",
    "ProviderUnavailableError",
    "classify",
    "compute_letterbox",
    "decode_image",
    "preprocess",
    "preprocess_batch",
    "resolve_model_path",
    "softmax",
]
