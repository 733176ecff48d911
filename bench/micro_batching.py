"""Micro-batching benchmark: frames per second of the inspector at several batch sizes.

Run: .venv/bin/python -m bench.micro_batching [--frames 512] [--model builtin:surface-demo]

Every batch size runs in the same process on the same frames, and the result is reported as a
ratio to batch size 1 from that run, so machines of different speed give comparable ratios.
Timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

import cv2
import numpy as np
import onnxruntime as ort

from defectline.config import load_config
from defectline.schemas.frames import FrameMeta
from defectline.streams.inference.inspector import Inspector

BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def frames(count: int, size_px: int) -> list[tuple[FrameMeta, bytes]]:
    rng = np.random.default_rng(0)
    result = []
    for index in range(count):
        image = rng.integers(0, 255, (size_px, size_px, 3), dtype=np.uint8)
        payload = cv2.imencode(".png", image)[1].tobytes()
        meta = FrameMeta(
            camera_id="cam-1",
            station_id="station-1",
            frame_id=f"b{index}",
            sequence=index,
            captured_at=datetime.now(UTC),
            encoding="png",
            width_px=size_px,
            height_px=size_px,
        )
        result.append((meta, payload))
    return result


def frames_per_s(inspector: Inspector, batch: list[tuple[FrameMeta, bytes]], size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(batch), size):
        inspector.inspect_batch(batch[start : start + size])
    return len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=512, help="frames per batch size")
    parser.add_argument("--size-px", type=int, default=256, help="frame width and height")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    arguments = parser.parse_args()

    config = load_config(
        environ={},
        overrides={
            "model": {"intra_op_threads": arguments.threads},
            "archive": {"evidence": False},
        },
    )
    inspector = Inspector(config)
    data = frames(arguments.frames, arguments.size_px)
    frames_per_s(inspector, data[:64], 8)  # warm caches and the allocator

    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or '?'}")
    print(
        f"onnxruntime {ort.__version__} providers={inspector.model.providers} "
        f"model={inspector.model.name} frames={arguments.frames} frame={arguments.size_px}px"
    )
    baseline = None
    print("batch  frames/s  ratio_vs_batch_1")
    for size in BATCH_SIZES:
        rate = frames_per_s(inspector, data, size)
        baseline = baseline or rate
        print(f"{size:5d}  {rate:8.1f}  {rate / baseline:6.2f}")


if __name__ == "__main__":
    main()
