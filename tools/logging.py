"""structlog set-up: done once, here, for every dockstate program.

Library code only calls ``structlog.get_logger(__name__)``; where its lines go
and how they look is decided by the program that runs it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final, TextIO

import structlog

FORMATS: Final = ("console", "json")


def configure(fmt: str | None = None, level: str = "warning", stream: TextIO | None = None) -> None:
    """Send structured logs to ``stream`` (stderr) as console lines or JSON.

    Args:
        fmt: ``"console"`` or ``"json"``; None takes ``DOCKSTATE_LOG_FORMAT``, else
            console on a terminal and JSON when stderr is piped.
        level: the lowest level written.
        stream: where log lines go; stderr by default so they never mix with output.
    """
    out = stream or sys.stderr
    fmt = fmt or os.environ.get("DOCKSTATE_LOG_FORMAT") or ("console" if out.isatty() else "json")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
