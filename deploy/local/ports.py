"""TCP port helpers for services started on the loopback interface."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    The kernel picks the port, so two calls rarely return the same one, but another process may
    still take it before the caller binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Return True when a listening socket could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR matches what servers set, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, reserved: set[int] | None = None, host: str = LOOPBACK) -> int:
    """Return `preferred` when it is free and not `reserved`, else a free port from the kernel."""
    reserved = reserved or set()
    if preferred not in reserved and is_port_free(preferred, host):
        return preferred
    while True:
        port = free_port(host)
        if port not in reserved:
            return port


def is_port_open(port: int, host: str = LOOPBACK, timeout_s: float = 1.0) -> bool:
    """Return True when a TCP connection to `host:port` succeeds within `timeout_s`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout_s: float, host: str = LOOPBACK) -> bool:
    """Poll until `host:port` accepts TCP connections; return False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_port_open(port, host, timeout_s=0.5):
            return True
        time.sleep(0.2)
    return False
