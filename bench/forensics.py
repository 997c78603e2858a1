"""Forensics on a big store: bisection with ``Timeline.first`` and replay of an export.

(a) ``Timeline.first(predicate)`` on a store of ``--events`` events with a
    snapshot every 10,000 (see ``_bigstore.py``), for ``--targets`` random
    monotone predicates: "container web-NNNNN exists" for containers created at
    random seqs (and never removed), and "volume volNNN exists". Each call gets
    a fresh ``Timeline.open`` (no states cached from the previous target) and
    is checked against the seq the object was created at. Reports
    ``Timeline.evaluations`` (views built: target <= 30), the predicate calls
    (the last stretch is folded once, testing every event), and p50 wall time
    (target <= 1 s).
(b) replay: the first ``--replay-events`` events of the store (cut at a command
    boundary) are exported with ``tools.exportfile.export``, read back, and
    replayed with ``tools.replay.replay`` into a fresh store inside
    ``dest.bulk()``, as ``dockstate replay`` runs it, alternating with
    ``bench/append.py``'s bulk append (``LmdbEventLog.bulk``, 1-3 events per
    call) of as many events; events/s of replay vs the bulk append's (target
    >= 0.25x). For reference, in the same rounds: the same call without bulk
    (one fsynced commit per command; on its first ``--durable-events`` events,
    it is slow) and the installed ``dockstate replay FILE`` as a subprocess
    (reading and verifying the export file included).

Run: /work/venv/bin/python bench/forensics.py [--quick] [--keep PATH]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _bigstore
from _common import machine
from append import Bench, command_groups

from dockstate.eventlog import LmdbEventLog
from dockstate.tools import exportfile
from dockstate.tools import logging as ds_logging
from dockstate.tools.replay import replay
from dockstate.tools.timetravel import Timeline, View

EVALUATIONS_TARGET = 30
P50_TARGET = 1.0
REPLAY_TARGET = 0.25


# -- (a) bisection -----------------------------------------------------------------


def pick_targets(path: Path, count: int, containers: int, seed: int) -> list[tuple[str, str, int]]:
    """(kind, name, seq it was created at) for random containers alive at the head, and volumes."""
    rng = random.Random(seed)
    log = LmdbEventLog(path, clock=time.time_ns)
    out: list[tuple[str, str, int]] = []
    try:
        tl = Timeline(log)
        head = tl.at()
        by_name = {c.name: c for c in head.host.containers.values()}
        want_vols = max(1, count // 4)
        names = [_bigstore.name_of(i) for i in rng.sample(range(containers), containers)]
        for name in names:
            if len(out) >= count - want_vols:
                break
            c = by_name.get(name)
            if c is None:
                continue  # removed: "exists" would not be monotone
            first = next(log.by_subject(f"c:{c.id}"))
            assert first.type == "ContainerCreated"
            out.append(("container", name, first.seq))
        vols = sorted(head.host.volumes)
        for name in rng.sample(vols, min(want_vols, len(vols))):
            first = next(e for e in log.by_subject(f"v:{name}") if e.type == "VolumeCreated")
            out.append(("volume", name, first.seq))
    finally:
        log.close()
    return out


def predicate_for(kind: str, name: str) -> Callable[[View], bool]:
    if kind == "container":
        return lambda v: v.state(name) is not None
    return lambda v: name in v.host.volumes


def bench_first(path: Path, targets: list[tuple[str, str, int]]) -> bool:
    print(f"\n(a) Timeline.first on {len(targets)} monotone predicates")
    times: list[float] = []
    cpus: list[float] = []
    evals: list[int] = []
    for kind, name, created in targets:
        calls = 0
        pred = predicate_for(kind, name)

        def counted(v: View, pred: Callable[[View], bool] = pred) -> bool:
            nonlocal calls
            calls += 1
            return pred(v)

        tl = Timeline.open(path)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            got = tl.first(counted)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            tl.close()
        assert got == created, f"first({kind} {name} exists) = {got}, created at {created}"
        times.append(elapsed)
        cpus.append(cpu)
        evals.append(tl.evaluations)
        print(
            f"  {kind:<9} {name:<9} exists from seq {got:>9,}: {elapsed * 1000:5.0f} ms"
            f" (CPU {cpu * 1000:5.0f} ms),"
            f" {tl.evaluations:>2} evaluations, {calls:>6,} predicate calls",
            flush=True,
        )
    p50 = statistics.median(times)
    ok_e, ok_t = max(evals) <= EVALUATIONS_TARGET, p50 <= P50_TARGET
    print(
        f"  evaluations: max {max(evals)}, median {statistics.median(evals)}"
        f"   target <= {EVALUATIONS_TARGET}: {'MET' if ok_e else 'MISSED'}"
    )
    print(
        f"  wall: p50 {p50 * 1000:.0f} ms, min {min(times) * 1000:.0f} ms,"
        f" max {max(times) * 1000:.0f} ms   target p50 <= {P50_TARGET} s:"
        f" {'MET' if ok_t else 'MISSED'}"
    )
    print(f"  CPU (this process): p50 {statistics.median(cpus) * 1000:.0f} ms")
    return ok_e and ok_t


# -- (b) replay --------------------------------------------------------------------


def command_end(path: Path, wanted: int) -> int:
    """The last seq <= ``wanted`` that ends a command (the next event begins one)."""
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        envs = list(log.read(max(1, wanted - 20), wanted + 1))
    finally:
        log.close()
    ends = [a.seq for a, b in itertools.pairwise(envs) if b.begins_command]
    return max(s for s in ends if s <= wanted)


def export_stretch(path: Path, stop: int, out: Path) -> float:
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        t0 = time.perf_counter()
        exportfile.export(log, out, start=1, stop=stop)
        return time.perf_counter() - t0
    finally:
        log.close()


def run_replay(xf: exportfile.ExportFile, root: Path, n: int, mode: str, until: int) -> float:
    """events/s of ``tools.replay.replay`` into a fresh store, in ``dest.bulk()`` or not."""
    dest = root / f"replay-{mode}-{n}"
    log = LmdbEventLog(dest, clock=time.time_ns)
    try:
        t0 = time.perf_counter()
        if mode == "bulk":
            with log.bulk():
                rep = replay(xf, log)
        else:
            rep = replay(xf, log, until=until)
        elapsed = time.perf_counter() - t0
        if not rep.matched:
            raise SystemExit(f"replay diverged: {rep.divergence}")
        if mode == "bulk":
            assert rep.events == len(xf.events)
    finally:
        log.close()
        shutil.rmtree(dest, ignore_errors=True)
    return rep.events / elapsed


def run_cli_replay(export: Path, root: Path, n: int, events: int) -> float:
    """events/s of ``dockstate replay FILE --store DEST``: reading and checking the file included."""
    dest = root / f"replay-cli-{n}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKSTATE_")}
    cmd = [
        str(Path(sys.executable).parent / "dockstate"),
        "replay",
        str(export),
        "--store",
        str(dest),
    ]
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0 or f"{events} events" not in proc.stdout:
            raise SystemExit(f"dockstate replay failed: {proc.stdout}{proc.stderr}")
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return events / elapsed


BULK = "replay in dest.bulk()"
DURABLE = "replay, durable commits"
CLI = "dockstate replay (CLI)"


def bench_replay(path: Path, args: argparse.Namespace, root: Path) -> bool:
    stop = command_end(path, args.replay_events)
    out = root / "stretch.dsx"
    took = export_stretch(path, stop, out)
    t0 = time.perf_counter()
    xf = exportfile.read(out)
    read_s = time.perf_counter() - t0
    commands = sum(1 for e in xf.events if e.begins_command)
    durable_until = command_end(path, min(args.durable_events, stop))
    print(
        f"\n(b) replay of seq 1..{stop:,} ({len(xf.events):,} events, {commands:,} commands,"
        f" {len(xf.blobs):,} blobs, {out.stat().st_size / 2**20:.1f} MiB export written in"
        f" {took:.1f}s, read and verified in {read_s:.1f}s), {args.rounds} alternating rounds"
    )
    print(
        f"  {BULK}: tools.replay.replay inside dest.bulk(), as `dockstate replay` runs it;\n"
        f"  {DURABLE}: the same call without bulk (one fsynced commit per command, as"
        f" `--step` on a terminal), its first {durable_until:,} events only;\n"
        f"  {CLI}: the installed command on the export file, reading and verifying it included"
    )
    modes = args.replay_modes.split(",")
    groups = command_groups(len(xf.events), args.containers, "1-3", args.seed)
    bench = Bench(root)
    measures: dict[str, Callable[[int], float]] = {
        "append.py bulk append": lambda _r: bench.ours_bulk(groups, 10_000)
    }
    if "bulk" in modes:
        measures[BULK] = lambda r: run_replay(xf, root, r, "bulk", stop)
    if "durable" in modes:
        measures[DURABLE] = lambda r: run_replay(xf, root, r, "durable", durable_until)
    if "cli" in modes:
        measures[CLI] = lambda r: run_cli_replay(out, root, r, len(xf.events))
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for r in range(args.rounds):
        for name, measure in measures.items():
            rate = measure(r)
            rates[name].append(rate)
            print(f"  round {r + 1}/{args.rounds}  {name:<26} {rate:>10,.0f} events/s", flush=True)
    base = statistics.median(rates["append.py bulk append"])
    ok = True
    for name, rs in rates.items():
        med = statistics.median(rs)
        line = f"  {name:<26} median {med:>10,.0f} events/s  {med / base:.3f}x the bulk append"
        if name == BULK:
            met = med / base >= REPLAY_TARGET
            ok &= met
            line += f"   target >= {REPLAY_TARGET}x: {'MET' if met else 'MISSED'}"
        print(line)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the big store")
    parser.add_argument("--containers", type=int, default=10_000, help="containers created")
    parser.add_argument("--targets", type=int, default=10, help="random first() targets")
    parser.add_argument("--replay-events", type=int, default=100_000, help="events replayed")
    parser.add_argument(
        "--replay-modes",
        default="bulk,durable,cli",
        help="comma list: bulk (in dest.bulk(), as the CLI), durable (no bulk), cli (subprocess)",
    )
    parser.add_argument(
        "--durable-events", type=int, default=10_000, help="events replayed in durable mode"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating replay rounds")
    parser.add_argument(
        "--keep",
        default=None,
        help="big store to build once and reuse (default: <tmp>/dockstate-bench-big-<events>)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["first", "replay"], default=None)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.containers, args.targets = 20_000, 200, 4
        args.replay_events, args.durable_events, args.rounds = 2_000, 500, 2

    ds_logging.configure("console", "warning")
    print(machine())
    keep = Path(
        args.keep or os.path.join(tempfile.gettempdir(), f"dockstate-bench-big-{args.events}")
    )
    path = _bigstore.open_or_build(keep, args.events, args.containers, args.seed)
    root = Path(tempfile.mkdtemp(prefix="dockstate-bench-forensics-"))
    ok = True
    try:
        if args.only in (None, "first"):
            targets = pick_targets(path, args.targets, args.containers, args.seed)
            ok &= bench_first(path, targets)
        if args.only in (None, "replay"):
            ok &= bench_replay(path, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome target MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
