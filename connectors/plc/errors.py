"""Errors raised by PLC writers, the register codec and the read-back helpers."""

from __future__ import annotations

from defectline.errors import DefectlineError


class PlcError(DefectlineError):
    """Base class of every PLC connector error."""


class PlcCodecError(PlcError):
    """A value does not fit the register type of its point, or a point map is inconsistent."""


class PlcConnectError(PlcError):
    """Connecting to a PLC failed; the writer keeps retrying in the background until closed."""

    def __init__(self, plc: str, endpoint: str, reason: str) -> None:
        self.plc = plc
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"cannot connect to PLC '{plc}' at {endpoint}: {reason}")


class PlcWriteError(PlcError):
    """A write to a PLC failed; `target` is the Modbus address range or the OPC UA node id."""

    def __init__(self, plc: str, endpoint: str, target: str, reason: str) -> None:
        self.plc = plc
        self.endpoint = endpoint
        self.target = target
        self.reason = reason
        super().__init__(f"write to PLC '{plc}' at {endpoint} ({target}) failed: {reason}")


class PlcNotConnectedError(PlcWriteError):
    """The writer is disconnected, so the write was not attempted; a reconnect is in progress."""


class PlcConnectionLostError(PlcWriteError):
    """The connection broke or timed out during the write; the writer reconnects in background."""


class PlcWriteRejectedError(PlcWriteError):
    """The PLC answered the write with an error (Modbus exception code, bad OPC UA status)."""


class PlcValueError(PlcWriteError):
    """A verdict value is missing or cannot be converted to the type of its register or node."""


class PlcReadError(PlcError):
    """Reading the current values of an output back from a PLC failed."""
