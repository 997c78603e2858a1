"""The ``dockstate`` command line.

Heavy modules are imported inside the handlers, so that ``dockstate --help``
starts about as fast as Python and its four dependencies can be imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dockstate.eventlog.errors import DockstateError

Handler = Callable[[argparse.Namespace], int]


def _cmd_verify(args: argparse.Namespace) -> int:
    from dockstate.tools.store import open_store

    with open_store(args.store) as log:
        report = log.verify()
    if report.ok:
        print(f"ok: {report.events} events, head {report.head.hex()}")
        return 0
    print(f"bad: event {report.bad_seq}: {report.problem}")
    return 1


def _cmd_log(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from dockstate.tools.store import open_store

    with open_store(args.store) as log:
        events = list(log.read(args.start, args.stop))
    rows = [
        {
            "seq": e.seq,
            "time": dt.datetime.fromtimestamp(e.ts / 1e9, dt.UTC).isoformat(),
            "type": e.type,
            "session": e.session,
            "data": e.data,
        }
        for e in events
    ]
    if args.format == "json":
        print(json.dumps(rows, default=_json_default))
    else:
        for r in rows:
            print(f"{r['seq']:>8}  {r['time']}  {r['type']:<20} {r['session']}")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockstate",
        description="Record and simulate Docker's storage model as an event-sourced log.",
    )
    parser.add_argument("--store", metavar="PATH", help="store directory (default: $DOCKSTATE_STORE or ~/.local/share/dockstate)")
    parser.add_argument("--log-format", choices=["console", "json"], help="how log lines on stderr look")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("verify", help="check the hash chain of the store")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("log", help="print the raw events")
    p.add_argument("--from", dest="start", type=int, default=1, metavar="SEQ")
    p.add_argument("--to", dest="stop", type=int, default=None, metavar="SEQ")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=_cmd_log)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dockstate.tools import logging as ds_logging

    ds_logging.configure(args.log_format, args.log_level)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DockstateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
