"""Errors of the inference core: frame decoding, model loading, model runs and output checks."""

from defectline.errors import DefectlineError


class InferenceError(DefectlineError):
    """Base class for failures while turning a frame into a verdict."""


class FrameDecodeError(InferenceError):
    """The frame payload is empty, corrupt, truncated or not an image format OpenCV can decode."""


class ModelLoadError(InferenceError):
    """The ONNX model file is missing, unreadable or rejected by onnxruntime at start-up."""


class ModelInputMismatchError(ModelLoadError):
    """The model's input or output shape or type does not match the configured preprocessing."""


class ProviderUnavailableError(ModelLoadError):
    """A configured onnxruntime execution provider is not available in this installation."""


class ModelRunError(InferenceError):
    """onnxruntime failed while running a batch, or the batch does not fit the model input."""


class ModelOutputError(InferenceError):
    """A model output row does not match the configuration: wrong width, NaN, bad probabilities."""
