"""Reads the current values of a station's PLC output back over Modbus TCP or OPC UA."""

from __future__ import annotations

import asyncio
import logging

from defectline.config.models import (
    ModbusPlcConfig,
    ModbusTable,
    OpcUaPlcConfig,
    PlcConfig,
    PlcOutput,
    VerdictField,
)
from defectline.connectors.plc.errors import PlcCodecError, PlcReadError

logger = logging.getLogger(__name__)

Value = bool | int | float


async def read_output(plc: PlcConfig, output: PlcOutput) -> dict[VerdictField, Value]:
    """Open a fresh connection to `plc`, read every point or node of `output`, and close it.

    Modbus values are decoded with each point's dtype, word order and scale. OPC UA values are
    returned as the server's Variant contains them. Raises PlcReadError on any failure.
    """
    if output.plc != plc.name:
        raise PlcReadError(f"output names PLC '{output.plc}' but '{plc.name}' was given")
    timeout_s = plc.timeout_ms / 1000
    try:
        if isinstance(plc, ModbusPlcConfig):
            return await _read_modbus(plc, output, timeout_s)
        return await _read_opcua(plc, output, timeout_s)
    except TimeoutError as exc:
        raise PlcReadError(
            f"reading PLC '{plc.name}' got no response within {plc.timeout_ms} ms"
        ) from exc


async def _read_modbus(
    plc: ModbusPlcConfig, output: PlcOutput, timeout_s: float
) -> dict[VerdictField, Value]:
    from pymodbus.exceptions import ModbusException

    from defectline.connectors.plc.codec import decode_run, plan_runs
    from defectline.connectors.plc.modbus import describe_response, new_client, unit_kwargs

    where = f"PLC '{plc.name}' at {plc.host}:{plc.port}"
    client = new_client(plc)
    values: dict[VerdictField, Value] = {}
    try:
        async with asyncio.timeout(timeout_s):
            is_connected = await client.connect()
        if not is_connected:
            raise PlcReadError(f"cannot connect to {where}: connection refused or timed out")

        for run in plan_runs(output.points):
            async with asyncio.timeout(timeout_s):
                if run.table is ModbusTable.COIL:
                    response = await client.read_coils(
                        run.address, count=run.count, **unit_kwargs(plc.unit_id)
                    )
                else:
                    response = await client.read_holding_registers(
                        run.address, count=run.count, **unit_kwargs(plc.unit_id)
                    )
            if response.isError():
                raise PlcReadError(
                    f"reading {run.target} from {where} failed: {describe_response(response)}"
                )
            words = response.bits if run.table is ModbusTable.COIL else response.registers
            values.update(decode_run(run, words[: run.count]))
    except (ModbusException, OSError, PlcCodecError) as exc:
        raise PlcReadError(f"reading from {where} failed: {exc}") from exc
    finally:
        client.close()
    return values


async def _read_opcua(
    plc: OpcUaPlcConfig, output: PlcOutput, timeout_s: float
) -> dict[VerdictField, Value]:
    from asyncua import ua
    from asyncua.ua.uaerrors import UaError

    from defectline.connectors.plc.opcua import new_client, parse_node_id

    where = f"PLC '{plc.name}' at {plc.endpoint}"
    client = new_client(plc)
    try:
        node_ids = [parse_node_id(node.node_id) for node in output.nodes]
        async with asyncio.timeout(timeout_s * 4):
            await client.connect()
        try:
            async with asyncio.timeout(timeout_s):
                results = await client.uaclient.read_attributes(node_ids, ua.AttributeIds.Value)
        finally:
            async with asyncio.timeout(timeout_s):
                await client.disconnect()
    except (UaError, OSError, PlcCodecError) as exc:
        raise PlcReadError(f"reading from {where} failed: {exc}") from exc

    values: dict[VerdictField, Value] = {}
    for node, result in zip(output.nodes, results, strict=True):
        if result.StatusCode is not None and not result.StatusCode.is_good():
            raise PlcReadError(
                f"reading node '{node.node_id}' from {where} failed: {result.StatusCode.name}"
            )
        if result.Value is None or result.Value.Value is None:
            raise PlcReadError(f"node '{node.node_id}' on {where} has no value")
        values[node.field] = result.Value.Value
    return values
