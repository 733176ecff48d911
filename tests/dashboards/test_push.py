"""`dashboards push` against a local HTTP server that records the Grafana API calls it receives.

Grafana itself cannot be installed here, so the server below plays the few endpoints of
Grafana's HTTP API that the push uses (folders and dashboards/db) and records every request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from defectline.cli.main import main
from defectline.dashboards.catalog import DashboardError
from defectline.dashboards.push import GrafanaTarget, push_dashboards


@dataclass
class FakeGrafana:
    url: str
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    reject_auth: bool = False


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _record(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append((self.command, self.path, dict(self.headers), body))
            return body

        def do_GET(self) -> None:
            self._record()
            if state.reject_auth:
                self._reply(401, {"message": "invalid API key"})
            elif self.path.startswith("/api/folders/") and self.path[13:] in state.folders:
                self._reply(200, {"uid": self.path[13:]})
            else:
                self._reply(404, {"message": "folder not found"})

        def do_POST(self) -> None:
            body = self._record()
            if self.path == "/api/folders":
                state.folders.add(body["uid"])
                self._reply(200, {"uid": body["uid"], "title": body["title"]})
            elif self.path == "/api/dashboards/db":
                uid = body["dashboard"]["uid"]
                self._reply(200, {"status": "success", "uid": uid, "version": 1})
            else:
                self._reply(404, {"message": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_push_creates_folder_and_saves_dashboards(grafana: FakeGrafana) -> None:
    pushed = push_dashboards(
        GrafanaTarget(url=grafana.url, token="glsa_test"), plant_timezone="Europe/Berlin"
    )

    assert sorted(pushed) == ["defectline-defects", "defectline-line", "defectline-model"]
    calls = [(method, path) for method, path, _h, _b in grafana.requests]
    assert calls[:2] == [("GET", "/api/folders/defectline"), ("POST", "/api/folders")]
    assert calls[2:] == [("POST", "/api/dashboards/db")] * 3
    assert all(h["Authorization"] == "Bearer glsa_test" for _m, _p, h, _b in grafana.requests)

    for _method, _path, _headers, body in grafana.requests[2:]:
        assert body["folderUid"] == "defectline"
        assert body["overwrite"] is True
        assert body["dashboard"]["id"] is None
        variables = {v["name"]: v for v in body["dashboard"]["templating"]["list"]}
        assert variables["plant_tz"]["query"] == "Europe/Berlin"
        assert variables["datasource"]["current"]["value"] == "defectline-db"


def test_push_twice_reuses_folder(grafana: FakeGrafana) -> None:
    target = GrafanaTarget(url=grafana.url, user="admin", password="secret")

    push_dashboards(target)
    grafana.requests.clear()
    push_dashboards(target)

    calls = [(method, path) for method, path, _h, _b in grafana.requests]
    assert ("POST", "/api/folders") not in calls
    expected = "Basic " + base64.b64encode(b"admin:secret").decode()
    assert grafana.requests[0][2]["Authorization"] == expected


def test_push_rejected_credentials_raise(grafana: FakeGrafana) -> None:
    grafana.reject_auth = True

    with pytest.raises(DashboardError, match="rejected the request"):
        push_dashboards(GrafanaTarget(url=grafana.url, token="wrong"))


def test_push_without_credentials_raises() -> None:
    with pytest.raises(DashboardError, match="no Grafana credentials"):
        push_dashboards(GrafanaTarget(url="http://127.0.0.1:9"))


def test_cli_dashboards_push(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dashboards", "push", "--url", grafana.url, "--token", "glsa_cli"])

    assert code == 0
    assert "pushed 3 dashboard(s)" in capsys.readouterr().out
    assert sum(path == "/api/dashboards/db" for _m, path, _h, _b in grafana.requests) == 3
