"""Parsing ``--at``, ``--since`` and ``--until``: a seq, a time, or a time relative to now."""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from dockstate.eventlog.errors import InvalidParameterError

_RELATIVE: Final = re.compile(r"^-?((?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h|d))+)$")
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
_UNIT_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}


def parse_time(text: str, now_ns: int) -> int:
    """A moment in ns since the epoch.

    Accepts ISO 8601 (``2026-11-29T10:02:00Z``, ``2026-11-29 10:02``; local time
    when no offset is given), a time of day today (``10:02``, ``10:02:30``),
    a duration back from now (``-10m``, ``1h30m``, as Docker's ``--since``), or
    Unix seconds with a fraction (``1764410520.5``).
    """
    t = text.strip()
    if t == "now":
        return now_ns
    m = _RELATIVE.match(t)
    if m:
        total = sum(float(v) * _UNIT_NS[u] for v, u in _PART.findall(m.group(1)))
        return now_ns - int(total)
    if re.fullmatch(r"\d+\.\d+", t):
        return int(float(t) * 1e9)
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", t):
        today = dt.datetime.fromtimestamp(now_ns / 1e9).astimezone()
        clock = dt.time.fromisoformat(t if t.count(":") == 2 else t + ":00")
        moment = dt.datetime.combine(today.date(), clock, tzinfo=today.tzinfo)
        return int(moment.timestamp() * 1e9)
    try:
        moment = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterError(
            f"invalid time {text!r}: use a seq, ISO 8601 (2026-11-29T10:02:00Z), "
            "a time of day (10:02) or a duration back from now (-10m)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1e9)


def is_seq(text: str) -> bool:
    return text.strip().isdigit()
