"""Benchmark of drift detection: delay after a lighting drop, a blur onset and an unseen defect
kind, and false alarms over a long stable stream.

Frames come from the synthetic camera's renderer with the synthetic camera's defect draw. They
go through the worker's `Inspector` with the bundled demo model and feed the `DriftDetector`
with the plant's drift settings, without Kafka. Run from the repository root:

    .venv/bin/python -m bench.drift            # full run, about 10 minutes on 2 cores
    .venv/bin/python -m bench.drift --quick    # smaller stable stream and fewer seeds

Delays are counted in frames after the onset frame. No timing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from defectline.config import PlantConfig, load_config
from defectline.config.models import DriftConfig
from defectline.connectors.cameras.render import DEFECT_KINDS, render_surface
from defectline.schemas.drift import DriftEvent, EventKind
from defectline.schemas.frames import FrameMeta
from defectline.schemas.verdicts import Verdict
from defectline.streams.drift.detector import DriftDetector
from defectline.streams.drift.observation import observation_from_verdict
from defectline.streams.drift.state import CameraState
from defectline.streams.inference.inspector import Inspector

FRAME_SIZE_PX = 256
DEFECT_RATE = 0.30
UNSEEN_KIND = "crack"
UNSEEN_RATE = 0.25
BATCH_SIZE = 32
FRAME_PERIOD = timedelta(milliseconds=50)


@dataclass(frozen=True)
class Scenario:
    """A stream that is stable until `onset` and changed from there on."""

    name: str
    onset: int
    frames: int
    brightness_gain: float = 1.0
    blur_sigma_px: float = 0.0
    unseen_rate: float = 0.0
    recover_at: int | None = None


@dataclass
class Result:
    scenario: str
    seed: int
    starts: list[DriftEvent]
    recoveries: list[DriftEvent]
    frames: int
    wall_s: float
    confidence_psi: list[float]
    class_psi: list[float]


def paint_crack(rng: np.random.Generator, image: np.ndarray) -> None:
    """Paint a branching dark crack, a defect kind the demo model was never trained on."""
    height_px, width_px = image.shape[:2]
    point = np.array([rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.3, 0.7) * height_px])
    depth = float(rng.uniform(50.0, 80.0))
    for _branch in range(int(rng.integers(2, 4))):
        angle = rng.uniform(0.0, 2 * np.pi)
        current = point.copy()
        for _step in range(int(rng.integers(8, 16))):
            angle += rng.normal(0.0, 0.5)
            nxt = current + 7.0 * np.array([np.cos(angle), np.sin(angle)])
            start = tuple(int(v) for v in current)
            end = tuple(int(v) for v in nxt)
            cv2.line(image, start, end, (0, 0, 0), 1, cv2.LINE_AA)
            current = nxt
    # Blend the black strokes back towards the surface so the crack is dark, not black.
    surface = cv2.medianBlur(image, 5)
    mask = np.all(image < 20, axis=2)
    image[mask] = np.clip(surface[mask].astype(np.float32) - depth, 0, 255).astype(np.uint8)


def frames(scenario: Scenario, seed: int) -> Iterator[np.ndarray]:
    """Render the scenario's frames in order, drawing defect kinds like the synthetic camera."""
    rng = np.random.default_rng(seed)
    for index in range(scenario.frames):
        changed = index >= scenario.onset and (
            scenario.recover_at is None or index < scenario.recover_at
        )
        gain = scenario.brightness_gain if changed else 1.0
        blur = scenario.blur_sigma_px if changed else 0.0
        unseen = changed and rng.random() < scenario.unseen_rate
        kind = None
        if not unseen and rng.random() < DEFECT_RATE:
            kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
        image = render_surface(rng, FRAME_SIZE_PX, FRAME_SIZE_PX, kind, gain, blur)
        if unseen:
            paint_crack(rng, image)
        yield image


