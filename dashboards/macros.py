"""Expand the Grafana PostgreSQL macros and template variables of a panel query, for tests.

Grafana's PostgreSQL datasource rewrites macros on the server before the query reaches the
database (Grafana documentation, "PostgreSQL data source", section "Macros"). This expander
does the same for a fixed time range so the panel SQL can run against a real database:

- `$__timeFilter(col)` -> `col BETWEEN '<from>' AND '<to>'` (RFC 3339 UTC timestamps)
- `$__timeFrom()`, `$__timeTo()` -> `'<from>'`, `'<to>'`
- `$__timeGroup(col, interval)` -> `floor(extract(epoch from col)/<seconds>)*<seconds>`
- `$__timeGroupAlias(col, interval)` -> the same with ` AS "time"`
- `$__unixEpochFrom()`, `$__unixEpochTo()` -> the bounds as epoch seconds
- `$__interval`, `$__interval_ms` -> the panel interval as Grafana text ('5m') or milliseconds

Template variables are replaced as Grafana formats them for SQL: a multi-value variable becomes
a comma-separated list of single-quoted values, a single value is inserted as is. Both `$name`
and `${name}` forms are handled. Not supported: the fill argument of `$__timeGroup` (Grafana
fills gaps after the query, so it does not change the SQL), `$__timeEpoch` and
`$__unixEpochGroup`; an unsupported macro raises `MacroError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from defectline.errors import DefectlineError

_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*'?(\d+)(ms|s|m|h|d|w)'?\s*$")
_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class MacroError(DefectlineError):
    """A panel query uses a macro or variable the expander does not know."""


def interval_text(seconds: float) -> str:
    """Format an interval the way Grafana writes `$__interval`, e.g. 300 -> '5m'."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def duration_s(text: str) -> float:
    """Parse a Grafana duration such as '5m' or '30s' into seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise MacroError(f"interval {text!r} is not a Grafana duration such as '1m' or '30s'")
    return int(match[1]) * _UNITS_S[match[2]]


def expand(
    sql: str,
    time_from: datetime,
    time_to: datetime,
    interval_s: float,
    variables: Mapping[str, str | Sequence[str]] | None = None,
) -> str:
    """Return `sql` with variables and macros replaced for the range [time_from, time_to]."""
    for bound in (time_from, time_to):
        if bound.tzinfo is None:
            raise MacroError(f"time bound {bound.isoformat()} has no time zone")
    builtins = {
        "__interval": interval_text(interval_s),
        "__interval_ms": str(int(interval_s * 1000)),
    }
    text = _replace_variables(sql, {**builtins, **(variables or {})})
    return _MACRO.sub(lambda match: _expand_macro(match, time_from, time_to), text)


def _replace_variables(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name.startswith("__") and name not in variables:
            return match[0]  # a macro such as $__timeFilter, expanded afterwards
        if name not in variables:
            raise MacroError(f"variable ${name} has no value; pass it in `variables`")
        value = variables[name]
        if isinstance(value, str):
            return value
        return ",".join("'" + item.replace("'", "''") + "'" for item in value)

    return _VARIABLE.sub(replace, sql)


def _expand_macro(match: re.Match[str], time_from: datetime, time_to: datetime) -> str:
    name = match[1]
    arguments = [part.strip() for part in match[2].split(",")] if match[2].strip() else []
    start, end = _rfc3339(time_from), _rfc3339(time_to)
    if name == "timeFilter":
        return f"{arguments[0]} BETWEEN '{start}' AND '{end}'"
    if name == "timeFrom":
        return f"'{start}'"
    if name == "timeTo":
        return f"'{end}'"
    if name == "unixEpochFrom":
        return str(int(time_from.timestamp()))
    if name == "unixEpochTo":
        return str(int(time_to.timestamp()))
    if name in ("timeGroup", "timeGroupAlias"):
        seconds = duration_s(arguments[1])
        group = f"floor(extract(epoch from {arguments[0]})/{seconds:g})*{seconds:g}"
        return group + (' AS "time"' if name == "timeGroupAlias" else "")
    raise MacroError(f"macro $__{name} is not supported by this expander")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
