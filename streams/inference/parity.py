r"""Golden-image parity: recorded outputs of known images, checked before the worker is ready.

Record outputs once on a trusted machine, then list the pairs under `model.parity.images`:

    python -m defectline.streams.inference.parity \
        --config plant.yaml --image good.png --out good.npz
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from defectline.config.models import ModelConfig, ParityConfig
from defectline.streams.inference.decode import decode_image
from defectline.streams.inference.errors import ModelLoadError
from defectline.streams.inference.preprocess import preprocess
from defectline.streams.inference.session import OnnxModel

logger = logging.getLogger(__name__)


class GoldenParityError(ModelLoadError):
    """A golden image's outputs differ from the recorded ones: model or preprocessing drifted."""


def run_golden(
    model: OnnxModel, config: ModelConfig, image_path: Path, names: list[str]
) -> dict[str, np.ndarray]:
    """Run one image file through decode, preprocess and the model; outputs without batch axis."""
    try:
        payload = image_path.read_bytes()
    except OSError as exc:
        raise GoldenParityError(
            f"golden image {image_path} cannot be read: {exc}; fix model.parity.images"
        ) from exc
    image = decode_image(payload, config.preprocess.color, label=f"golden image {image_path}")
    sample, _letterbox = preprocess(image, config.preprocess)
    outputs = model.run_outputs(sample[np.newaxis], names)
    return {name: value[0] for name, value in outputs.items()}


def check_parity(model: OnnxModel, config: ModelConfig, names: list[str]) -> int:
    """Compare every configured golden image with its recorded outputs; return images checked."""
    parity: ParityConfig = config.parity
    for golden in parity.images:
        actual = run_golden(model, config, golden.image, names)
        expected = _load_recorded(golden.outputs)
        for name in names:
            if name not in expected:
                raise GoldenParityError(
                    f"recorded outputs {golden.outputs} have no output '{name}' (they have "
                    f"{sorted(expected)}); record them again for this model"
                )
            _compare(golden.image, name, actual[name], expected[name], parity)
        logger.info("golden image matches image=%s outputs=%s", golden.image, names)
    return len(parity.images)


def record_outputs(
    model: OnnxModel, config: ModelConfig, image: Path, out: Path, names: list[str]
) -> None:
    """Run `image` and save its outputs to an .npz file for `model.parity.images`."""
    outputs = run_golden(model, config, image, names)
    with out.open("wb") as stream:
        np.savez(stream, **outputs)


def _load_recorded(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise GoldenParityError(
            f"recorded outputs {path} cannot be read as .npz: {exc}; record them with "
            "python -m defectline.streams.inference.parity"
        ) from exc


def _compare(
    image: Path, name: str, actual: np.ndarray, expected: np.ndarray, parity: ParityConfig
) -> None:
    if actual.shape != expected.shape:
        raise GoldenParityError(
            f"golden image {image}: output '{name}' has shape {list(actual.shape)} but the "
            f"recording has {list(expected.shape)}; the model changed, so record it again"
        )
    actual64, expected64 = actual.astype(np.float64), expected.astype(np.float64)
    close = np.isclose(actual64, expected64, atol=parity.atol, rtol=parity.rtol)
    if close.all():
        return
    difference = np.abs(actual64 - expected64)
    worst = np.unravel_index(int(np.argmax(np.where(close, 0, difference))), difference.shape)
    raise GoldenParityError(
        f"golden image {image}: output '{name}' differs from the recording at "
        f"{int((~close).sum())} of {close.size} values; worst at index {list(map(int, worst))}: "
        f"{actual64[worst]:.6g} vs recorded {expected64[worst]:.6g} (atol {parity.atol}, rtol "
        f"{parity.rtol}); the exported model or preprocessing drifted: check model.path and "
        "model.preprocess, or record the outputs again if the change is intended"
    )


def main(argv: list[str] | None = None) -> None:
    """Record golden outputs for one image with the configured model."""
    from defectline.config.loader import load_config
    from defectline.streams.inference.adapters import create_adapter

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", type=Path, help="plant YAML; default: the demo plant")
    parser.add_argument("--image", type=Path, required=True, help="golden image file")
    parser.add_argument("--out", type=Path, required=True, help=".npz file to write")
    arguments = parser.parse_args(argv)

    config = load_config(arguments.config)
    model = OnnxModel(config.model)
    adapter = create_adapter(model, config.model)
    record_outputs(model, adapter.config, arguments.image, arguments.out, adapter.output_names)
    print(f"recorded outputs {adapter.output_names} of {arguments.image} to {arguments.out}")


if __name__ == "__main__":
    main()
