"""Result deadlines of stations: when a verdict is late, and what the fail-safe writes instead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from defectline.config.models import StationConfig, VerdictField

Value = bool | int | float


@dataclass(frozen=True)
class Deadline:
    """The moment a station's result must be at the PLC: capture time plus result_deadline_ms."""

    at: datetime

    def remaining_s(self, now: datetime | None = None) -> float:
        """Seconds left until the deadline; zero or negative once it has passed."""
        return (self.at - (now or datetime.now(UTC))).total_seconds()

    def has_passed(self, now: datetime | None = None) -> bool:
        return self.remaining_s(now) <= 0


def deadline_for(station: StationConfig, captured_at: datetime) -> Deadline | None:
    """Return the deadline of a frame captured at `captured_at`, or None without one."""
    if station.result_deadline_ms is None:
        return None
    return Deadline(captured_at + timedelta(milliseconds=station.result_deadline_ms))


def fail_safe_values(
    station: StationConfig, values: Mapping[VerdictField, Value]
) -> dict[VerdictField, Value] | None:
    """Return the values written in place of a late verdict, or None for the action `none`.

    The reject flag follows the action, class_code is the station's `fail_safe_class_code`,
    confidence is 0 and uncertain is false; sequence and part id stay those of the verdict,
    so the PLC can tell which part the fail-safe result belongs to.
    """
    if station.fail_safe_action == "none":
        return None
    replaced: dict[VerdictField, Value] = dict(values)
    replaced[VerdictField.REJECT] = station.fail_safe_action == "reject"
    replaced[VerdictField.CLASS_CODE] = station.fail_safe_class_code
    replaced[VerdictField.CONFIDENCE] = 0.0
    if VerdictField.UNCERTAIN in replaced:
        replaced[VerdictField.UNCERTAIN] = False
    return replaced
