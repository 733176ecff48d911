"""`defectline dashboards push`: upload the shipped dashboards to a running Grafana.

Uses grafana-client. Each dashboard is saved with overwrite into one folder, with its `plant_tz`
constant set to the plant's time zone. Its datasource variable stays as shipped, so it resolves
to the datasource of uid `defectline-db` or to the one picked in the dashboard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from defectline.dashboards.catalog import DashboardError, load_dashboards, with_plant_timezone

logger = logging.getLogger(__name__)

FOLDER_UID = "defectline"


@dataclass(frozen=True)
class GrafanaTarget:
    """Grafana base URL and credentials: a service account token, or user and password."""

    url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    def credential(self) -> str | tuple[str, str]:
        if self.token:
            return self.token
        if self.user and self.password is not None:
            return (self.user, self.password)
        raise DashboardError(
            "no Grafana credentials: pass --token (or set GRAFANA_TOKEN), "
            "or --user with --password (or set GRAFANA_PASSWORD)"
        )


def push_dashboards(
    target: GrafanaTarget, plant_timezone: str = "UTC", folder: str = "Defectline"
) -> list[str]:
    """Create the folder if needed and save every dashboard into it; return the uids pushed."""
    api = GrafanaApi.from_url(target.url, credential=target.credential(), timeout=target.timeout_s)
    try:
        _ensure_folder(api, folder)
        pushed = []
        for name, dashboard in load_dashboards().items():
            body = with_plant_timezone(dashboard, plant_timezone)
            body["id"] = None
            api.dashboard.update_dashboard(
                {
                    "dashboard": body,
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "pushed by defectline dashboards push",
                }
            )
            logger.info("dashboard pushed name=%s uid=%s url=%s", name, body["uid"], target.url)
            pushed.append(body["uid"])
    except GrafanaException as exc:
        raise DashboardError(
            f"Grafana at {target.url} rejected the request: {exc}; check the URL, the "
            "credentials and that the account may edit dashboards"
        ) from exc
    except OSError as exc:
        raise DashboardError(f"cannot reach Grafana at {target.url}: {exc}") from exc
    return pushed


def _ensure_folder(api: GrafanaApi, title: str) -> None:
    try:
        api.folder.get_folder(FOLDER_UID)
        return
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    api.folder.create_folder(title, uid=FOLDER_UID)
    logger.info("grafana folder created uid=%s title=%s", FOLDER_UID, title)
