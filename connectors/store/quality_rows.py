"""Row layout of the quality tables: regions, operator feedback, drift events, deployments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from defectline.connectors.store.rows import Row, aware
from defectline.schemas.drift import DriftEvent, EventKind
from defectline.schemas.feedback import Feedback
from defectline.schemas.verdicts import Verdict

REGION_COLUMNS = (
    "captured_at", "camera_id", "frame_id", "region_index", "station_id", "kind", "class_name",
    "score", "x_min_px", "y_min_px", "x_max_px", "y_max_px", "area_px", "area_pct",
)  # fmt: skip

FEEDBACK_COLUMNS = (
    "reported_at", "feedback_id", "label", "camera_id", "frame_id", "part_id", "class_name",
    "operator", "note", "source",
)  # fmt: skip

DRIFT_START_COLUMNS = (
    "started_at", "episode_id", "station_id", "camera_id", "model_name", "model_version",
    "metric", "direction", "magnitude", "message", "causes", "frame_id",
)  # fmt: skip

DEPLOYMENT_COLUMNS = (
    "deployed_at", "station_id", "model_name", "model_version", "model_sha256", "note",
)  # fmt: skip

# A recovery closes the open episode it names; replaying it changes nothing.
CLOSE_DRIFT_EPISODE = (
    "UPDATE drift_events SET ended_at = %s"
    " WHERE episode_id = %s AND ended_at IS NULL AND started_at <= %s"
)


def region_rows(verdict: Verdict) -> list[Row]:
    """Return one row per region of `verdict`, numbered in the order the verdict lists them."""
    where = f"verdict camera={verdict.camera_id} frame={verdict.frame_id}"
    captured_at = aware(verdict.captured_at, "captured_at", where)
    rows: list[Row] = []
    for index, region in enumerate(verdict.regions):
        box = region.box
        rows.append(
            (
                captured_at,
                verdict.camera_id,
                verdict.frame_id,
                index,
                verdict.station_id,
                region.kind,
                region.class_name,
                region.confidence,
                box.x1,
                box.y1,
                box.x2,
                box.y2,
                region.area_px,
                region.area_pct,
            )
        )
    return rows


def feedback_row(feedback: Feedback) -> Row:
    where = f"feedback id={feedback.feedback_id}"
    return (
        aware(feedback.reported_at, "reported_at", where),
        feedback.feedback_id,
        str(feedback.label),
        feedback.camera_id,
        feedback.frame_id,
        feedback.part_id,
        feedback.class_name,
        feedback.operator,
        feedback.note,
        feedback.source,
    )


def split_drift_events(events: Sequence[DriftEvent]) -> tuple[list[Row], list[tuple[Any, ...]]]:
    """Split events into rows to insert (episode starts) and UPDATE parameters (recoveries)."""
    starts: list[Row] = []
    recoveries: list[tuple[Any, ...]] = []
    for event in events:
        where = f"drift event camera={event.camera_id} episode={event.episode_id}"
        occurred_at = aware(event.occurred_at, "occurred_at", where)
        if event.kind is EventKind.RECOVERY:
            recoveries.append((occurred_at, event.episode_id, occurred_at))
            continue
        causes = [cause.model_dump(mode="json") for cause in event.causes]
        starts.append(
            (
                occurred_at,
                event.episode_id,
                event.station_id,
                event.camera_id,
                event.model_name,
                event.model_version,
                str(event.metric),
                str(event.direction),
                event.magnitude,
                event.message,
                Jsonb(causes),
                event.frame_id,
            )
        )
    return starts, recoveries


def deployment_row(
    deployed_at: datetime,
    station_id: str,
    model_name: str,
    model_version: str,
    model_sha256: str | None = None,
    note: str | None = None,
) -> Row:
    where = f"model deployment station={station_id} model={model_name}:{model_version}"
    return (
        aware(deployed_at, "deployed_at", where),
        station_id,
        model_name,
        model_version,
        model_sha256,
        note,
    )
