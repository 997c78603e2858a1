"""Forensics verbs: export, import, replay, bisect."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Sequence

from dockstate.core.errors import DockstateError
from dockstate.eventlog.envelope import Envelope
from dockstate.tools import exportfile
from dockstate.tools import format as fmt
from dockstate.tools.context import Context
from dockstate.tools.store import open_store


def export(ctx: Context) -> int:
    a = ctx.args
    header = exportfile.export(ctx.log, a.output, start=a.start, stop=a.stop, session=a.session)
    what = f"session {a.session}" if a.session else "events"
    print(f"exported {what} {header['from']}..{header['to']} to {a.output}")
    return 0


def import_(ctx: Context) -> int:
    from dockstate.tools.replay import _groups_as_facts, command_groups, missing_seeds

    xf = exportfile.read(ctx.args.file)
    host = ctx.host
    seeds = missing_seeds(host.state(), xf)
    # one transaction: events the store refuses take the image records with them
    groups = _groups_as_facts(list(command_groups(seeds)))
    groups += _groups_as_facts(list(command_groups(xf.events)))
    envs = host.record(groups, blobs=xf.blobs.values())[len(seeds) :]
    first = envs[0].seq if envs else ctx.log.head().seq
    print(
        f"imported {len(envs)} events (seq {first}..{first + len(envs) - 1}) and {len(seeds)} image records"
    )
    ctx.maintain_snapshots()
    return 0


def verify_file(path: str) -> int:
    try:
        xf = exportfile.read(path)
    except DockstateError as exc:
        print(f"bad: {exc}")
        return 1
    h = xf.header
    print(
        f"ok: export of seq {h['from']}..{h['to']} ({len(xf.events)} events, {len(xf.seeds)} image "
        f"records, {len(xf.blobs)} blobs), head {xf.head.hex()}"
    )
    return 0


def _summary(env: Envelope) -> str:
    d = env.data
    bits = [env.type]
    for key in ("name", "path", "dest", "size", "exit_code", "volume", "host_path"):
        if d.get(key) not in (None, "", ()):
            bits.append(f"{key}={d[key]}")
    return " ".join(bits)


def replay(ctx: Context) -> int:
    from dockstate.tools.replay import replay as run_replay

    a = ctx.args
    xf = exportfile.read(a.file)
    dest = a.dest or tempfile.mkdtemp(prefix="dockstate-replay-")
    interactive = a.step and sys.stdin.isatty()

    def step(group: Sequence[Envelope], got: Sequence[Envelope], error: str | None) -> None:
        first = group[0]
        name = first.cmd[0] if first.cmd else "(no command)"
        args = dict(first.cmd[1]) if first.cmd else {}
        print(f"[seq {first.seq}] {name} {fmt.dumps(args)}")
        for env in got:
            print(f"    {_summary(env)}")
        if error:
            print(f"    refused: {error}")
        if interactive:
            input("(Enter for the next command) ")

    with open_store(dest) as log:
        # One durable commit per command spends nearly all of a long replay in fsync;
        # the replay store can be rebuilt from the export, so its writes are batched,
        # except while the user steps through it and may look at the store in between.
        batched = contextlib.nullcontext() if interactive else log.bulk()
        with batched:
            report = run_replay(xf, log, until=a.until, step=step if a.step else None)
    if a.json:
        print(fmt.dumps({**report.to_json(), "dest": dest}, indent=2))
        return 0 if report.matched else 1
    if report.matched:
        print(f"replay matched: {report.commands} commands, {report.events} events (into {dest})")
        return 0
    d = report.divergence
    assert d is not None
    print(f"replay diverged at seq {d.seq}, in command: {d.command} {fmt.dumps(d.args)}")
    if d.error:
        print(f"  the command was refused: {d.error}")
    print("  expected:")
    for e in d.expected:
        print(f"    {e['seq']:>6} {e['type']} {fmt.dumps(e['data'])}")
    print("  got:")
    for e in d.got or []:
        print(f"    {e['seq']:>6} {e['type']} {fmt.dumps(e['data'])}")
    if not d.got:
        print("    (no events)")
    print("  state difference (expected -> got):")
    for line in d.state or ["(none)"]:
        print(f"    {line}")
    print(f"(after {report.commands} commands; replay store {dest})")
    return 1


def bisect(ctx: Context) -> int:
    from dockstate.tools.timetravel import Timeline, bisect_main

    tl = Timeline(ctx.log)
    return bisect_main(tl, ctx.args.exists, ctx.args.absent, ctx.args.state)
