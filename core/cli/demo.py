"""The `defectline demo` subcommand: argument parsing and exit status."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="inspect a simulated line end to end on the local stack and print a summary",
        description="Start the local Kafka and PostgreSQL stack, the PLC simulators, the worker and "
        "the cameras; inspect frames; check that every frame got exactly one verdict, one write "
        "per configured PLC and one stored row; print a summary. Exits 0 only when every check passes.",
    )
    demo.add_argument(
        "--frames",
        type=int,
        default=300,
        help="frames to inspect across the synthetic cameras (default: 300)",
    )
    demo.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="inspect the images in this folder instead of the synthetic cameras",
    )
    demo.add_argument(
        "--model",
        type=Path,
        default=None,
        dest="model_file",
        help="YAML file with a 'model:' section (ONNX path, class names, preprocessing) "
        "to use instead of the bundled demo model",
    )
    demo.add_argument(
        "--timeout-s",
        type=float,
        default=300.0,
        help="seconds to wait for all verdicts and PLC writes (default: 300)",
    )
    demo.add_argument(
        "--keep-stack",
        action="store_true",
        help="leave Kafka and PostgreSQL running afterwards (a stack that was already "
        "running is always left running)",
    )
    demo.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.demo.run import DemoOptions, report_json, run_demo
    from defectline.demo.summary import print_report
    from defectline.deploy.local.paths import defectline_home

    config = load_plant(args)
    options = DemoOptions(
        frames=args.frames,
        folder=args.folder,
        model_file=args.model_file,
        timeout_s=args.timeout_s,
        keep_stack=args.keep_stack,
    )
    home = defectline_home()
    report = run_demo(config, options, home)
    print_report(report)
    if args.json is not None:
        args.json.write_text(report_json(report))
    return 0 if report.ok else 1
