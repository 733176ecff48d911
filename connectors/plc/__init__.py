"""PLC sinks: writers that put verdict values into Modbus TCP and OPC UA PLCs, and simulators."""

from defectline.connectors.plc.base import (
    ConnectionState,
    PlcWriter,
    ReconnectPolicy,
    create_writer,
    register_writer,
)
from defectline.connectors.plc.errors import (
    PlcCodecError,
    PlcConnectError,
    PlcConnectionLostError,
    PlcError,
    PlcNotConnectedError,
    PlcReadError,
    PlcValueError,
    PlcWriteError,
    PlcWriteRejectedError,
)

__all__ = [
    "ConnectionState",
    "PlcCodecError",
    "PlcConnectError",
    "PlcConnectionLostError",
    "PlcError",
    "PlcNotConnectedError",
    "PlcReadError",
    "PlcValueError",
    "PlcWriteError",
    "PlcWriteRejectedError",
    "PlcWriter",
    "ReconnectPolicy",
    "create_writer",
    "register_writer",
]
