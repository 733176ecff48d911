"""Reads the current values of a station's PLC output back over Modbus TCP or OPC UA."""

from __future__ import annotations

import logging

from defectline.config.models import PlcConfig, PlcOutput, VerdictField
from defectline.connectors.plc.base import ReconnectPolicy, Value, create_writer
from defectline.connectors.plc.errors import PlcError, PlcReadError

logger = logging.getLogger(__name__)

# One attempt only: a read-back that cannot connect reports it instead of retrying.
_NO_RETRY = ReconnectPolicy(initial_delay_s=3600.0, max_delay_s=3600.0)


async def read_output(plc: PlcConfig, output: PlcOutput) -> dict[VerdictField, Value]:
    """Open a fresh connection to `plc`, read every point or node of `output`, and close it.

    Modbus values are decoded with each point's dtype, word order and scale. OPC UA values are
    returned as the server's Variant contains them. Raises PlcReadError on any failure.
    """
    if output.plc != plc.name:
        raise PlcReadError(f"output names PLC '{output.plc}' but '{plc.name}' was given")

    writer = create_writer(plc, [output], reconnect=_NO_RETRY)
    try:
        await writer.connect()
        return await writer.read(output)
    except PlcError as exc:
        raise PlcReadError(
            f"reading from PLC '{plc.name}' at {writer.endpoint} failed: {exc}"
        ) from exc
    finally:
        await writer.close()
