"""Full-scan throughput of LmdbEventLog.read() beside a raw cursor walk + msgpack.unpackb.

Builds (once, cached under ``--keep``) a store of ``--events`` events about
``--subjects`` containers in bulk mode, then alternates: a raw walk of the same
``events`` database in one read transaction decoding each value with
``msgpack.unpackb``, and ``for env in log.read()`` which decodes every value to
an `Envelope`. Both consume each decoded event in the same way.

Run: /work/venv/bin/python bench/scan.py [--quick] [--keep PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgpack
from _common import EVENT_TYPE, alternate, iter_events, machine, summarise

from dockstate.eventlog import LmdbEventLog, NewEvent

TARGET = 0.6


def build(path: Path, count: int, subjects: int, seed: int) -> LmdbEventLog:
    """Open the cached store at ``path``, (re)building it unless it holds ``count`` events."""
    if path.exists():
        log = LmdbEventLog(path, clock=time.time_ns)
        if log.head().seq == count and log.get_meta("bench.scan") == f"{seed}/{subjects}".encode():
            print(f"reusing the store of {count:,} events at {path}")
            return log
        log.close()
        shutil.rmtree(path)
    print(f"building a store of {count:,} events about {subjects:,} containers at {path} ...")
    log = LmdbEventLog(path, clock=time.time_ns)
    t0 = time.perf_counter()
    with log.bulk(batch=10_000):
        for _cid, data, subject in iter_events(count, subjects, seed):
            log.append([NewEvent(EVENT_TYPE, data, (subject,))])
    log.set_meta("bench.scan", f"{seed}/{subjects}".encode())
    elapsed = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"built in {elapsed:.1f}s ({count / elapsed:,.0f} events/s), {size / 2**20:,.0f} MiB")
    return log


def raw_scan(log: LmdbEventLog) -> float:
    env = log.raw_env()
    db = env.open_db(b"events")
    unpackb = msgpack.unpackb
    n = 0
    t0 = time.perf_counter()
    with env.begin(db=db) as txn:
        for raw in txn.cursor().iternext(keys=False):
            event = unpackb(raw)
            n += 1
    elapsed = time.perf_counter() - t0
    assert n == log.head().seq
    assert event is not None
    return n / elapsed


def ours_scan(log: LmdbEventLog) -> float:
    n = 0
    t0 = time.perf_counter()
    event = None
    for event in log.read():  # noqa: B007 - the last one is checked below
        n += 1
    elapsed = time.perf_counter() - t0
    assert n == log.head().seq
    assert event is not None
    assert event.seq == n
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the store")
    parser.add_argument("--subjects", type=int, default=10_000, help="distinct containers")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument(
        "--keep",
        default=None,
        help="store directory to build once and reuse"
        " (default: <tmp>/dockstate-bench-scan-<events>)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.rounds = 20_000, 3
    keep = Path(
        args.keep or os.path.join(tempfile.gettempdir(), f"dockstate-bench-scan-{args.events}")
    )

    print(machine())
    log = build(keep, args.events, args.subjects, args.seed)
    try:
        ours_scan(log)  # warm the page cache and the code paths once, untimed
        raw_scan(log)
        print(f"\nfull scan of {args.events:,} events, read + decode")
        rates = alternate(
            args.rounds,
            {
                "raw cursor + unpackb": lambda _r: raw_scan(log),
                "LmdbEventLog.read()": lambda _r: ours_scan(log),
            },
        )
        ok = summarise(
            "scan events/s",
            rates["LmdbEventLog.read()"],
            rates["raw cursor + unpackb"],
            TARGET,
        )
    finally:
        log.close()
    print("\nall targets met" if ok else "\nsome target MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
