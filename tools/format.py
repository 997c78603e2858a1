"""Output in Docker's shapes: sizes, durations, tables and JSON."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

ZERO_TIME = "0001-01-01T00:00:00Z"


def human_size(size: float, precision: int = 4) -> str:
    """Docker's ``HumanSize``: decimal units, 4 significant digits (``7.75MB``, ``84B``).

    ``precision=3`` is ``HumanSizeWithPrecision(size, 3)``, as ``docker image ls`` prints SIZE.
    """
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: ``Less than a second``, ``About a minute``, ``3 hours``..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(ts: int, now: int) -> str:
    return f"{human_duration(max(0, now - ts) / 1e9)} ago"


def rfc3339(ts: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker prints ``Created``/``StartedAt``."""
    if not ts:
        return ZERO_TIME
    secs, ns = divmod(ts, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_rfc3339(text: str) -> int | None:
    """ns since the epoch of an RFC 3339 time as image configs carry it (None if it is not one)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", text)
    if not m:
        return None
    base = dt.datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    frac = (m.group(2) or ".")[1:10].ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac)


def rfc3339_seconds(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def docker_time(ts: int) -> str:
    """``2026-11-29 18:24:19 +0000 UTC``: Go's default time format, as ``ps --format json`` uses."""
    return dt.datetime.fromtimestamp(ts // 1_000_000_000, dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S +0000 UTC"
    )


def local_iso(ts: int) -> str:
    return (
        dt.datetime.fromtimestamp(ts / 1e9, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    """Docker's tabwriter layout: columns padded to the widest cell plus 3 spaces."""
    out = out or sys.stdout
    body = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    if all(len(row) == len(widths) for row in body):
        # column by column: `docker ps -a` of ten thousand containers is one call per column
        for i, column in enumerate(zip(*body, strict=True)):
            widths[i] = max(widths[i], *map(len, column))
    else:
        for row in body:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *body]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        cells += row[-1:]
        lines.append("   ".join(cells).rstrip() + "\n")
    out.write("".join(lines))


def json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, default=json_default, indent=indent, ensure_ascii=False)


def print_json_lines(objects: Iterable[Any], out: TextIO | None = None) -> None:
    """One JSON object per line, as Docker's listing verbs print with ``--format json``."""
    out = out or sys.stdout
    for obj in objects:
        out.write(dumps(obj) + "\n")


def print_json_array(objects: Sequence[Any], out: TextIO | None = None) -> None:
    """An indented JSON array, as ``docker inspect`` prints."""
    (out or sys.stdout).write(dumps(list(objects), indent=4) + "\n")


def mode_string(kind: str, mode: int) -> str:
    """``drwxr-xr-x`` from an entry kind and permission bits."""
    first = {"d": "d", "l": "l"}.get(kind, "-")
    bits = ""
    for shift in (6, 3, 0):
        part = (mode >> shift) & 7
        bits += ("r" if part & 4 else "-") + ("w" if part & 2 else "-") + ("x" if part & 1 else "-")
    return first + bits
