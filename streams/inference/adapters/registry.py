"""Adapter choice: the configured task, or the family read from ONNX metadata and outputs."""

from __future__ import annotations

import logging

from defectline.config.models import ModelConfig, ModelTask
from defectline.streams.inference.adapters import metadata
from defectline.streams.inference.adapters.base import ModelAdapter
from defectline.streams.inference.errors import ModelLoadError
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)

ANOMALY_OUTPUTS = {"pred_score", "anomaly_map"}
ANOMALY_METADATA = {"image_threshold", "pixel_threshold"}


def detect_task(model: OnnxModel) -> ModelTask:
    """Read the model family from the ONNX metadata and output shapes, where that is unambiguous.

    Rules, in order: the Ultralytics `task` metadata key; anomalib output names or threshold
    metadata; then a single output of rank 2 (classification) or rank 4 (segmentation).
    """
    meta, outputs = model.metadata, model.outputs
    if "task" in meta:
        task = meta["task"].strip()
        if task in metadata.ULTRALYTICS_TASKS:
            return ModelTask(metadata.ULTRALYTICS_TASKS[task])
        raise ModelLoadError(
            f"model {model.path} declares task '{task}' in its metadata; supported Ultralytics "
            f"tasks are {sorted(metadata.ULTRALYTICS_TASKS)}; set model.task if the outputs fit "
            "another family"
        )
    if ANOMALY_OUTPUTS & set(outputs) or ANOMALY_METADATA & set(meta):
        return ModelTask.ANOMALY

    shapes = [len(shape) for shape in outputs.values()]
    if shapes == [2]:
        return ModelTask.CLASSIFICATION
    if shapes == [4]:
        return ModelTask.SEGMENTATION
    described = {name: shape for name, shape in outputs.items()}
    raise ModelLoadError(
        f"cannot tell the family of model {model.path} from its outputs {described} and "
        f"metadata keys {sorted(meta)}; set model.task to classification, detection, "
        "segmentation or anomaly"
    )


def create_adapter(model: OnnxModel, config: ModelConfig) -> ModelAdapter:
    """Build the adapter of the configured (or detected) task for a loaded model."""
    task = config.task
    if task is ModelTask.AUTO:
        task = detect_task(model)
        logger.info("model task detected model=%s task=%s", model.name, task.value)

    updates: dict[str, object] = {"task": task}
    if not config.class_names:
        names = metadata.class_names(model.metadata)
        if names is not None:
            updates["class_names"] = names
    # ModelConfig is frozen; the copy carries the resolved task and class names to the adapter.
    effective = config.model_copy(update=updates)
    if task is ModelTask.CLASSIFICATION and not effective.class_names:
        raise ModelLoadError(
            f"model {model.path} is a classifier but model.class_names is empty and the model "
            "has no 'names' metadata; list one class name per output column"
        )
    if task in (ModelTask.CLASSIFICATION, ModelTask.SEGMENTATION) and not effective.class_names:
        raise ModelLoadError(
            f"model.class_names is empty for task '{task.value}'; list one name per output channel"
        )
    model.config = effective

    adapter_class = ModelAdapter.registry[task.value]
    adapter = adapter_class(model, effective)
    logger.info("model adapter ready model=%s %s", model.name, adapter.describe())
    return adapter