def run(scenario: Scenario, seed: int, inspector: Inspector, drift: DriftConfig) -> Result:
    """Feed one scenario through the inspector and the detector; collect the drift events."""
    detector = DriftDetector(drift)
    state = CameraState()
    started_s = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[DriftEvent] = []
    batch: list[tuple[FrameMeta, bytes]] = []
    confidence_psi: list[float] = []
    class_psi: list[float] = []

    def flush() -> None:
        for result in inspector.inspect_batch(batch):
            if not isinstance(result, Verdict):
                raise RuntimeError(f"frame failed in the benchmark: {result}")
            update = detector.observe(state, observation_from_verdict(result))
            events.extend(update.events)
            if update.window is not None:
                confidence_psi.append(update.window.confidence_psi)
                class_psi.append(update.window.class_psi)
        batch.clear()

    for index, image in enumerate(frames(scenario, seed)):
        payload = cv2.imencode(".bmp", image)[1].tobytes()
        meta = FrameMeta(
            camera_id="bench-cam", station_id="station-1", frame_id=f"f{index}", sequence=index,
            captured_at=base + index * FRAME_PERIOD, encoding="bmp",
            width_px=FRAME_SIZE_PX, height_px=FRAME_SIZE_PX,
        )  # fmt: skip
        batch.append((meta, payload))
        if len(batch) == BATCH_SIZE:
            flush()
    if batch:
        flush()

    return Result(
        scenario=scenario.name,
        seed=seed,
        starts=[event for event in events if event.kind is EventKind.START],
        recoveries=[event for event in events if event.kind is EventKind.RECOVERY],
        frames=scenario.frames,
        wall_s=time.perf_counter() - started_s,
        confidence_psi=confidence_psi,
        class_psi=class_psi,
    )


def scenarios(drift: DriftConfig, stable_frames: int) -> tuple[Scenario, list[Scenario]]:
    onset = drift.reference_frames + 1000
    stable = Scenario("stable", onset=10**12, frames=drift.reference_frames + stable_frames)
    shifts = [
        Scenario("brightness -20%", onset, onset + 1000, brightness_gain=0.8,
                 recover_at=onset + 600),
        Scenario("blur onset (sigma 2 px)", onset, onset + 600, blur_sigma_px=2.0),
        Scenario(f"unseen kind '{UNSEEN_KIND}' in {UNSEEN_RATE:.0%} of frames", onset,
                 onset + 800, unseen_rate=UNSEEN_RATE),
    ]  # fmt: skip
    return stable, shifts


def report_shift(scenario: Scenario, results: list[Result]) -> None:
    delays, names, early = [], [], 0
    for result in results:
        after = [event for event in result.starts if event.sequence >= scenario.onset]
        early += len(result.starts) - len(after)
        if after:
            delays.append(after[0].sequence - scenario.onset)
            names.append(f"{after[0].metric.value}")
    found = f"{len(delays)}/{len(results)}"
    if delays:
        print(
            f"| {scenario.name} | {found} | {statistics.median(delays):.0f} | {max(delays)} "
            f"| {', '.join(sorted(set(names)))} | {early} |"
        )
    else:
        print(f"| {scenario.name} | {found} | - | - | - | {early} |")
    for result in results:
        for event in result.starts + result.recoveries:
            print(f"    seed {result.seed} {event.kind.value} @{event.sequence}: {event.message}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 000 stable frames, 1 seed")
    parser.add_argument(
        "--stable-frames",
        type=int,
        default=20_000,
        help="frames of the stable stream after the reference (default 20 000)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per shift scenario")
    args = parser.parse_args(argv)
    stable_frames = 2000 if args.quick else args.stable_frames
    seeds = 1 if args.quick else args.seeds

    config: PlantConfig = load_config(environ={})
    drift = config.drift
    inspector = Inspector(config)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, providers {list(config.model.providers)}, "
          f"batch {BATCH_SIZE}, frame {FRAME_SIZE_PX}x{FRAME_SIZE_PX} px")  # fmt: skip
    print(f"drift settings: {drift.model_dump()}")

    stable, shifts = scenarios(drift, stable_frames)
    result = run(stable, seed=1000, inspector=inspector, drift=drift)
    watched = stable_frames
    print(f"\nstable stream: {watched} frames after the reference, {len(result.starts)} "
          f"false alarm(s), {len(result.starts) / watched * 10_000:.2f} per 10 000 frames, "
          f"{result.wall_s:.0f} s")  # fmt: skip
    for event in result.starts:
        print(f"    false alarm @{event.sequence}: {event.message}")
    for name, values in (("confidence", result.confidence_psi), ("class mix", result.class_psi)):
        p50, p99 = np.percentile(values, [50, 99])
        print(f"    {name} PSI on the stable stream: median {p50:.3f}, p99 {p99:.3f}, "
              f"max {max(values):.3f}")  # fmt: skip

    print("\n| scenario | detected | median delay (frames) | max delay | named | before onset |")
    print("|---|---|---|---|---|---|")
    for scenario in shifts:
        results = [run(scenario, seed, inspector, drift) for seed in range(seeds)]
        report_shift(scenario, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
