"""The dashboard JSON files shipped in this package, loaded and checked for provisioning."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from defectline.errors import DefectlineError

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID_VARIABLE = "${datasource}"
# The uid that deploy/grafana/provisioning/datasources/defectline.yaml gives the database.
PROVISIONED_DATASOURCE_UID = "defectline-db"
TIMEZONE_VARIABLE = "plant_tz"

_PLACEHOLDER = re.compile(r"\$\{DS_[A-Z0-9_]+\}")


class DashboardError(DefectlineError):
    """A dashboard file is not valid JSON or breaks a provisioning rule."""


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Read every `*.json` dashboard of this package, keyed by file stem, and check each."""
    dashboards: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            document = json.loads(entry.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DashboardError(f"dashboard {entry.name} is not valid JSON: {exc}") from exc
        check_dashboard(entry.name, document)
        dashboards[entry.name.removesuffix(".json")] = document
    return dashboards


def iter_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every panel, including those nested in rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def check_dashboard(name: str, dashboard: dict[str, Any]) -> None:
    """Raise `DashboardError` naming the first rule `dashboard` breaks.

    The rules keep a file loadable by file provisioning on any Grafana: no `__inputs` or
    `${DS_...}` placeholders (those need the import dialog), no fixed numeric dashboard id, a
    relative time range, unique panel ids, and every query on the `${datasource}` variable.
    """
    text = json.dumps(dashboard)
    problems: list[str] = []
    if "__inputs" in dashboard or "__requires" in dashboard:
        problems.append("has __inputs or __requires, which only the import dialog resolves")
    placeholder = _PLACEHOLDER.search(text)
    if placeholder is not None:
        problems.append(f"contains the placeholder {placeholder.group(0)}")
    if dashboard.get("id") is not None:
        problems.append(f"has the fixed id {dashboard['id']}; remove it, the uid identifies it")
    if not dashboard.get("uid"):
        problems.append("has no uid")
    time_range = dashboard.get("time", {})
    if not str(time_range.get("from", "")).startswith("now"):
        problems.append(f"has the absolute time range {time_range}; use now-6h style bounds")

    seen: set[int] = set()
    for panel in iter_panels(dashboard):
        problems.extend(_panel_problems(panel, seen))
    if problems:
        raise DashboardError(f"dashboard {name}: " + "; ".join(problems))


def _panel_problems(panel: dict[str, Any], seen: set[int]) -> list[str]:
    label = f"panel {panel.get('id')} '{panel.get('title', '')}'"
    if panel.get("type") == "row":
        return []
    problems = []
    if panel.get("id") in seen:
        problems.append(f"{label} reuses a panel id")
    seen.add(panel.get("id"))  # type: ignore[arg-type]
    targets = panel.get("targets") or []
    if not targets or not all(target.get("rawSql", "").strip() for target in targets):
        problems.append(f"{label} has no SQL query")
    for source in [panel.get("datasource")] + [target.get("datasource") for target in targets]:
        if source != {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID_VARIABLE}:
            problems.append(f"{label} uses datasource {source}, not the ${{datasource}} variable")
    return problems


def with_plant_timezone(dashboard: dict[str, Any], timezone: str) -> dict[str, Any]:
    """Return a copy whose `plant_tz` constant is `timezone`."""
    copy = json.loads(json.dumps(dashboard))
    for variable in copy.get("templating", {}).get("list", []):
        if variable.get("name") == TIMEZONE_VARIABLE:
            variable["query"] = timezone
            variable["current"] = {"text": timezone, "value": timezone}
    return copy
