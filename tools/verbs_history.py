"""History verbs: events, log, history, audit, verify, session, config, snapshot."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from dockstate.core.errors import DockstateError, InvalidParameterError
from dockstate.core.state import Host
from dockstate.eventlog.envelope import Envelope
from dockstate.projections.asof import EVERY_META, configured_every
from dockstate.projections.asof import NAME as SNAPSHOT_NAME
from dockstate.projections.ledger import LossRecord
from dockstate.projections.snapshot import VERSION as SNAPSHOT_VERSION
from dockstate.tools import format as fmt
from dockstate.tools import shapes
from dockstate.tools.context import SESSION_META, Context
from dockstate.tools.progress import Progress

# -- docker events -------------------------------------------------------------------


def _filters(items: list[str] | None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidParameterError(f"bad format of filter (expected name=value): {item}")
        if key not in {"container", "event", "image", "type", "volume", "scope", "label"}:
            raise InvalidParameterError(f"invalid filter '{key}'")
        out.setdefault(key, set()).add(value)
    return out


def _matches(msg: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    attrs = msg["Actor"]["Attributes"]
    for key, values in filters.items():
        if key == "type" and msg["Type"] not in values:
            return False
        if key == "event" and msg["Action"] not in values:
            return False
        if key == "scope" and msg["scope"] not in values:
            return False
        if key == "container" and not (
            msg["Type"] == "container"
            and any(msg["Actor"]["ID"].startswith(v) or attrs.get("name") == v for v in values)
        ):
            return False
        if key == "volume" and not (msg["Type"] == "volume" and msg["Actor"]["ID"] in values):
            return False
        if key == "image" and not (attrs.get("image") in values or msg["Actor"]["ID"] in values):
            return False
        if key == "label" and not any(attrs.get(v.partition("=")[0]) is not None for v in values):
            return False
    return True


def _event_line(msg: dict[str, Any]) -> str:
    attrs = ", ".join(f"{k}={v}" for k, v in sorted(msg["Actor"]["Attributes"].items()))
    # Docker prints a fixed nine-digit fraction here (rfc3339NanoFixed), zeros kept
    secs, ns = divmod(msg["timeNano"], 1_000_000_000)
    when = fmt.rfc3339(secs * 1_000_000_000).removesuffix("Z") + f".{ns:09d}Z"
    return f"{when} {msg['Type']} {msg['Action']} {msg['Actor']['ID']}" + (
        f" ({attrs})" if attrs else ""
    )


def _docker_messages(host: Host, envs: Iterable[Envelope], since: int) -> Iterator[dict[str, Any]]:
    for env in envs:
        if env.seq >= since:
            yield from shapes.docker_events(env, host)
        host.apply(env)


def events(ctx: Context) -> int:
    """``docker events``: with ``--until`` print and exit, without it follow until interrupted."""
    a = ctx.args
    filters = _filters(a.filter)
    given = ctx.since_arg(a.since) if a.since else None
    since = given if given is not None else ctx.log.head().seq + 1
    until = ctx.time_arg(a.until) if a.until else None
    at = ctx.at()
    if at is not None:  # as of a past moment: nothing after it, and nothing to follow
        until = at if until is None else min(until, at)
    host = ctx.reader.projector.empty().host

    def show(envs: Iterable[Envelope]) -> None:
        for msg in _docker_messages(host, envs, since):
            if _matches(msg, filters):
                print(fmt.dumps(msg) if a.format == "json" else _event_line(msg), flush=True)

    if until is not None:
        show(ctx.log.read(1, until))
        return 0
    last = ctx.log.head().seq
    show(ctx.log.read(1, last))
    try:
        while True:
            time.sleep(0.2)
            head = ctx.log.head().seq
            if head > last:
                show(ctx.log.read(last + 1, head))
                last = head
    except KeyboardInterrupt:
        return 0


# -- the raw log ----------------------------------------------------------------------


def _event_json(env: Envelope) -> dict[str, Any]:
    return {
        "seq": env.seq,
        "time": fmt.local_iso(env.ts),
        "type": env.type,
        "session": env.session,
        "command": None if env.cmd is None else {"name": env.cmd[0], "args": env.cmd[1]},
        "data": env.data,
    }


def _summary(env: Envelope) -> str:
    d = env.data
    parts = []
    for key in (
        "container",
        "name",
        "path",
        "dest",
        "image_id",
        "ref",
        "volume",
        "host_path",
        "size",
        "exit_code",
        "signal",
    ):
        if key in d and d[key] not in ("", None, ()):
            value = d[key]
            if key in ("container", "image_id"):
                value = str(value).removeprefix("sha256:")[:12]
            parts.append(f"{key}={value}")
    return " ".join(parts)


def _print_events(ctx: Context, envs: list[Envelope]) -> None:
    if ctx.args.format == "json":
        fmt.print_json_array([_event_json(e) for e in envs])
        return
    fmt.table(
        ["SEQ", "TIME", "SESSION", "TYPE", "DETAILS"],
        [(e.seq, fmt.local_iso(e.ts), e.session or "-", e.type, _summary(e)) for e in envs],
    )


def log(ctx: Context) -> int:
    a = ctx.args
    stop = a.stop
    at = ctx.at()
    if at is not None:
        stop = at if stop is None else min(stop, at)
    _print_events(ctx, list(ctx.log.read(a.start, stop)))
    return 0


def history(ctx: Context) -> int:
    """Every event that touched a container, a volume or a host path (optionally one path in it)."""
    from dockstate.tools.timetravel import Timeline

    target: str = ctx.args.target
    kind, _, rest = target.partition(":")
    envs = Timeline(ctx.log).history(target, until=ctx.at())
    if kind == "volume" and not envs:
        raise DockstateError(f"get {rest.partition(':')[0]}: no such volume")
    _print_events(ctx, envs)
    return 0


# -- audit ------------------------------------------------------------------------------


def _lost_json(r: LossRecord) -> dict[str, Any]:
    return {
        "container": r.container,
        "name": r.name,
        "event": r.event,
        "seq": r.seq,
        "time": fmt.local_iso(r.ts),
        "policy": r.policy,
        "volume": r.volume or None,
        "note": r.note,
        "lost": [
            {
                "path": f.path,
                "size": f.size,
                "digest": f.digest,
                "written_seq": f.written_seq,
                "written_time": fmt.local_iso(f.written_ts) if f.written_ts else None,
                "session": f.session,
            }
            for f in r.lost
        ],
        "lost_bytes": r.lost_bytes,
        "persisted": [
            {"path": p.path, "type": p.type, "source": p.source, "size": p.size}
            for p in r.persisted
        ],
    }


def audit(ctx: Context) -> int:
    a = ctx.args
    records = ctx.reader.audit(
        a.container, since=ctx.since_arg(a.since), until=ctx.time_arg(a.until), at=ctx.at()
    )
    data = [_lost_json(r) for r in records]
    if a.format == "json":
        fmt.print_json_array(data)
        return 0
    if not data:
        print("No data was lost.")
        return 0
    total_files = total_bytes = 0
    for key, group in itertools.groupby(
        data, key=lambda r: (r["container"], r["name"], r["volume"])
    ):
        cid, name, volume = key
        title = f"volume {volume}" if volume else f"container {name} ({cid[:12]})"
        print(title)
        for r in group:
            lost = r["lost"]
            total_files += len(lost)
            total_bytes += r["lost_bytes"]
            print(
                f"  {r['event']} at seq {r['seq']} ({r['time']}), policy {r['policy'] or '-'}: "
                f"{len(lost)} file(s), {fmt.human_size(r['lost_bytes'])} lost"
            )
            if r["note"]:
                print(f"    {r['note']}")
            for f in lost:
                sess = f" session {f['session']}" if f["session"] else ""
                print(
                    f"    lost       {f['path']}  {fmt.human_size(f['size'])}  written at seq {f['written_seq']}{sess}  {f['digest'][:19]}"
                )
            for p in r["persisted"]:
                print(f"    persisted  {p['path']}  -> {p['type']} {p['source']}")
    print(f"Total: {total_files} file(s), {fmt.human_size(total_bytes)} lost")
    return 0


# -- verify -------------------------------------------------------------------------------


def verify(ctx: Context) -> int:
    """Hash chain, then a replay of every event through the lifecycle and storage fold."""
    if getattr(ctx.args, "file", None):
        from dockstate.tools.verbs_forensics import verify_file

        return verify_file(ctx.args.file)
    log_ = ctx.log
    report = log_.verify()
    if not report.ok:
        print(f"bad: event {report.bad_seq}: {report.problem}")
        return 1
    host = ctx.reader.projector.empty().host
    with Progress("verify", report.events) as bar:
        for env in log_.read(1):
            try:
                host.apply(env)
            except DockstateError as exc:
                print(f"bad: event {env.seq}: {exc}")
                return 1
            bar.advance()
    print(f"ok: {report.events} events, head {report.head.hex()}")
    return 0


# -- sessions and settings ---------------------------------------------------------------


def session_start(ctx: Context) -> int:
    name = ctx.args.name
    if not name or any(ch.isspace() for ch in name):
        raise InvalidParameterError(f"invalid session name {name!r}")
    ctx.log.set_meta(SESSION_META, name.encode())
    print(name)
    return 0


def session_stop(ctx: Context) -> int:
    current = ctx.log.get_meta(SESSION_META)
    if not current:
        raise DockstateError("no session is started")
    ctx.log.set_meta(SESSION_META, b"")
    print(current.decode())
    return 0


def session_ls(ctx: Context) -> int:
    sessions: dict[str, dict[str, Any]] = {}
    for env in ctx.log.read(1, ctx.at()):
        s = sessions.get(env.session)
        if s is None:
            s = sessions[env.session] = {
                "name": env.session,
                "first_seq": env.seq,
                "first_time": env.ts,
                "events": 0,
                "commands": 0,
                "names": {},
            }
        s["last_seq"], s["last_time"] = env.seq, env.ts
        s["events"] += 1
        if env.cmd is not None and env.begins_command:
            s["commands"] += 1
            s["names"][env.cmd[0]] = s["names"].get(env.cmd[0], 0) + 1
    rows = [
        {
            "name": s["name"],
            "first_seq": s["first_seq"],
            "last_seq": s["last_seq"],
            "first_time": fmt.local_iso(s["first_time"]),
            "last_time": fmt.local_iso(s["last_time"]),
            "events": s["events"],
            "commands": s["commands"],
            "command_counts": s["names"],
        }
        for s in sessions.values()
    ]
    current = ctx.log.get_meta(SESSION_META)
    if ctx.args.format == "json":
        fmt.print_json_array(rows)
        return 0
    fmt.table(
        ["SESSION", "FIRST SEQ", "LAST SEQ", "FIRST TIME", "LAST TIME", "EVENTS", "COMMANDS"],
        [
            (
                (r["name"] or "(none)")
                + (" *" if current and r["name"] == current.decode() else ""),
                r["first_seq"],
                r["last_seq"],
                r["first_time"],
                r["last_time"],
                r["events"],
                r["commands"],
            )
            for r in rows
        ],
    )
    return 0


def config(ctx: Context) -> int:
    every = ctx.args.snapshot_every
    if every is not None and every < 0:
        raise InvalidParameterError(f"invalid snapshot interval {every}: use 0 (never) or more")
    if ctx.args.discard_on is not None:
        ctx.host.set_default_discard(ctx.args.discard_on)
    if every is not None:
        # a store setting, not the simulated host's: it changes no answer, only how fast
        ctx.log.set_meta(EVERY_META, str(every).encode())
    state = ctx.host.state()
    print(f"discard-on: {state.settings.get('discard_on', 'stop')}")
    print(f"snapshot-every: {configured_every(ctx.log)}")
    return 0


# -- snapshots ---------------------------------------------------------------------------


def snapshot(ctx: Context) -> int:
    """Write a snapshot of the projections now (as of the head, or ``--at``)."""
    seq = ctx.reader.projector.snapshot(ctx.at())
    if seq == 0:
        print("nothing to snapshot: no event at or before that point")
        return 0
    snap = ctx.log.get_snapshot(SNAPSHOT_NAME, SNAPSHOT_VERSION, seq)
    size = fmt.human_size(len(snap.data)) if snap is not None else "?"
    print(f"snapshot at seq {seq} (version {SNAPSHOT_VERSION}, {size})")
    return 0
