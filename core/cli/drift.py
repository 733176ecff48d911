"""The `defectline drift` subcommands: rebuild a camera's drift reference profile."""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)


# The confidence histogram and image statistics of a reference need this many frames at least
# to be stable; an estimate, the default reference_frames is 500.
MIN_CALIBRATION_FRAMES = 50


def add_parser(commands: Any) -> None:
    drift = commands.add_parser("drift", help="drift detection tasks")
    tasks = drift.add_subparsers(dest="drift_command", required=True, metavar="TASK")
    rebuild = tasks.add_parser(
        "rebuild-reference",
        help="build a new reference profile for a camera and hand it to the running worker",
    )
    rebuild.add_argument("--camera", required=True, help="camera id from the configuration")
    rebuild.add_argument(
        "--frames", type=int, default=None,
        help="frames of the calibration run (default: drift.reference_frames)",
    )  # fmt: skip
    rebuild.add_argument(
        "--live", action="store_true",
        help="let the worker relearn from its next live frames instead of a calibration run",
    )  # fmt: skip
    rebuild.set_defaults(handler=run_rebuild_reference)


def run_rebuild_reference(args: argparse.Namespace) -> int:
    from defectline.cli.main import load_plant
    from defectline.connectors.kafka_admin import ensure_topics
    from defectline.streams.drift.calibration import (
        CalibrationError,
        calibrate,
        latest_reference_version,
        publish_reference,
    )

    config = load_plant(args)
    frames = config.drift.reference_frames if args.frames is None else args.frames
    if frames < MIN_CALIBRATION_FRAMES:
        raise CalibrationError(
            f"--frames is {frames}; give {MIN_CALIBRATION_FRAMES} or more, since a reference "
            "from fewer frames makes ordinary variation look like drift"
        )
    ensure_topics(config.kafka)
    if args.live:
        publish_reference(config, args.camera, None)
        print(
            f"camera {args.camera}: the worker relearns the reference from the next "
            f"{config.drift.reference_frames} frames"
        )
        return 0

    version = latest_reference_version(config, args.camera) + 1
    profile = calibrate(config, args.camera, frames, version)
    publish_reference(config, args.camera, profile)
    brightness = profile.image.get("brightness")
    print(
        f"camera {args.camera}: reference version {profile.version} from {profile.frames} "
        f"calibration frames, model {profile.model_name}:{profile.model_version}, "
        f"mean confidence {profile.confidence_mean:.3f}, uncertain "
        f"{profile.uncertain_fraction:.1%}"
        + (f", brightness {brightness.mean:.1f}" if brightness else "")
    )
    return 0
