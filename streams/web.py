"""HTTP pages of the worker: /health for orchestrators and /metrics for Prometheus."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest

from defectline.streams.metrics import REGISTRY

if TYPE_CHECKING:
    from defectline.streams.worker import Worker


def register_pages(worker: Worker) -> None:
    app = worker.app

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        ready = worker.state.get("ready") == "true"
        body = {
            "status": "ok" if ready else "starting",
            "model": {
                "name": worker.inspector.model.name,
                "version": worker.inspector.model.version,
            },
            "plcs": {name: writer.state.value for name, writer in worker.writers.items()},
            "database": "connected" if worker.recorder.connected else "not connected",
        }
        return web.json(body, status=200 if ready else 503)

    # aiohttp rejects a charset inside content_type, so the exposition format's media type is
    # given without prometheus_client's "; charset=utf-8" suffix (the body is UTF-8 anyway).
    metrics_content_type = "text/plain"

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=metrics_content_type)
