"""The local development stack: one Kafka broker and one PostgreSQL cluster, no Docker.

State (ports, data, logs) lives in `$DEFECTLINE_HOME/stack/`; run
`python -m defectline.deploy.local.stack {start,status,stop,remove,fetch}`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from defectline.deploy.local.kafka import KafkaBroker, fetch_kafka_jars
from defectline.deploy.local.paths import defectline_home
from defectline.deploy.local.ports import LOOPBACK, pick_port
from defectline.deploy.local.postgres import APP_DATABASE, APP_ROLE, PostgresCluster
from defectline.errors import DefectlineError

logger = logging.getLogger(__name__)

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_POSTGRES_PORT = 15432
EXIT_NOT_RUNNING = 3


@dataclass(frozen=True)
class StackPorts:
    """The TCP ports a first start tries before it falls back to free ones."""

    kafka: int = DEFAULT_KAFKA_PORT
    kafka_controller: int = DEFAULT_KAFKA_CONTROLLER_PORT
    postgres: int = DEFAULT_POSTGRES_PORT


@dataclass(frozen=True)
class StackInfo:
    """Addresses, process ids and log files of the local services."""

    home: Path
    kafka_bootstrap: str
    kafka_running: bool
    kafka_pid: int | None
    kafka_log: Path
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_dbname: str
    postgres_running: bool
    postgres_pid: int | None
    postgres_log: Path
    postgres_data_dir: Path
    conninfo: str

    def describe(self) -> str:
        """Format the services as the lines `stack status` prints."""
        kafka_state = f"running pid={self.kafka_pid}" if self.kafka_running else "stopped"
        pg_state = f"running pid={self.postgres_pid}" if self.postgres_running else "stopped"
        return "\n".join([
            f"kafka       {self.kafka_bootstrap}  {kafka_state}  log={self.kafka_log}",
            f"postgresql  {self.conninfo}  {pg_state}  log={self.postgres_log}",
            f"postgresql data={self.postgres_data_dir}",
            f"state       {self.home}",
        ])


class LocalStack:
    """The Kafka broker and PostgreSQL cluster that `defectline stack start` runs.

    `start()` reuses services that an earlier start left running, so it is safe to call twice.
    A default port that another program uses is replaced by a free one, and the choice is kept
    in `state.json` for later starts.
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        preferred_ports: StackPorts | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """Keep state in `home`/stack (default `$DEFECTLINE_HOME`) and jars in `cache_dir`.

        `preferred_ports` replaces the defaults 19092, 19093 and 15432 for a first start.
        """
        root = home or defectline_home()
        self.home = root / "stack"
        self.log_dir = self.home / "logs"
        self.state_path = self.home / "state.json"
        self.cache_dir = cache_dir or root / "cache"
        self.preferred_ports = preferred_ports or StackPorts()

    def start(self) -> StackInfo:
        """Start whatever is not running yet and return where the services listen."""
        with self._locked():
            ports = self._load_ports()
            postgres = self._postgres(ports)
            kafka = self._kafka(ports)
            if not postgres.is_running():
                ports["postgres"] = pick_port(ports["postgres"], {ports["kafka"],
                                                                  ports["kafka_controller"]})
            if not kafka.is_running():
                ports["kafka"] = pick_port(ports["kafka"], {ports["postgres"]})
                ports["kafka_controller"] = pick_port(ports["kafka_controller"],
                                                      {ports["postgres"], ports["kafka"]})
            self._save_ports(ports)

            postgres = self._postgres(ports)
            postgres.start()
            kafka = self._kafka(ports)
            kafka.start()
            info = self._info(ports, kafka, postgres)
        logger.info("local stack running kafka=%s postgres_port=%d", info.kafka_bootstrap,
                    info.postgres_port)
        return info

    def status(self) -> StackInfo | None:
        """Return the services of this stack, or None when neither runs."""
        if not self.state_path.exists():
            return None
        ports = self._load_ports()
        info = self._info(ports, self._kafka(ports), self._postgres(ports))
        if not (info.kafka_running or info.postgres_running):
            return None
        return info

    def stop(self) -> None:
        """Stop both services; data, ports and logs stay for the next start."""
        if not self.state_path.exists():
            return
        with self._locked():
            ports = self._load_ports()
            self._kafka(ports).stop()
            self._postgres(ports).stop()
        logger.info("local stack stopped home=%s", self.home)

    def remove(self) -> None:
        """Stop both services and delete their data, state and logs (the jar cache stays)."""
        if not self.state_path.exists():
            return
        self.stop()
        with self._locked():
            self._postgres(self._load_ports()).remove()
            shutil.rmtree(self.home / "kafka", ignore_errors=True)
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.state_path.unlink(missing_ok=True)
        logger.info("local stack removed home=%s", self.home)

    def _kafka(self, ports: dict[str, int]) -> KafkaBroker:
        return KafkaBroker(self.home / "kafka", self.log_dir / "kafka.log", ports["kafka"],
                           ports["kafka_controller"], cache_dir=self.cache_dir)

    def _postgres(self, ports: dict[str, int]) -> PostgresCluster:
        return PostgresCluster(self.home / "postgres", ports["postgres"],
                               self.log_dir / "postgres.log")

    def _info(self, ports: dict[str, int], kafka: KafkaBroker,
              postgres: PostgresCluster) -> StackInfo:
        kafka_running = kafka.is_running()
        postgres_running = postgres.is_running()
        return StackInfo(
            home=self.home,
            kafka_bootstrap=kafka.bootstrap,
            kafka_running=kafka_running,
            kafka_pid=kafka.pid if kafka_running else None,
            kafka_log=kafka.log_path,
            postgres_host=LOOPBACK,
            postgres_port=ports["postgres"],
            postgres_user=APP_ROLE,
            postgres_dbname=APP_DATABASE,
            postgres_running=postgres_running,
            postgres_pid=postgres.pid if postgres_running else None,
            postgres_log=postgres.log_path,
            postgres_data_dir=postgres.data_dir,
            conninfo=postgres.conninfo(),
        )

    def _load_ports(self) -> dict[str, int]:
        ports = {
            "kafka": self.preferred_ports.kafka,
            "kafka_controller": self.preferred_ports.kafka_controller,
            "postgres": self.preferred_ports.postgres,
        }
        if self.state_path.exists():
            try:
                saved = json.loads(self.state_path.read_text())
            except (OSError, ValueError) as exc:
                raise DefectlineError(
                    f"cannot read the stack state {self.state_path}: {exc}; "
                    "stop any service it started and delete the file"
                ) from exc
            ports.update({key: int(saved[key]) for key in ports if key in saved})
        return ports

    def _save_ports(self, ports: dict[str, int]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp_path = self.state_path.with_suffix(".tmp")
        tmp_path.write_text(json.dumps(ports, indent=2) + "\n")
        tmp_path.replace(self.state_path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stack action from the command line; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m defectline.deploy.local.stack",
        description="Run the local Kafka broker and PostgreSQL cluster without Docker.",
    )
    parser.add_argument("action", choices=["start", "status", "stop", "remove", "fetch"],
                        help="remove also deletes data and logs; fetch only downloads the "
                             "Kafka jars into the cache")
    parser.add_argument("--home", type=Path, default=None,
                        help="state and cache folder (default: $DEFECTLINE_HOME or "
                             "~/.cache/defectline)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)

    stack = LocalStack(args.home)
    try:
        return _run_action(stack, args.action)
    except DefectlineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_action(stack: LocalStack, action: str) -> int:
    if action == "fetch":
        print(fetch_kafka_jars(stack.cache_dir))
        return 0
    if action == "start":
        print(stack.start().describe())
        return 0
    if action == "stop":
        stack.stop()
        print("local stack stopped")
        return 0
    if action == "remove":
        stack.remove()
        print("local stack removed")
        return 0

    info = stack.status()
    if info is None:
        print("local stack is not running")
        return EXIT_NOT_RUNNING
    print(info.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
