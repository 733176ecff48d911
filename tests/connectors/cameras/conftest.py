"""Fixtures of the camera connector tests: plant configs, image files and Kafka topic helpers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic

from defectline.config import load_config
from defectline.config.models import PlantConfig
from defectline.schemas import topics


@pytest.fixture
def make_plant() -> Callable[..., PlantConfig]:
    """Build a plant config from the demo plant with the given cameras and Kafka settings."""

    def build(
        cameras: list[dict[str, Any]], bootstrap: str = "127.0.0.1:9", prefix: str = ""
    ) -> PlantConfig:
        overrides = {
            "kafka": {"bootstrap_servers": bootstrap, "topic_prefix": prefix},
            "cameras": cameras,
        }
        return load_config(environ={}, overrides=overrides)

    return build


@pytest.fixture
def write_image() -> Callable[..., bytes]:
    """Write a noisy BGR image file and return its bytes; `mtime_s` sets its modification time."""

    def write(
        path: Path,
        width_px: int = 40,
        height_px: int = 30,
        seed: int = 0,
        mtime_s: float | None = None,
    ) -> bytes:
        rng = np.random.default_rng(seed)
        image = rng.integers(0, 256, (height_px, width_px, 3), dtype=np.uint8)
        ok, buffer = cv2.imencode(path.suffix, image)
        assert ok
        path.write_bytes(buffer.tobytes())
        if mtime_s is not None:
            os.utime(path, (mtime_s, mtime_s))
        return buffer.tobytes()

    return write


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def camera_topics(kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    """Create the frames and dead-letter topics of one test, 1 partition each; return the names."""
    names = {
        "frames": topics.topic_name(topics.FRAMES, topic_prefix),
        "dead_letter": topics.topic_name(topics.DEAD_LETTER, topic_prefix),
    }
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1) for name in names.values()]
    )
    for future in futures.values():
        future.result(timeout=30)
    return names


@pytest.fixture
def consume(kafka_bootstrap: str) -> Callable[[str, int, float], list[Message]]:
    """Read `count` messages from the start of a topic, or fewer when `timeout_s` passes."""

    def read(topic: str, count: int, timeout_s: float = 20.0) -> list[Message]:
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        messages: list[Message] = []
        try:
            for _ in range(int(timeout_s / 0.5)):
                if len(messages) >= count:
                    break
                message = consumer.poll(0.5)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                messages.append(message)
        finally:
            consumer.close()
        return messages

    return read
