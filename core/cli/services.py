"""Subcommands that run one service or task: worker, camera, plc-sim, db, stack, topics, config."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)


def add_parsers(commands: Any) -> None:
    from defectline.cli import drift

    drift.add_parser(commands)
    worker = commands.add_parser(
        "worker", help="run the Faust worker (inference, PLC routing, recording)"
    )
    worker.set_defaults(handler=run_worker)

    camera = commands.add_parser(
        "camera", help="run one camera connector, publishing frames to Kafka"
    )
    camera.add_argument("--camera", required=True, help="camera id from the configuration")
    camera.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    camera.set_defaults(handler=run_camera)

    plc_sim = commands.add_parser(
        "plc-sim", help="serve the configured PLC maps over Modbus TCP and OPC UA"
    )
    plc_sim.set_defaults(handler=run_plc_sim)

    database = commands.add_parser("db", help="database tasks")
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="TASK")
    migrate = db_commands.add_parser(
        "migrate", help="apply pending schema migrations (safe to re-run)"
    )
    migrate.set_defaults(handler=run_db_migrate)

    topics = commands.add_parser("topics", help="create the Kafka topics of the message contracts")
    topics.set_defaults(handler=run_create_topics)

    stack = commands.add_parser("stack", help="the local Kafka and PostgreSQL stack (no Docker)")
    stack.add_argument("action", choices=["start", "status", "stop"])
    stack.set_defaults(handler=run_stack)

    check = commands.add_parser(
        "config", help="validate the configuration and print it, secrets masked"
    )
    check.set_defaults(handler=run_config_check)

    feedback = commands.add_parser(
        "feedback", help="report a false reject or an escape for one inspected frame or part"
    )
    feedback.add_argument("--camera", help="camera id of the frame")
    feedback.add_argument("--frame", help="frame id, with --camera")
    feedback.add_argument("--part", help="part id, instead of --camera and --frame")
    feedback.add_argument(
        "--label",
        required=True,
        choices=["false-reject", "escape"],
        help="false-reject: the reject was a good part; escape: a defect found downstream",
    )
    feedback.add_argument("--class", dest="class_name", help="defect class found, for an escape")
    feedback.add_argument("--note", help="free text stored with the report")
    feedback.add_argument("--operator", help="who reports it")
    feedback.set_defaults(handler=run_feedback)

    dashboards = commands.add_parser("dashboards", help="Grafana dashboards")
    dash_commands = dashboards.add_subparsers(dest="dash_command", required=True, metavar="TASK")
    push = dash_commands.add_parser("push", help="upload the dashboards to a running Grafana")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    push.add_argument("--token", help="service account token (default: $GRAFANA_TOKEN)")
    push.add_argument("--user", help="basic-auth user, with --password")
    push.add_argument("--password", help="basic-auth password (default: $GRAFANA_PASSWORD)")
    push.add_argument("--folder", default="Defectline", help="folder title (default: Defectline)")
    push.add_argument("--timeout-s", type=float, default=10.0, help="per-request timeout, seconds")
    push.set_defaults(handler=run_dashboards_push)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from defectline.cli.main import load_plant
    from defectline.connectors.kafka_admin import ensure_topics
    from defectline.streams.worker import build_worker

    config = load_plant(args)
    config.worker.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(config.kafka)
    worker = build_worker(config)
    faust.Worker(
        worker.app, loglevel=args.log_level, quiet=True, redirect_stdouts=False
    ).execute_from_commandline()
    return 0


def run_camera(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.connectors.cameras.runner import run_camera as run
    from defectline.connectors.kafka_admin import ensure_topics

    config = load_plant(args)
    ensure_topics(config.kafka)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stats = run(config, args.camera, max_frames=args.max_frames, stop=stop)
    logger.info("camera stopped camera=%s stats=%s", args.camera, stats)
    return 0


def run_plc_sim(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.connectors.plc.sim.runner import run_simulators

    config = load_plant(args)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_simulators(config, stop)

    asyncio.run(serve())
    return 0


def run_db_migrate(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.connectors.store.postgres import migrate_sync

    config = load_plant(args)
    applied = migrate_sync(config.database)
    database = config.database
    print(
        f"database {database.host}:{database.port}/{database.dbname} is at schema version "
        f"{applied[-1] if applied else 'none'} (migrations in place: {', '.join(applied) or 'none'})"
    )
    return 0


def run_create_topics(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.connectors.kafka_admin import ensure_topics

    config = load_plant(args)
    created = ensure_topics(config.kafka)
    print(f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else ""))
    return 0


def run_stack(args: argparse.Namespace) -> int:
    from defectline.deploy.local.stack import LocalStack

    stack = LocalStack()
    if args.action == "stop":
        stack.stop()
        print("local stack stopped")
        return 0
    info = stack.start() if args.action == "start" else stack.status()
    if info is None:
        print("local stack is not running; start it with: defectline stack start")
        return 3
    print(f"Kafka      {info.kafka_bootstrap}\nPostgreSQL {info.conninfo}\n")
    print("Point the other commands at this stack with:")
    print(f"  export DEFECTLINE_KAFKA__BOOTSTRAP_SERVERS={info.kafka_bootstrap}")
    print(f"  export DEFECTLINE_DATABASE__HOST={info.postgres_host}")
    print(f"  export DEFECTLINE_DATABASE__PORT={info.postgres_port}")
    return 0


def run_config_check(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant

    config = load_plant(args)
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    return 0


def run_feedback(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from defectline.cli.main import load_plant
    from defectline.errors import ConfigError
    from defectline.schemas.feedback import Feedback
    from defectline.streams.feedback import publish_feedback

    config = load_plant(args)
    try:
        report = Feedback(
            label=args.label,
            camera_id=args.camera,
            frame_id=args.frame,
            part_id=args.part,
            class_name=args.class_name,
            note=args.note,
            operator=args.operator,
            source="cli",
        )
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors(include_url=False))
        raise ConfigError(f"invalid feedback: {problems}") from exc
    publish_feedback(config, report)
    print(f"feedback {report.feedback_id} sent: {report.label}")
    return 0


def run_dashboards_push(args: argparse.Namespace) -> int:
    import os

    from defectline.cli.main import load_plant
    from defectline.dashboards.push import GrafanaTarget, push_dashboards

    config = load_plant(args)
    target = GrafanaTarget(
        url=args.url,
        token=args.token or os.environ.get("GRAFANA_TOKEN"),
        user=args.user,
        password=args.password or os.environ.get("GRAFANA_PASSWORD"),
        timeout_s=args.timeout_s,
    )
    pushed = push_dashboards(target, plant_timezone=config.plant_timezone, folder=args.folder)
    print(f"pushed {len(pushed)} dashboard(s) to {args.url}: {', '.join(pushed)}")
    return 0
