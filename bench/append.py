"""Append throughput of LmdbEventLog beside raw lmdb + msgpack.

(a) durable: one event per committed, fsynced transaction, through
    ``LmdbEventLog.append`` beside raw ``txn.put(key, msgpack.packb(record),
    append=True)`` in its own ``sync=True`` transaction.
(b) bulk: events through ``with log.bulk(batch=10000): log.append([...])``, one
    call per command of 1-3 events about one container (``--per-call``), beside
    raw puts committed 10,000 per transaction.

Both sides build and pack each event inside the timed loop from the same
pre-generated payloads. The log also writes the hash chain, the subject and
time indexes and the head; the raw side writes the events db only.

Run: /work/venv/bin/python bench/append.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
from _common import (
    EVENT_TYPE,
    U64,
    Event,
    alternate,
    container_ids,
    event_for,
    machine,
    raw_open,
    raw_record,
    summarise,
)

from dockstate.eventlog import LmdbEventLog, NewEvent

DURABLE_TARGET = 0.7
BULK_TARGET = 0.3


def durable_events(count: int, subjects: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    ids = container_ids(subjects, rng)
    return [event_for(i, rng.choice(ids), rng) for i in range(count)]


def command_groups(count: int, subjects: int, per_call: str, seed: int) -> list[list[Event]]:
    """``count`` events split into commands of ``per_call`` events about one container."""
    rng = random.Random(seed)
    ids = container_ids(subjects, rng)
    low, _, high = per_call.partition("-")
    lo, hi = int(low), int(high or low)
    groups: list[list[Event]] = []
    i = 0
    while i < count:
        cid = rng.choice(ids)
        size = min(rng.randint(lo, hi), count - i)
        groups.append([event_for(i + k, cid, rng) for k in range(size)])
        i += size
    return groups


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def fresh(self, name: str) -> Path:
        self.n += 1
        path = self.root / f"{name}-{self.n}"
        path.mkdir()
        return path

    # -- durable, one event per transaction ----------------------------------

    def raw_durable(self, events: list[Event]) -> float:
        path = self.fresh("raw-durable")
        env = raw_open(str(path), sync=True)
        packb, pack = msgpack.packb, U64.pack
        try:
            t0 = time.perf_counter()
            for seq, event in enumerate(events, 1):
                with env.begin(write=True) as txn:
                    txn.put(pack(seq), packb(raw_record(event)), append=True)
            elapsed = time.perf_counter() - t0
        finally:
            env.close()
            shutil.rmtree(path)
        return len(events) / elapsed

    def ours_durable(self, events: list[Event]) -> float:
        path = self.fresh("ours-durable")
        log = LmdbEventLog(path, clock=time.time_ns, durable=True)
        append = log.append
        try:
            t0 = time.perf_counter()
            for _cid, data, subject in events:
                append([NewEvent(EVENT_TYPE, data, (subject,))])
            elapsed = time.perf_counter() - t0
            assert log.head().seq == len(events)
        finally:
            log.close()
            shutil.rmtree(path)
        return len(events) / elapsed

    # -- bulk ----------------------------------------------------------------

    def raw_bulk(self, groups: list[list[Event]], batch: int) -> float:
        path = self.fresh("raw-bulk")
        env = raw_open(str(path), sync=True)
        packb, pack = msgpack.packb, U64.pack
        count = 0
        try:
            t0 = time.perf_counter()
            txn = env.begin(write=True)
            for group in groups:
                for event in group:
                    count += 1
                    txn.put(pack(count), packb(raw_record(event)), append=True)
                    if count % batch == 0:
                        txn.commit()
                        txn = env.begin(write=True)
            txn.commit()
            elapsed = time.perf_counter() - t0
        finally:
            env.close()
            shutil.rmtree(path)
        return count / elapsed

    def ours_bulk(self, groups: list[list[Event]], batch: int) -> float:
        path = self.fresh("ours-bulk")
        log = LmdbEventLog(path, clock=time.time_ns, durable=True)
        append = log.append
        count = sum(len(g) for g in groups)
        try:
            t0 = time.perf_counter()
            with log.bulk(batch=batch):
                for group in groups:
                    append([NewEvent(EVENT_TYPE, data, (subject,)) for _c, data, subject in group])
            elapsed = time.perf_counter() - t0
            assert log.head().seq == count
        finally:
            log.close()
            shutil.rmtree(path)
        return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durable-events", type=int, default=2000, help="commits per round")
    parser.add_argument("--bulk-events", type=int, default=100_000, help="events per round")
    parser.add_argument("--subjects", type=int, default=10_000, help="distinct containers")
    parser.add_argument("--batch", type=int, default=10_000, help="events per bulk commit")
    parser.add_argument(
        "--per-call", default="1-3", help="events per append call in bulk: N or LOW-HIGH"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--dir", default=None, help="where to make the temp stores")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--only", choices=["durable", "bulk"], default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.durable_events, args.bulk_events, args.rounds = 200, 10_000, 3

    print(machine())
    root = Path(tempfile.mkdtemp(prefix="dockstate-bench-append-", dir=args.dir))
    bench = Bench(root)
    ok = True
    try:
        if args.only in (None, "durable"):
            events = durable_events(args.durable_events, args.subjects, args.seed)
            print(f"\n(a) durable: {len(events):,} one-event commits per round, {root}")
            rates = alternate(
                args.rounds,
                {
                    "raw lmdb, sync txn/event": lambda _r: bench.raw_durable(events),
                    "LmdbEventLog.append": lambda _r: bench.ours_durable(events),
                },
            )
            ok &= summarise(
                "durable one-event commits/s",
                rates["LmdbEventLog.append"],
                rates["raw lmdb, sync txn/event"],
                DURABLE_TARGET,
            )
        if args.only in (None, "bulk"):
            groups = command_groups(args.bulk_events, args.subjects, args.per_call, args.seed)
            print(
                f"\n(b) bulk: {args.bulk_events:,} events per round in {len(groups):,} calls of"
                f" {args.per_call} events, {args.subjects:,} subjects, batch {args.batch:,}"
            )
            measures: dict[str, Callable[[int], float]] = {
                "raw lmdb, batched": lambda _r: bench.raw_bulk(groups, args.batch),
                "LmdbEventLog bulk": lambda _r: bench.ours_bulk(groups, args.batch),
            }
            rates = alternate(args.rounds, measures)
            ok &= summarise(
                "bulk events/s",
                rates["LmdbEventLog bulk"],
                rates["raw lmdb, batched"],
                BULK_TARGET,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome target MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
