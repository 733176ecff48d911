"""Modbus addressing: the 1-based "40001" reference convention to 0-based protocol addresses.

The Modbus Application Protocol Specification V1.1b3 addresses every table from 0. PLC manuals
and HMI tools often use the older Modicon convention instead, where the first digit names the
table and the rest is a 1-based number:

- 0xxxx: coil (functions 1, 5, 15), "00001" is coil 0
- 1xxxx: discrete input (function 2, read-only), "10001" is discrete input 0
- 3xxxx: input register (function 4, read-only), "30001" is input register 0
- 4xxxx: holding register (functions 3, 6, 16), "40001" is holding register 0

Six-digit references ("400001" to "465536") reach the whole 16-bit address range. A reference
whose number part is 0, such as "40000", does not exist and is rejected.

This module also checks the PLC maps of a station against its PLCs when the config is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from defectline.config.models import PlcConfig, StationConfig

logger = logging.getLogger(__name__)

_TABLE_PREFIXES = {
    "0": "coil",
    "1": "discrete_input",
    "3": "input_register",
    "4": "holding_register",
}


def parse_reference(reference: str | int) -> tuple[str, int]:
    """Convert a 1-based reference such as "40001" to (table, 0-based address).

    Raises ValueError naming the reference and the accepted forms.
    """
    text = str(reference).strip()
    if not text.isdigit() or len(text) not in (5, 6):
        raise ValueError(
            f"Modbus reference {reference!r} is invalid; write 5 or 6 digits such as '40001' "
            "(holding register 0) or '300001' (input register 0), or give the 0-based "
            "`address` and `table` instead"
        )

    prefix, number = text[0], int(text[1:])
    table = _TABLE_PREFIXES.get(prefix)
    if table is None:
        raise ValueError(
            f"Modbus reference {reference!r} starts with {prefix!r}, which names no table; "
            "use 0 (coil), 1 (discrete input), 3 (input register) or 4 (holding register)"
        )
    highest = 9999 if len(text) == 5 else 65536
    if not 1 <= number <= highest:
        raise ValueError(
            f"Modbus reference {reference!r} is invalid: references are 1-based, so the "
            f"first {table} is {prefix}{'1'.zfill(len(text) - 1)} and the last "
            f"{prefix}{str(highest).zfill(len(text) - 1)}"
        )
    return table, number - 1


def convert_point_reference(data: Any) -> Any:
    """Fill `table` and `address` of a raw ModbusPoint mapping from its `reference`, if any.

    Called by the config model before field validation. A string `address` is rejected,
    because "40001" given as an address would otherwise silently become address 40001.
    """
    if not isinstance(data, Mapping):
        return data

    address = data.get("address")
    if isinstance(address, str):
        raise ValueError(
            f"address {address!r} is a string; `address` is the 0-based protocol address as a "
            f'number. For the 1-based convention write `reference: "{address}"` instead'
        )

    reference = data.get("reference")
    if reference is None:
        return data
    if address is not None:
        raise ValueError(
            f"point has both address {address} and reference {reference!r}; give only one"
        )

    table, converted = parse_reference(reference)
    given_table = data.get("table")
    if given_table is not None and str(given_table) != table:
        raise ValueError(
            f"reference {reference!r} is a {table} but table is '{given_table}'; "
            "drop `table` or make it match the reference"
        )
    logger.info(
        "modbus reference converted reference=%s table=%s address=%d", reference, table, converted
    )
    return {**data, "reference": str(reference), "table": table, "address": converted}


def check_station_maps(station: StationConfig, plcs: Mapping[str, PlcConfig]) -> None:
    """Check that a station writes only writable tables and that its handshake fits its PLC."""
    from defectline.config.models import HANDSHAKE_FIELDS, WRITABLE_TABLES, VerdictField

    for index, output in enumerate(station.outputs):
        for point in output.points:
            where = f"station '{station.id}' outputs[{index}] field '{point.field.value}'"
            if point.field in HANDSHAKE_FIELDS:
                raise ValueError(
                    f"{where} is a handshake signal; map it in the station's `handshake`"
                )
            if point.table not in WRITABLE_TABLES:
                raise ValueError(
                    f"{where} is in the read-only {point.table.value} table; results go to "
                    "coils or holding registers"
                )

    handshake = station.handshake
    if handshake is None:
        return
    where = f"station '{station.id}' handshake"
    plc = plcs.get(handshake.plc)
    if plc is None:
        raise ValueError(
            f"{where} names PLC '{handshake.plc}', which is not in plcs {sorted(plcs)}"
        )
    if plc.type == "modbus" and (not handshake.points or handshake.nodes):
        raise ValueError(f"{where}: Modbus PLC '{plc.name}' takes 'points', not 'nodes'")
    if plc.type == "opcua" and (not handshake.nodes or handshake.points):
        raise ValueError(f"{where}: OPC UA PLC '{plc.name}' takes 'nodes', not 'points'")

    if handshake.plc not in {output.plc for output in station.outputs}:
        raise ValueError(
            f"{where} is with PLC '{handshake.plc}', but no output of the station writes to it; "
            "add an output for that PLC, so results and the strobe go to the same PLC"
        )
    written = {VerdictField.RESULT_VALID, VerdictField.RESULT_SEQUENCE, VerdictField.HEARTBEAT}
    for point in handshake.points:
        if point.field in written and point.table not in WRITABLE_TABLES:
            raise ValueError(
                f"{where} field '{point.field.value}' is written by the inspector, but "
                f"{point.table.value} is read-only; use a coil or holding register"
            )
