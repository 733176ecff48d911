"""Labelled synthetic data set for the demo model: rendered surfaces, split and preprocessed.

Images come from the same renderer as the synthetic camera, with brightness and blur drawn per
image so the model stays accurate when a camera's lighting schedule changes. Each split has its
own random stream derived from the seed, so train, validation and test never share an image and
a given seed always yields the same data set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np

from defectline.connectors.cameras.render import render_surface

CLASS_NAMES: tuple[str, ...] = ("ok", "scratch", "pit", "inclusion", "stain")
"""Class order of the demo model's output; index 0 is a good part."""

INPUT_SIZE_PX = 96
MEAN = 0.5
STD = 0.25

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """Data set recipe: per-class counts of each split, frame size and lighting jitter ranges."""

    seed: int = 20240601
    train_per_class: int = 1000
    val_per_class: int = 150
    test_per_class: int = 300
    frame_width_px: int = 256
    frame_height_px: int = 256
    brightness_gain_min: float = 0.6
    brightness_gain_max: float = 1.6
    blur_sigma_max_px: float = 2.5
    sharp_fraction: float = 0.5
    """Share of images rendered without blur; the others get a sigma drawn up to the maximum."""

    def per_class(self, split: Split) -> int:
        return {
            "train": self.train_per_class,
            "val": self.val_per_class,
            "test": self.test_per_class,
        }[split]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_split(spec: DatasetSpec, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Render one split as (BGR uint8 frames resized to the model input, int64 labels), shuffled.

    Frames are returned at 96x96 after the resize step of `preprocess_bgr`, which keeps memory
    small; `normalize` finishes the preprocessing.
    """
    rng = np.random.default_rng(_split_seed(spec, split))
    labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), spec.per_class(split))
    rng.shuffle(labels)

    frames = np.empty((labels.size, INPUT_SIZE_PX, INPUT_SIZE_PX, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        gain = float(
            np.exp(rng.uniform(np.log(spec.brightness_gain_min), np.log(spec.brightness_gain_max)))
        )
        blur = (
            0.0
            if rng.random() < spec.sharp_fraction
            else float(rng.uniform(0.0, spec.blur_sigma_max_px))
        )
        kind = None if label == 0 else CLASS_NAMES[label]
        frame = render_surface(rng, spec.frame_width_px, spec.frame_height_px, kind, gain, blur)
        frames[index] = resize_bgr(frame)
    return frames, labels


def preprocess_bgr(frames_bgr: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Apply the demo model's full preprocessing to decoded BGR uint8 frames of any size.

    BGR to RGB, resize to 96x96 with INTER_AREA (stretched, aspect not kept), then
    (pixel / 255 - 0.5) / 0.25 per channel, as a float32 NCHW batch. This matches the
    `model.preprocess` section of the embedded demo configuration.
    """
    resized = np.stack([resize_bgr(frame) for frame in frames_bgr])
    return normalize(resized)


def resize_bgr(frame_bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(frame_bgr, (INPUT_SIZE_PX, INPUT_SIZE_PX), interpolation=cv2.INTER_AREA)


def normalize(resized_bgr: np.ndarray) -> np.ndarray:
    """Turn a (N, 96, 96, 3) BGR uint8 batch into the model's normalized RGB NCHW float32 input."""
    rgb = resized_bgr[..., ::-1].astype(np.float32)
    scaled = (rgb / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def _split_seed(spec: DatasetSpec, split: Split) -> np.random.SeedSequence:
    return np.random.SeedSequence(spec.seed).spawn(len(SPLITS))[SPLITS.index(split)]
