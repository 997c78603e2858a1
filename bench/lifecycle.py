"""Lifecycle validation of replayed events: the transitions-derived table beside a dict floor.

Generates ``--events`` container lifecycle events (ContainerStarted, Paused,
Unpaused, Stopped, Killed, Restarted, Removed) over ``--containers``
containers, each one legal in its container's state, encodes every envelope
as the log stores it and decodes it back with `dockstate.eventlog.envelope.decode`
(untimed). Then, on the same decoded envelopes, in alternating rounds:

- floor: a hand-written ``{(state, trigger): dest}`` dict of plain strings,
  ``dest = FLOOR.get((states[cid], TRIGGERS[env.type]))``, refuse on None;
- table: the same loop through ``core.lifecycle.TABLE`` exactly as
  ``core.state._transition`` consults it (``TABLE.get(...)``, ``dest.value``);
- next_state: the same loop through the public ``core.lifecycle.next_state``;
- fold: ``Host.apply_all`` of the events into a host that holds the image and
  the containers (created untimed before each round): the real fold, with its
  lifecycle check, state fields, discards at stop and removal bookkeeping.

For reference it also fires a real ``transitions`` Machine trigger per event
on a sample (``set_state`` to the container's state, then ``trigger``), which
is why the table is compiled from the Machine instead of firing it.

Run: /work/venv/bin/python bench/lifecycle.py [--quick] [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from _common import machine
from transitions import Machine

from dockstate.core.events import CONTAINER_TRIGGERS
from dockstate.core.lifecycle import TABLE, TRANSITIONS, State, next_state
from dockstate.core.state import Host
from dockstate.eventlog.envelope import GENESIS_HASH, Envelope, decode, encode

TARGET = 0.5

#: (events/s of wall time, events/s of this process's CPU time)
Rates = tuple[float, float]

#: The floor: the lifecycle written out by hand as plain strings (checked equal to TABLE).
FLOOR: dict[tuple[str, str], str] = {
    ("created", "start"): "running",
    ("exited", "start"): "running",
    ("running", "pause"): "paused",
    ("paused", "unpause"): "running",
    ("running", "stop"): "exited",
    ("paused", "stop"): "exited",
    ("running", "kill"): "exited",
    ("paused", "kill"): "exited",
    ("running", "die"): "exited",
    ("paused", "die"): "exited",
    ("created", "restart"): "running",
    ("exited", "restart"): "running",
    ("created", "destroy"): "removed",
    ("exited", "destroy"): "removed",
    ("dead", "destroy"): "removed",
    ("created", "fail_removal"): "dead",
    ("exited", "fail_removal"): "dead",
}
#: event tag -> trigger, written out by hand too for the floor.
FLOOR_TRIGGERS: dict[str, str] = {
    "ContainerStarted": "start",
    "ContainerPaused": "pause",
    "ContainerUnpaused": "unpause",
    "ContainerStopped": "stop",
    "ContainerKilled": "kill",
    "ContainerRestarted": "restart",
    "ContainerRemoved": "destroy",
}

#: What the generator does next, per state: (event tag, weight). Removal is rare
#: so that most containers live through the whole run.
NEXT: dict[str, list[tuple[str, int]]] = {
    "created": [("ContainerStarted", 90), ("ContainerRestarted", 8), ("ContainerRemoved", 2)],
    "running": [("ContainerStopped", 50), ("ContainerPaused", 30), ("ContainerKilled", 20)],
    "paused": [("ContainerUnpaused", 80), ("ContainerStopped", 12), ("ContainerKilled", 8)],
    "exited": [("ContainerStarted", 70), ("ContainerRestarted", 27), ("ContainerRemoved", 3)],
}
FLOOR_NAME = "floor (plain dict)"
TABLE_NAME = "TABLE.get (as the fold)"
IMAGE_ID = "sha256:" + "ab" * 32
TS0 = 1_700_000_000_000_000_000


def _env(seq: int, tag: str, data: dict[str, object], cmd: str) -> Envelope:
    cid = str(data.get("container", ""))
    return Envelope(
        1, seq, TS0 + seq * 1000, tag, "bench", (cmd, {"container": cid}, 0),
        GENESIS_HASH, data, (f"c:{cid}",) if cid else (),
    )  # fmt: skip


def _roundtrip(env: Envelope) -> Envelope:
    """The envelope as a reader of the log gets it: encoded, then decoded."""
    return decode(encode(env))


def generate(events: int, containers: int, seed: int) -> tuple[list[Envelope], list[Envelope]]:
    """(setup, lifecycle): the image and ContainerCreated events, then the lifecycle events."""
    rng = random.Random(seed)
    ids = [rng.randbytes(32).hex() for _ in range(containers)]
    setup = [_env(1, "ImageRegistered", {"image_id": IMAGE_ID, "config": (), "diff_ids": ()}, "")]
    for i, cid in enumerate(ids):
        data = {
            "container": cid,
            "name": f"c{i:06d}",
            "image_id": IMAGE_ID,
            "image_ref": "app:1",
            "mounts": [],
            "discard_on": "stop",
        }
        setup.append(_env(len(setup) + 1, "ContainerCreated", data, "create"))
    setup = [_roundtrip(e) for e in setup]
    state = dict.fromkeys(ids, "created")
    alive = list(ids)
    choices = {s: ([t for t, _ in opts], [w for _, w in opts]) for s, opts in NEXT.items()}
    out: list[Envelope] = []
    seq = len(setup)
    for _ in range(events):
        k = rng.randrange(len(alive))
        cid = alive[k]
        tags, weights = choices[state[cid]]
        tag = rng.choices(tags, weights)[0]
        seq += 1
        data: dict[str, object] = {"container": cid}
        if tag in ("ContainerStopped", "ContainerKilled"):
            data["exit_code"] = 143 if tag == "ContainerStopped" else 137
        trigger = FLOOR_TRIGGERS[tag]
        state[cid] = FLOOR[(state[cid], trigger)]
        if state[cid] == "removed":
            alive[k] = alive[-1]
            alive.pop()
        out.append(_roundtrip(_env(seq, tag, data, trigger)))
    return setup, out


# -- the measured loops -------------------------------------------------------------


def run_floor(envs: Sequence[Envelope], ids: Sequence[str]) -> Rates:
    states = dict.fromkeys(ids, "created")
    floor, triggers = FLOOR, FLOOR_TRIGGERS
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    for env in envs:
        cid = env.data["container"]
        dest = floor.get((states[cid], triggers[env.type]))
        if dest is None:
            raise AssertionError(f"floor refused event {env.seq}")
        states[cid] = dest
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(envs) / wall, len(envs) / cpu


def run_table(envs: Sequence[Envelope], ids: Sequence[str]) -> Rates:
    """The check of ``core.state._transition``: TABLE.get((state, trigger)), dest.value."""
    states = dict.fromkeys(ids, State.CREATED.value)
    table, triggers = TABLE, CONTAINER_TRIGGERS
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    for env in envs:
        cid = env.data["container"]
        dest = table.get((states[cid], triggers[env.type]))
        if dest is None:
            raise AssertionError(f"table refused event {env.seq}")
        states[cid] = dest.value
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(envs) / wall, len(envs) / cpu


def run_next_state(envs: Sequence[Envelope], ids: Sequence[str]) -> Rates:
    states = dict.fromkeys(ids, State.CREATED.value)
    triggers, nxt = CONTAINER_TRIGGERS, next_state
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    for env in envs:
        cid = env.data["container"]
        dest = nxt(states[cid], triggers[env.type])
        if dest is None:
            raise AssertionError(f"next_state refused event {env.seq}")
        states[cid] = dest.value
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(envs) / wall, len(envs) / cpu


def run_fold(envs: Sequence[Envelope], setup: Sequence[Envelope]) -> Rates:
    host = Host(lambda _digests: b"")
    host.apply_all(setup)
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    host.apply_all(envs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert host.seq == envs[-1].seq
    return len(envs) / wall, len(envs) / cpu


def run_machine(envs: Sequence[Envelope], ids: Sequence[str]) -> Rates:
    """A real Machine trigger per event: set the container's state, fire, read it back."""
    m = Machine(
        states=[s.value for s in State],
        transitions=TRANSITIONS,
        initial=State.CREATED.value,
        auto_transitions=False,
    )
    states = dict.fromkeys(ids, State.CREATED.value)
    triggers = CONTAINER_TRIGGERS
    t0, c0 = time.perf_counter(), time.process_time()
    for env in envs:
        cid = env.data["container"]
        m.set_state(states[cid])
        m.trigger(triggers[env.type])
        states[cid] = m.state
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(envs) / wall, len(envs) / cpu


