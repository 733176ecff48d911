"""Conversion of verdict values to the OPC UA built-in data type of the node they are written to."""

from __future__ import annotations

import math

from asyncua import ua

from defectline.connectors.plc.errors import PlcCodecError

Value = bool | int | float

_INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38

SUPPORTED_TYPES = (
    ua.VariantType.Boolean,
    *_INTEGER_RANGES,
    ua.VariantType.Float,
    ua.VariantType.Double,
    ua.VariantType.String,
)


def variant_type_of(data_type: ua.NodeId) -> ua.VariantType:
    """Map a node's DataType attribute to a supported VariantType, or raise PlcCodecError.

    The built-in data types have NodeIds i=1..i=25 in namespace 0, and asyncua's VariantType
    uses the same numbers.
    """
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        try:
            variant_type = ua.VariantType(data_type.Identifier)
        except ValueError:
            variant_type = None
        if variant_type in SUPPORTED_TYPES:
            return variant_type
    raise PlcCodecError(
        f"data type {data_type.to_string()} is not supported; use one of "
        f"{', '.join(vtype.name for vtype in SUPPORTED_TYPES)}"
    )


def to_variant(value: Value, variant_type: ua.VariantType, field: str) -> ua.Variant:
    """Convert `value` to `variant_type`, raising PlcCodecError when it cannot be done exactly.

    Booleans take true/false or 0/1, integers take whole numbers in range, Float and Double take
    any number in range, and String takes the text of the value.
    """
    if variant_type is ua.VariantType.Boolean:
        return ua.Variant(_to_bool(value, field), variant_type)
    if variant_type in _INTEGER_RANGES:
        return ua.Variant(_to_int(value, variant_type, field), variant_type)
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        return ua.Variant(_to_float(value, variant_type, field), variant_type)
    if variant_type is ua.VariantType.String:
        return ua.Variant(str(value), variant_type)
    raise PlcCodecError(f"{field}: data type {variant_type.name} is not supported")


def _to_bool(value: Value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise PlcCodecError(
        f"{field}: value {value!r} cannot be written to a Boolean node; "
        "Boolean nodes take true/false or 0/1, so map this field to a numeric node"
    )


def _to_int(value: Value, variant_type: ua.VariantType, field: str) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise PlcCodecError(
                f"{field}: value {value!r} has a fraction and cannot be written to a "
                f"{variant_type.name} node without losing it; use a Float or Double node"
            )
        value = int(value)
    if not isinstance(value, int):
        raise PlcCodecError(f"{field}: value {value!r} is not a number")
    low, high = _INTEGER_RANGES[variant_type]
    if not low <= int(value) <= high:
        raise PlcCodecError(
            f"{field}: value {value!r} is outside the {variant_type.name} range {low}..{high}; "
            "use a node with a wider data type"
        )
    return int(value)


def _to_float(value: Value, variant_type: ua.VariantType, field: str) -> float:
    if not isinstance(value, int | float):
        raise PlcCodecError(f"{field}: value {value!r} is not a number")
    number = float(value)
    too_large = math.isfinite(number) and abs(number) > _FLOAT_MAX
    if variant_type is ua.VariantType.Float and too_large:
        raise PlcCodecError(
            f"{field}: value {value!r} is outside the Float range +-{_FLOAT_MAX:.6g}; "
            "use a Double node"
        )
    return number
