"""A single-node KRaft Kafka broker run from jars that Maven downloads into a cache."""

from __future__ import annotations

import base64
import fcntl
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path

from defectline.deploy.local.errors import JarFetchError, ServiceStartError, ToolMissingError
from defectline.deploy.local.paths import cache_dir as default_cache_dir
from defectline.deploy.local.ports import LOOPBACK, is_port_open
from defectline.deploy.local.process import is_alive, start_detached, tail, terminate

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
MAVEN_TIMEOUT_S = 900
_COMPLETE_MARKER = ".complete"


def require_tool(name: str, debian_package: str) -> str:
    """Return the path of the program `name`, or raise naming the package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(
            f"`{name}` not found on PATH; the local Kafka broker needs it. "
            f"Install it with `apt-get install {debian_package}` (Debian/Ubuntu) "
            f"or put a JDK 17+ and Maven 3.6+ on PATH"
        )
    return path


def fetch_kafka_jars(cache_dir: Path | None = None) -> Path:
    """Download the Kafka broker jars with Maven unless the cache has them; return their folder.

    A file lock lets parallel test sessions share one download.
    """
    root = (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}"
    libs = root / "libs"
    if (libs / _COMPLETE_MARKER).exists():
        return libs

    root.mkdir(parents=True, exist_ok=True)
    with (root / "fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (libs / _COMPLETE_MARKER).exists():
            _run_maven(root, libs)
    return libs


def _run_maven(root: Path, libs: Path) -> None:
    mvn = require_tool("mvn", "maven")
    require_tool("java", "default-jdk-headless")
    pom_text = resources.files("defectline.deploy.local").joinpath("pom.xml").read_text()

    with tempfile.TemporaryDirectory(dir=root, prefix="fetch-") as work:
        work_dir = Path(work)
        (work_dir / "pom.xml").write_text(pom_text)
        output_dir = work_dir / "libs"
        argv = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(work_dir / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={output_dir}",
            "-DincludeScope=runtime",
        ]
        logger.info("fetching Kafka jars version=%s into=%s", KAFKA_VERSION, libs)
        started = time.monotonic()
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise JarFetchError(
                f"Maven did not finish fetching the Kafka {KAFKA_VERSION} jars within "
                f"{MAVEN_TIMEOUT_S} s; check access to Maven Central and retry"
            ) from exc
        if completed.returncode != 0 or not any(output_dir.glob("kafka_2.13-*.jar")):
            output = (completed.stdout + completed.stderr).strip().splitlines()
            raise JarFetchError(
                f"Maven failed to fetch the Kafka {KAFKA_VERSION} jars "
                f"(exit code {completed.returncode}). Last lines of its output:\n"
                + "\n".join(output[-25:])
                + "\nCheck access to Maven Central (or the mirror in ~/.m2/settings.xml) and retry"
            )
        (output_dir / _COMPLETE_MARKER).write_text(KAFKA_VERSION + "\n")
        if libs.exists():
            shutil.rmtree(libs)
        output_dir.rename(libs)
    logger.info("fetched Kafka jars count=%d elapsed_s=%.1f",
                len(list(libs.glob("*.jar"))), time.monotonic() - started)


class KafkaBroker:
    """A combined broker and controller (KRaft) listening on 127.0.0.1.

    `data_dir` contains the properties file, the pid file and the log segments; formatting happens
    once, so a restart keeps topics and offsets.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        port: int,
        controller_port: int,
        cache_dir: Path | None = None,
        heap_mb: int = 512,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port
        self.controller_port = controller_port
        self.cache_dir = cache_dir
        self.heap_mb = heap_mb

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers string clients connect to."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def pid(self) -> int | None:
        """The broker process id recorded by the last start, or None."""
        try:
            return int((self.data_dir / "broker.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        """Return True when the broker process of this data directory runs."""
        return is_alive(self.pid, cmdline_part=str(self.properties_path))

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the broker unless it runs already, and wait until it serves metadata."""
        if self.is_running():
            logger.info("kafka broker already running pid=%s bootstrap=%s", self.pid,
                        self.bootstrap)
            self.wait_ready(timeout_s)
            return

        java = require_tool("java", "default-jdk-headless")
        libs = fetch_kafka_jars(self.cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        self._format_storage(java, libs)

        argv = [
            java, f"-Xmx{self.heap_mb}m", "-Xms64m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._log4j_config()}",
            "-cp", f"{libs}/*", "kafka.Kafka", str(self.properties_path),
        ]
        pid = start_detached(argv, self.log_path)
        (self.data_dir / "broker.pid").write_text(f"{pid}\n")
        logger.info("started kafka broker pid=%d bootstrap=%s log=%s", pid, self.bootstrap,
                    self.log_path)
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the broker accepts connections and returns topic metadata."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ServiceStartError(
                    f"Kafka broker exited during startup (bootstrap {self.bootstrap}). "
                    f"Last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if is_port_open(self.port):
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
                try:
                    admin.list_topics(timeout=5)
                    return
                except KafkaException as exc:
                    logger.debug("kafka broker not ready bootstrap=%s error=%s", self.bootstrap,
                                 exc)
            time.sleep(0.5)
        raise ServiceStartError(
            f"Kafka broker at {self.bootstrap} not ready within {timeout_s:.0f} s. "
            f"Last lines of {self.log_path}:\n{tail(self.log_path)}"
        )

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop the broker with SIGTERM, then SIGKILL after `grace_s`."""
        pid = self.pid
        if pid is not None:
            terminate(pid, "kafka", grace_s, cmdline_part=str(self.properties_path))
        (self.data_dir / "broker.pid").unlink(missing_ok=True)

    def _write_properties(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},"
                         f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # One node: every internal topic has one replica. Few partitions keep startup and
            # the first consumer group join fast on a laptop.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Frames are whole images; these match the 10 MiB default of kafka.max_message_bytes
            # plus room for headers, so the topic settings are the only limit users change.
            "message.max.bytes": "11534336",
            "replica.fetch.max.bytes": "11534336",
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        self.properties_path.write_text("\n".join(lines) + "\n")

    def _format_storage(self, java: str, libs: Path) -> None:
        if (self.data_dir / "log" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        argv = [
            java, "-Xmx256m", f"-Dlog4j2.configurationFile={self._log4j_config()}",
            "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(self.properties_path),
        ]
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).strip()
            raise ServiceStartError(
                f"formatting Kafka storage in {self.data_dir / 'log'} failed "
                f"(exit code {completed.returncode}):\n{output[-3000:]}"
            )
        logger.info("formatted kafka storage cluster_id=%s dir=%s", cluster_id,
                    self.data_dir / "log")

    def _log4j_config(self) -> Path:
        # Copied next to the properties so the path stays valid for an installed (zipped) package.
        target = self.data_dir / "log4j2.properties"
        source = resources.files("defectline.deploy.local").joinpath("log4j2.properties")
        target.write_text(source.read_text())
        return target
