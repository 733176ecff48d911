"""Processes and threads a demo run starts: the worker, the PLC simulators and the cameras."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from defectline.config.models import PlantConfig
from defectline.errors import DefectlineError

logger = logging.getLogger(__name__)


class DemoError(DefectlineError):
    """A part of the demo did not start or did not finish in time."""


class WorkerProcess:
    """`defectline worker` as a child process, its output in `log_path`."""

    def __init__(self, config_path: Path, log_path: Path, web_port: int) -> None:
        self._config_path = config_path
        self._log_path = log_path
        self._health_url = f"http://127.0.0.1:{web_port}/health"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float) -> None:
        command = [
            sys.executable,
            "-m",
            "defectline.cli.main",
            "--config",
            str(self._config_path),
            "--log-level",
            "INFO",
            "worker",
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DemoError(
                    f"the worker exited with code {self._process.returncode} before it "
                    f"was ready; its log:\n{self.log_tail()}"
                )
            if self._is_healthy():
                return
            time.sleep(0.5)
        raise DemoError(
            f"the worker was not ready within {ready_timeout_s:.0f} s "
            f"({self._health_url}); its log:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 30.0) -> int | None:
        if self._process is None or self._process.poll() is not None:
            return None if self._process is None else self._process.returncode
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("worker did not stop within %.0f s; killing it", grace_s)
            self._process.kill()
            return self._process.wait(timeout=10)

    def kill(self) -> None:
        """Kill the worker with SIGKILL, as a power cut or the OOM killer would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _is_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self._health_url, timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


class SimulatorThread:
    """The Modbus TCP and OPC UA simulators on an event loop of their own."""

    def __init__(self, config: PlantConfig) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.simulators = None
        self._thread = threading.Thread(target=self._run, name="plc-simulators", daemon=True)

    def start(self, ready_timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(ready_timeout_s):
            raise DemoError(f"the PLC simulators did not start within {ready_timeout_s:.0f} s")
        if self._error is not None:
            raise DemoError(f"the PLC simulators failed to start: {self._error}") from self._error

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)

    def _run(self) -> None:
        from defectline.connectors.plc.sim.runner import SimulatorSet

        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._stop = asyncio.Event()
            self.simulators = SimulatorSet(self._config)
            try:
                await self.simulators.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                raise
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.simulators.stop()

        try:
            self._loop.run_until_complete(serve())
        except Exception as exc:  # noqa: BLE001 - reported through start()
            logger.debug("simulator thread ended error=%s", exc)
        finally:
            self._loop.close()
