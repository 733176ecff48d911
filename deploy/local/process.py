"""Start detached server processes and check or stop them by process id."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# The shell starts the server in the background, prints its pid and exits at once. The server is
# then no child of ours: no zombie is left when the caller exits without waiting for it, and
# the stack CLI can stop it later from another process.
_TRAMPOLINE = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'


def start_detached(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` in a new session with output appended to `log_path`; return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        ["/bin/sh", "-c", _TRAMPOLINE, "sh", str(log_path), *argv],
        capture_output=True,
        text=True,
        env=env,
        start_new_session=True,
        check=True,
        timeout=30,
    )
    return int(completed.stdout.strip())


def is_alive(pid: int | None, cmdline_part: str | None = None) -> bool:
    """Return True when `pid` runs and is no zombie.

    `cmdline_part`, when given, must occur in the process command line, which guards against a
    pid that the kernel reused for an unrelated process.
    """
    if not pid or pid <= 0:
        return False
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    return cmdline_part is None or cmdline_part in cmdline


def terminate(pid: int, name: str, grace_s: float = 30.0, cmdline_part: str | None = None) -> None:
    """Send SIGTERM to `pid`, wait up to `grace_s` for it to exit, then send SIGKILL."""
    if not is_alive(pid, cmdline_part):
        return
    logger.info("stopping service=%s pid=%d", name, pid)
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, grace_s):
        return
    logger.warning("service=%s pid=%d still runs after %.0f s; sending SIGKILL", name, pid, grace_s)
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 10.0)


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def tail(path: Path, lines: int = 30) -> str:
    """Return the last `lines` lines of a text file, or a note when it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])