def check_final_states(envs: Sequence[Envelope], setup: Sequence[Envelope]) -> None:
    """All paths agree: the fold's container states equal the floor's."""
    ids = [e.data["container"] for e in setup if e.type == "ContainerCreated"]
    states = dict.fromkeys(ids, "created")
    for env in envs:
        cid = env.data["container"]
        states[cid] = FLOOR[(states[cid], FLOOR_TRIGGERS[env.type])]
    host = Host(lambda _digests: b"")
    host.apply_all(setup)
    host.apply_all(envs)
    got = {c.id: c.state for c in host.containers.values()}
    got.update({c.id: c.state for c in host.removed.values()})
    assert got == states, "the fold and the floor disagree"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="lifecycle events")
    parser.add_argument("--containers", type=int, default=20_000, help="containers created")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--sample", type=int, default=20_000, help="events fired on a Machine")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.containers, args.rounds, args.sample = 50_000, 2_000, 3, 2_000

    assert {k: v.value for k, v in TABLE.items()} == FLOOR, "FLOOR must be the Machine's table"
    assert all(CONTAINER_TRIGGERS[t] == trig for t, trig in FLOOR_TRIGGERS.items())
    print(machine())
    t0 = time.perf_counter()
    setup, envs = generate(args.events, args.containers, args.seed)
    ids = [e.data["container"] for e in setup if e.type == "ContainerCreated"]
    counts: dict[str, int] = {}
    for e in envs:
        counts[e.type] = counts.get(e.type, 0) + 1
    removed = counts.get("ContainerRemoved", 0)
    print(
        f"\n{len(envs):,} decoded lifecycle events over {len(ids):,} containers"
        f" ({removed:,} removed by the end), generated in {time.perf_counter() - t0:.1f}s"
    )
    print(
        "  " + ", ".join(f"{t.removeprefix('Container')} {n:,}" for t, n in sorted(counts.items()))
    )
    check_final_states(envs, setup)

    measures: dict[str, Callable[[], Rates]] = {
        FLOOR_NAME: lambda: run_floor(envs, ids),
        TABLE_NAME: lambda: run_table(envs, ids),
        "next_state()": lambda: run_next_state(envs, ids),
        "Host.apply_all fold": lambda: run_fold(envs, setup),
    }
    rates: dict[str, list[Rates]] = {name: [] for name in measures}
    print(f"\n{args.rounds} alternating rounds of {len(envs):,} events each (wall; CPU)")
    for r in range(args.rounds):
        for name, measure in measures.items():
            wall, cpu = measure()
            rates[name].append((wall, cpu))
            print(
                f"  round {r + 1}/{args.rounds}  {name:<24} {wall:>12,.0f} events/s"
                f"  (CPU {cpu:>12,.0f} /s)",
                flush=True,
            )

    ok = True
    for i, clock in enumerate(("wall time", "CPU time")):
        floor_rs = [rs[i] for rs in rates[FLOOR_NAME]]
        floor = statistics.median(floor_rs)
        print(f"\nmedians by {clock} (ratio to the floor's median rate; per-round ratios)")
        for name, rs in rates.items():
            mine = [r[i] for r in rs]
            med = statistics.median(mine)
            pairs = sorted(x / f for x, f in zip(mine, floor_rs, strict=True))
            line = (
                f"  {name:<24} {med:>12,.0f} events/s {1e9 / med:7.0f} ns/event"
                f"  {med / floor:5.2f}x  ({pairs[0]:.2f}..{pairs[-1]:.2f})"
            )
            if name == TABLE_NAME and i == 0:
                met = med / floor >= TARGET
                ok &= met
                line += f"  target >= {TARGET}x: {'MET' if met else 'MISSED'}"
            print(line)

    sample = envs[: args.sample]
    runs = [run_machine(sample, ids) for _ in range(3)]
    mrate = statistics.median(r[0] for r in runs)
    floor = statistics.median(rs[0] for rs in rates[FLOOR_NAME])
    print(
        f"\nreference: a real transitions Machine, set_state + trigger per event, on the first"
        f" {len(sample):,} events: {mrate:,.0f} events/s ({1e6 / mrate:.1f} us/event, i.e."
        f" {len(envs) / mrate:.0f}s for {len(envs):,} events), {mrate / floor:.3f}x the floor"
    )
    print("\ntarget met" if ok else "\ntarget MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
