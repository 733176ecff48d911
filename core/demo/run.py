"""Run the demo: local stack, simulators, worker and cameras, then check and summarise the run."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from defectline.config.models import (
    CameraConfig,
    FolderSource,
    ModelConfig,
    PlantConfig,
)
from defectline.demo.observer import TopicObserver
from defectline.demo.processes import DemoError, SimulatorThread, WorkerProcess
from defectline.demo.summary import Check, DemoReport, build_report
from defectline.deploy.local.ports import free_port, is_port_free
from defectline.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    frames: int = 300
    folder: Path | None = None
    model_file: Path | None = None
    timeout_s: float = 300.0
    keep_stack: bool = False


def run_demo(base: PlantConfig, options: DemoOptions, home: Path) -> DemoReport:
    """Run one demo and return its report; `report.ok` is true only when every check passed."""
    from defectline.connectors.kafka_admin import ensure_topics
    from defectline.connectors.store.postgres import migrate_sync
    from defectline.deploy.local.stack import LocalStack

    stack = LocalStack()
    was_running = stack.status() is not None
    print(
        "Starting the local stack (Kafka, PostgreSQL)"
        + (" - already running" if was_running else "")
    )
    info = stack.start()
    run_dir = home / "demo" / time.strftime("%Y%m%dT%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _demo_config(base, options, info, run_dir)
    config_path = run_dir / "plant.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))

    worker = WorkerProcess(config_path, run_dir / "worker.log", config.worker.web_port)
    simulators = SimulatorThread(config)
    observer: TopicObserver | None = None
    try:
        migrate_sync(config.database)
        ensure_topics(config.kafka)
        print("Starting the PLC simulators (Modbus TCP, OPC UA)")
        simulators.start()
        observer = TopicObserver(config.kafka)
        observer.start()
        print(f"Starting the worker (log: {run_dir / 'worker.log'})")
        worker.start(ready_timeout_s=180)
        expected, failures = _run_cameras(config, options, run_dir)
        _wait_for_results(observer, config, expected, options.timeout_s)
        report = build_report(config, observer.snapshot(), expected, simulators.simulators)
        report.checks.insert(
            0,
            Check(
                "every frame captured was delivered to Kafka",
                failures == 0,
                f"{failures} delivery failure(s)",
            ),
        )
        if options.folder is not None:
            report.notes.append(
                "folder frames take the file's modification time as capture time, so the "
                "capture-to-PLC latency includes the age of the files"
            )
        return report
    finally:
        if observer is not None:
            observer.stop()
        code = worker.stop()
        if code not in (None, 0):
            logger.warning("worker exited with code %s; log tail:\n%s", code, worker.log_tail())
        simulators.stop()
        if not was_running and not options.keep_stack:
            stack.stop()


def _demo_config(
    base: PlantConfig, options: DemoOptions, info: object, run_dir: Path
) -> PlantConfig:
    """Point the configuration at the local stack, free ports, and the chosen input and model."""
    document = base.model_dump(mode="python")
    # Each run gets topics and a consumer group of its own, so the routing agent's record of
    # what it already wrote to the PLCs starts empty and earlier runs' messages are not counted.
    run_name = run_dir.name.lower()
    document["kafka"]["bootstrap_servers"] = info.kafka_bootstrap
    document["kafka"]["topic_prefix"] = f"{base.kafka.topic_prefix}demo-{run_name}."
    document["worker"]["app_id"] = f"{base.worker.app_id}-{run_name}"
    document["database"].update(
        host=info.postgres_host,
        port=info.postgres_port,
        user=info.postgres_user,
        dbname=info.postgres_dbname,
    )
    document["worker"].update(
        data_dir=run_dir / "worker", web_port=_port_or_free(base.worker.web_port)
    )

    for plc in document["plcs"]:
        if plc["type"] == "modbus":
            plc["port"] = _port_or_free(plc["port"])
        else:
            host_port, _, path = plc["endpoint"].removeprefix("opc.tcp://").partition("/")
            host, _, port = host_port.rpartition(":")
            plc["endpoint"] = f"opc.tcp://{host}:{_port_or_free(int(port))}/{path}"

    if options.model_file is not None:
        document["model"] = _load_model_section(options.model_file)
    if options.folder is not None:
        station = base.stations[0].id
        document["cameras"] = [
            CameraConfig(
                id="folder-1",
                station=station,
                source=FolderSource(
                    path=options.folder.resolve(), recursive=True, watch=False, settle_ms=0
                ),
            ).model_dump(mode="python")
        ]
    return PlantConfig.model_validate(document)


def _load_model_section(path: Path) -> dict:
    """Read a YAML file holding a `model:` section; a relative model path is taken from the file's folder."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model configuration {path}: {exc}") from exc
    section = document.get("model", document) if isinstance(document, dict) else None
    if not isinstance(section, dict) or "path" not in section:
        raise ConfigError(
            f"{path}: expected a 'model:' section with at least 'path', 'class_names' "
            "and 'preprocess'"
        )
    model_path = Path(section["path"])
    if not model_path.is_absolute():
        section["path"] = str((path.parent / model_path).resolve())
    ModelConfig.model_validate(section)
    return section


def _port_or_free(port: int) -> int:
    return port if is_port_free(port) else free_port()


def _run_cameras(config: PlantConfig, options: DemoOptions, run_dir: Path) -> tuple[int, int]:
    """Publish the frames of every enabled camera at once; return (delivered, failed delivery)."""
    from defectline.connectors.cameras.runner import run_camera

    cameras = [camera for camera in config.cameras if camera.enabled]
    if not cameras:
        raise DemoError("the configuration has no enabled camera")
    per_camera = None if options.folder is not None else max(1, options.frames // len(cameras))
    sent: dict[str, int] = {}
    failures: dict[str, int] = {}
    errors: list[str] = []

    def publish(camera_id: str) -> None:
        try:
            stats = run_camera(
                config, camera_id, max_frames=per_camera, state_dir=run_dir / "cameras" / camera_id
            )
            sent[camera_id] = stats.frames_sent
            failures[camera_id] = stats.delivery_failures
        except Exception as exc:  # noqa: BLE001 - reported below with the camera id
            errors.append(f"camera {camera_id}: {exc}")

    threads = [
        threading.Thread(target=publish, args=(camera.id,), name=f"camera-{camera.id}")
        for camera in cameras
    ]
    print(f"Inspecting frames from {len(cameras)} camera(s)")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise DemoError("; ".join(errors))
    return sum(sent.values()), sum(failures.values())


def _wait_for_results(
    observer: TopicObserver, config: PlantConfig, expected: int, timeout_s: float
) -> None:
    """Show progress until every frame has a verdict and all its PLC writes, or time runs out."""
    outputs_per_station = {station.id: len(station.outputs) for station in config.stations}
    deadline = time.monotonic() + timeout_s
    with tqdm(total=expected, desc="verdicts", unit="frame") as progress:
        while time.monotonic() < deadline:
            observed = observer.snapshot()
            progress.update(len(observed.verdicts) - progress.n)
            written = sum(
                1
                for key, verdict in observed.verdicts.items()
                if len(observed.plc_writes.get(key, ()))
                >= outputs_per_station.get(verdict.station_id, 0)
            )
            if len(observed.verdicts) >= expected and written >= expected:
                # Give duplicates, if any, a moment to show up before the checks count them.
                time.sleep(1.0)
                return
            time.sleep(0.2)
    logger.warning("timed out after %.0f s waiting for verdicts and PLC writes", timeout_s)


def report_json(report: DemoReport) -> str:
    return json.dumps(report.as_dict(), indent=2, default=str)
