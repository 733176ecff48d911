"""Camera connector loop: read frames from one source, describe them and publish them to Kafka."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from defectline.config.models import CameraConfig, PlantConfig
from defectline.connectors.cameras.base import CameraSource, CapturedFrame, create_source
from defectline.connectors.cameras.errors import CameraError, FrameRejectedError
from defectline.connectors.cameras.publisher import FramePublisher
from defectline.schemas.dead_letters import DeadLetter
from defectline.schemas.frames import FrameMeta

logger = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
# Room left in a message for headers and the dead-letter JSON around a base64 payload.
MESSAGE_OVERHEAD_BYTES = 16_384

FrameHook = Callable[[FrameMeta, CapturedFrame], None]


@dataclass
class CameraRunStats:
    """Counts of one `run_camera` call; delivered means acknowledged by Kafka."""

    camera_id: str
    frames_published: int = 0
    frames_sent: int = 0
    dead_letters: int = 0
    delivery_failures: int = 0
    elapsed_s: float = 0.0


def run_camera(
    config: PlantConfig,
    camera_id: str,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
    *,
    state_dir: Path | None = None,
    on_frame: FrameHook | None = None,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
) -> CameraRunStats:
    """Publish frames of one camera until the source ends, `max_frames` are sent or `stop` is set.

    Without `stop`, SIGINT and SIGTERM end the run when it runs on the main thread. Frames of
    live sources get the id `<run start as yyyymmddThhmmssZ>-<sequence>`. The run starts on the
    next whole second after the call, so a restarted camera never reuses a prefix unless the wall
    clock steps back. `state_dir`
    overrides where sources keep state (default `.defectline/cameras/<camera id>`). `on_frame`
    is called with each published frame, for callers that need the source's `truth` label.
    Raises `CameraError` for an unknown camera or a source that cannot open, and `PublishError`
    when messages are still undelivered after `flush_timeout_s`.
    """
    camera = _find_camera(config, camera_id)
    stats = CameraRunStats(camera_id)
    if not camera.enabled:
        logger.info("camera disabled, nothing to send camera=%s", camera_id)
        return stats
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be 0 or more, got {max_frames}")

    with _stop_on_signals(stop) as stop_event:
        source = create_source(camera, stop=stop_event, state_dir=state_dir)
        publisher = FramePublisher(config.kafka, camera.id)
        source.open()
        started_s = time.monotonic()
        try:
            run_start = _start_on_whole_second(stop_event)
            logger.info(
                "camera started camera=%s station=%s type=%s run=%s max_frames=%s",
                camera.id,
                camera.station,
                camera.source.type,
                run_start,
                max_frames,
            )
            _publish_loop(camera, source, publisher, stats, run_start, max_frames, on_frame)
        finally:
            source.close()
        publisher.flush(flush_timeout_s)

    stats.delivery_failures = publisher.failed
    stats.elapsed_s = round(time.monotonic() - started_s, 3)
    logger.info(
        "camera stopped camera=%s published=%d sent=%d dead_letters=%d delivery_failures=%d",
        camera.id,
        stats.frames_published,
        stats.frames_sent,
        stats.dead_letters,
        stats.delivery_failures,
    )
    return stats


def _publish_loop(
    camera: CameraConfig,
    source: CameraSource,
    publisher: FramePublisher,
    stats: CameraRunStats,
    run_start: str,
    max_frames: int | None,
    on_frame: FrameHook | None,
) -> None:
    sequence = 0
    while max_frames is None or stats.frames_published < max_frames:
        try:
            frame = source.read()
        except FrameRejectedError as exc:
            _send_dead_letter(camera, source, publisher, stats, exc)
            continue
        if frame is None:
            return

        if len(frame.payload) > publisher.max_message_bytes - MESSAGE_OVERHEAD_BYTES:
            _send_dead_letter(
                camera, source, publisher, stats, _too_large(frame, publisher.max_message_bytes)
            )
            continue

        meta = FrameMeta(
            camera_id=camera.id,
            station_id=camera.station,
            frame_id=frame.frame_id or f"{run_start}-{sequence}",
            sequence=sequence,
            captured_at=frame.captured_at,
            encoding=frame.encoding,
            width_px=frame.width_px,
            height_px=frame.height_px,
            part_id=frame.part_id,
            source=frame.source,
        )
        publisher.publish(meta, frame.payload, _on_frame_delivered(source, stats, frame.frame_id))
        stats.frames_published += 1
        sequence += 1
        logger.debug(
            "frame published camera=%s frame=%s sequence=%d",
            camera.id,
            meta.frame_id,
            meta.sequence,
        )
        if on_frame is not None:
            on_frame(meta, frame)


def _on_frame_delivered(
    source: CameraSource, stats: CameraRunStats, source_frame_id: str | None
) -> Callable[[], None]:
    def delivered() -> None:
        stats.frames_sent += 1
        if source_frame_id is not None:
            source.mark_delivered(source_frame_id)

    return delivered


def _send_dead_letter(
    camera: CameraConfig,
    source: CameraSource,
    publisher: FramePublisher,
    stats: CameraRunStats,
    rejected: FrameRejectedError,
) -> None:
    payload = rejected.payload
    reason = rejected.reason
    if len(payload) * 4 // 3 > publisher.max_message_bytes - MESSAGE_OVERHEAD_BYTES:
        reason = f"{reason} (payload of {len(payload)} bytes left out: too large for one message)"
        payload = b""
    logger.warning(
        "frame rejected camera=%s file=%s reason=%s; sending it to topic=%s",
        camera.id,
        rejected.source,
        rejected.reason,
        publisher.dead_letter_topic,
    )

    letter = DeadLetter(
        stage="camera",
        reason=reason,
        error_type=type(rejected).__name__,
        camera_id=camera.id,
        frame_id=rejected.frame_id,
        headers={"station_id": camera.station, "source": rejected.source},
        payload_b64=DeadLetter.encode_payload(payload),
    )

    def delivered() -> None:
        stats.dead_letters += 1
        if rejected.frame_id is not None:
            source.mark_delivered(rejected.frame_id)

    publisher.publish_dead_letter(letter, delivered)


def _too_large(frame: CapturedFrame, max_message_bytes: int) -> FrameRejectedError:
    reason = (
        f"frame of {len(frame.payload)} bytes from {frame.source} exceeds kafka.max_message_bytes "
        f"{max_message_bytes} minus {MESSAGE_OVERHEAD_BYTES} bytes for headers; "
        "raise max_message_bytes "
        "(and the topic's max.message.bytes) or send smaller images"
    )
    return FrameRejectedError(reason, frame.payload, frame.source or "", frame.frame_id)


def _find_camera(config: PlantConfig, camera_id: str) -> CameraConfig:
    try:
        return config.camera(camera_id)
    except KeyError as exc:
        known = [camera.id for camera in config.cameras]
        raise CameraError(
            f"camera '{camera_id}' is not in the configuration; cameras: {known}"
        ) from exc


def _start_on_whole_second(stop: threading.Event) -> str:
    """Wait for the next whole second; return it as yyyymmddThhmmssZ, the prefix of live frame ids.

    A run that published anything began after its own prefix second, so the next run of the
    camera starts at a later second and its frame ids cannot repeat earlier ones.
    """
    start_s = math.floor(time.time()) + 1
    while (remaining_s := start_s - time.time()) > 0 and not stop.wait(remaining_s):
        pass
    return datetime.fromtimestamp(start_s, UTC).strftime("%Y%m%dT%H%M%SZ")


@contextmanager
def _stop_on_signals(stop: threading.Event | None) -> Iterator[threading.Event]:
    """Yield the stop event; without one on the main thread, SIGINT and SIGTERM set a new one."""
    if stop is not None:
        yield stop
        return
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("stop requested signal=%s", signal.Signals(signum).name)
        event.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield event
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
