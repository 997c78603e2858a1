"""Time travel over a dockstate store, from a Python script.

    from dockstate.tools.timetravel import Timeline

    tl = Timeline.open("~/.local/share/dockstate")
    view = tl.at("2026-11-29T10:02:00Z")          # or a seq, or a datetime
    print(view.read("web", "/var/lib/web_data/index.html"))
    print(tl.diff(120, 180).lines())
    seq = tl.first(lambda v: v.exists("web", "/var/lib/web_data/orders.db"))

Run as a script: ``python -m dockstate.tools.timetravel STORE at|diff|history|bisect ...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import structlog

from dockstate.core import fs
from dockstate.core.errors import DockstateError, FileSystemError, NoSuchContainerError
from dockstate.core.fs import Entry
from dockstate.core.mounts import BIND, VOLUME
from dockstate.core.state import Container, Host, Image, Volume
from dockstate.eventlog import LmdbEventLog
from dockstate.eventlog.envelope import Envelope
from dockstate.eventlog.log import EventLog
from dockstate.projections import views
from dockstate.projections.asof import NAME as SNAPSHOT_NAME
from dockstate.projections.asof import State, configured_every
from dockstate.projections.compare import HostDiff, diff_hosts
from dockstate.projections.ledger import LossRecord
from dockstate.projections.query import Reader
from dockstate.projections.snapshot import VERSION as SNAPSHOT_VERSION
from dockstate.tools import format as fmt
from dockstate.tools.timeref import is_seq, parse_time

Moment = int | dt.datetime | str

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class View:
    """The host as it was after event ``seq``: read-only."""

    def __init__(self, reader: Reader, seq: int) -> None:
        self._reader = reader
        self.seq = seq
        self.host: Host = reader.host(seq)

    @property
    def ts(self) -> int:
        return self.host.ts

    @property
    def containers(self) -> dict[str, Container]:
        return dict(self.host.containers)

    @property
    def images(self) -> dict[str, Image]:
        return dict(self.host.images)

    @property
    def volumes(self) -> dict[str, Volume]:
        return dict(self.host.volumes)

    @property
    def host_paths(self) -> dict[str, Entry]:
        return dict(self.host.host_files)

    def container(self, ref: str) -> Container:
        return self._reader.container(ref, self.seq)

    def state(self, ref: str) -> str | None:
        """A container's state, or None if it does not exist at this moment."""
        try:
            return self.container(ref).state
        except NoSuchContainerError:
            return None

    def read(self, container: str, path: str) -> bytes:
        return self._reader.cat(container, path, self.seq)

    def ls(self, container: str, path: str = "/") -> list[views.DirItem]:
        return self._reader.ls(container, path, self.seq)

    def stat(self, container: str, path: str) -> Entry:
        return self._reader.stat(container, path, self.seq)[0]

    def exists(self, container: str, path: str) -> bool:
        """``path`` exists in ``container`` (False also when the container does not)."""
        try:
            c = self.container(container)
        except NoSuchContainerError:
            return False
        return self.host.lookup(c, fs.normalize(path)) is not None

    def diff(self, container: str) -> list[tuple[str, str]]:
        return self._reader.diff(container, self.seq)

    def df(self) -> views.DiskUsage:
        return self._reader.df(self.seq)

    def audit(self, container: str | None = None) -> list[LossRecord]:
        return self._reader.audit(container, at=self.seq)


class Timeline:
    """A store's history: views at any moment, diffs, histories and bisection."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.reader = Reader(log, snapshot_every=configured_every(log))
        #: how many views `first` built in its last call (what bench/forensics.py counts).
        self.evaluations = 0

    @classmethod
    def open(cls, store: str | os.PathLike[str]) -> Timeline:
        if not structlog.is_configured():
            from dockstate.tools import logging as ds_logging

            ds_logging.configure("console", "warning")
        path = Path(store).expanduser()
        return cls(LmdbEventLog(path, clock=time.time_ns, readonly=not path.exists()))

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def head(self) -> int:
        return self.log.head().seq

    def seq(self, moment: Moment) -> int:
        """The seq a moment names: a seq, a datetime, or text (``42``, ISO 8601, ``-10m``)."""
        if isinstance(moment, int):
            return max(0, min(moment, self.head))
        if isinstance(moment, dt.datetime):
            when = moment if moment.tzinfo else moment.astimezone()
            # integer arithmetic: a float of ns since 1970 is off by up to 256 ns, enough
            # to miss an event recorded at exactly that microsecond
            return self.log.seq_at((when - _EPOCH) // dt.timedelta(microseconds=1) * 1000)
        if is_seq(moment):
            return self.seq(int(moment))
        return self.log.seq_at(parse_time(moment, time.time_ns()))

    def at(self, moment: Moment | None = None) -> View:
        return View(self.reader, self.head if moment is None else self.seq(moment))

    def diff(self, a: Moment, b: Moment) -> HostDiff:
        """What changed from moment ``a`` to moment ``b``."""
        return diff_hosts(self.at(a).host, self.at(b).host)

    def history(self, target: str, until: Moment | None = None) -> list[Envelope]:
        """Every event that touched ``CONTAINER``, ``CONTAINER:PATH``, ``volume:NAME[:PATH]``
        or ``host:PATH`` (up to ``until``)."""
        if until is not None:
            last = self.seq(until)
            return [e for e in self.history(target) if e.seq <= last]
        kind, _, rest = target.partition(":")
        if kind == "volume":
            name, _, path = rest.partition(":")
            envs = self.reader.history(f"v:{name}")
            where: tuple[str, str] | None = (VOLUME, name)
        elif kind == "host":
            path = fs.normalize(rest)
            # The path, its ancestors (a bind of a parent dir) and everything indexed below
            # it (host files and binds inside it).
            below = self.log.subjects("h:" + path.rstrip("/") + "/")
            subjects = [f"h:{path}", *(f"h:{a}" for a in fs.ancestors(path)), *below]
            merged = {e.seq: e for s in subjects for e in self.reader.history(s)}
            envs = [merged[s] for s in sorted(merged)]
            where = (BIND, "")
        else:
            c = self.reader.container(kind, removed=True)
            envs = self.reader.history(f"c:{c.id}")
            path, where = rest, None
        if not path:
            return envs
        p, host = fs.normalize(path), self.reader.host()
        return [e for e in envs if _touches(e, p, where, host)]

    def events(
        self,
        since: Moment | None = None,
        until: Moment | None = None,
        type: str | Sequence[str] | None = None,
        subject: str | None = None,
    ) -> Iterator[Envelope]:
        lo = 1 if since is None else self.seq(since) + 1
        hi = None if until is None else self.seq(until)
        types = {type} if isinstance(type, str) else set(type or ())
        source = self.log.by_subject(subject, lo, hi) if subject else self.log.read(lo, hi)
        for env in source:
            if not types or env.type in types:
                yield env

    def first(
        self,
        predicate: Callable[[View], bool],
        lo: Moment | None = None,
        hi: Moment | None = None,
        *,
        monotone: bool = True,
    ) -> int | None:
        """The first seq in ``lo..hi`` whose view satisfies ``predicate`` (None: never).

        With ``monotone`` (false, then true for ever after, as ``git bisect`` assumes)
        it bisects: first over the stored snapshots, each of which is a view that
        costs no folding, then inside the one stretch between two snapshots. With
        ``monotone=False`` it folds forward and tests every event, like a linear scan.
        """
        start = 0 if lo is None else self.seq(lo)
        end = self.head if hi is None else self.seq(hi)
        self.evaluations = 0
        if start > end:
            return None
        if not monotone:
            return self._scan(predicate, start, end)

        below: list[State] = []  # the state of the latest probe found false

        def test(seq: int) -> bool:
            self.evaluations += 1
            probe = _Uncached(self.reader)
            holds = predicate(View(probe, seq))
            if not holds:
                below[:] = probe._states.values()
            return holds

        if not test(end):
            return None
        if test(start):
            return start
        # invariant: predicate false at lo_, true at hi_
        lo_, hi_ = start, end
        snaps = [s for s in self._snapshot_seqs() if lo_ < s < hi_]
        while snaps:
            mid = snaps[len(snaps) // 2]
            if test(mid):
                hi_ = mid
                snaps = [s for s in snaps if s < mid]
            else:
                lo_ = mid
                snaps = [s for s in snaps if s > mid]
        # the last stretch is folded on from the state the last false probe loaded
        start_state = next((s for s in below if s.seq == lo_), None)
        return self._scan(predicate, lo_ + 1, hi_, known_true_at=hi_, state=start_state)

    def _snapshot_seqs(self) -> list[int]:
        seqs = getattr(self.log, "snapshot_seqs", None)
        return list(seqs(SNAPSHOT_NAME, SNAPSHOT_VERSION)) if seqs else []

    def _scan(
        self,
        predicate: Callable[[View], bool],
        lo: int,
        hi: int,
        known_true_at: int | None = None,
        state: State | None = None,
    ) -> int | None:
        """Fold from ``lo`` to ``hi`` once, testing the predicate after every event.

        ``state``: the state at ``lo - 1`` when the caller has it already (else it is loaded).
        """
        if state is None or state.seq != max(lo - 1, 0):
            state = self.reader.projector.state_at(max(lo - 1, 0))
        probe = _LiveReader(self.reader, state)
        self.evaluations += 1
        view = View(probe, state.seq)
        if lo <= state.seq and predicate(view):
            return state.seq
        for env in self.log.read(state.seq + 1, hi):
            state.apply(env)
            view.seq = env.seq
            view.host = state.host
            if env.seq >= lo and predicate(view):
                return env.seq
        return known_true_at if known_true_at is not None and known_true_at <= hi else None


class _Uncached(Reader):
    """A reader that does not keep every probed state in memory."""

    def __init__(self, reader: Reader) -> None:
        self.__dict__.update(reader.__dict__)
        self._states = {}


class _LiveReader(Reader):
    """A reader whose every question is about one state being folded forward."""

    def __init__(self, reader: Reader, state: object) -> None:
        self.__dict__.update(reader.__dict__)
        self._live = state

    def state(self, at: int | None = None):  # type: ignore[no-untyped-def]
        return self._live


def _touches(env: Envelope, path: str, where: tuple[str, str] | None, host: Host) -> bool:
    """The event is about the whole object (no path), or about ``path``, an ancestor of it
    or something below it, in the container's tree or, through its mounts, in the volume
    or on the host ``where`` names."""
    d = env.data
    paths = [p for p in (d.get("path"), d.get("dest")) if isinstance(p, str)]
    if not paths:
        return True
    if where is not None:
        paths = _mounted_paths(env, paths, where, host)
    return any(fs.is_below(p, path) or fs.is_below(path, p) for p in paths)


def _mounted_paths(
    env: Envelope, paths: list[str], where: tuple[str, str], host: Host
) -> list[str]:
    """An event's container paths as paths in a volume (``(VOLUME, name)``) or on the host
    (``(BIND, "")``), through the mount each path falls under."""
    mount_type, source = where
    if env.type in ("HostFileWritten", "HostDirCreated"):
        return paths if mount_type == BIND else []
    cid = env.data.get("container")
    c = (host.containers.get(cid) or host.removed.get(cid)) if isinstance(cid, str) else None
    if c is None:
        return []
    out = []
    for p in paths:
        m = c.mount_for(p)
        if m is None or m.type != mount_type or (mount_type == VOLUME and m.source != source):
            continue
        rel = fs.relative(p, m.target)
        out.append(rel if mount_type == VOLUME else fs.join(m.source, rel))
    return out


# -- the script ---------------------------------------------------------------------


def _print_view(view: View, container: str | None, path: str) -> None:
    print(f"as of seq {view.seq}")
    if container is None:
        for c in view.containers.values():
            print(f"  container {c.name:<20} {c.id[:12]}  {c.state}")
        for v in view.volumes.values():
            print(f"  volume    {v.name}")
        return
    for item in view.ls(container, path):
        print(f"  {item.entry.kind} {item.entry.size:>10}  {item.layer:<20} {item.path}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dockstate.tools.timetravel", description=__doc__.splitlines()[0]
    )
    p.add_argument("store")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("at", help="what the host looked like at a moment")
    a.add_argument("moment")
    a.add_argument("target", nargs="?", help="CONTAINER[:PATH] to list or read")
    d = sub.add_parser("diff", help="what changed between two moments")
    d.add_argument("a")
    d.add_argument("b")
    h = sub.add_parser("history", help="every event that touched a target")
    h.add_argument("target", help="CONTAINER[:PATH], volume:NAME[:PATH] or host:PATH")
    b = sub.add_parser("bisect", help="the first seq at which a condition holds")
    g = b.add_mutually_exclusive_group(required=True)
    g.add_argument("--exists", metavar="CONTAINER:PATH")
    g.add_argument("--absent", metavar="CONTAINER:PATH")
    g.add_argument("--state", metavar="CONTAINER=STATE")
    args = p.parse_args(argv)
    try:
        with Timeline.open(args.store) as tl:
            if args.cmd == "at":
                view = tl.at(args.moment)
                if args.target and ":" in args.target:
                    ref, _, path = args.target.partition(":")
                    entry = view.stat(ref, path)
                    if entry.kind == fs.DIR:
                        _print_view(view, ref, path)
                    else:
                        sys.stdout.buffer.write(view.read(ref, path))
                else:
                    _print_view(view, args.target, "/")
            elif args.cmd == "diff":
                for line in tl.diff(args.a, args.b).lines():
                    print(line)
            elif args.cmd == "history":
                for env in tl.history(args.target):
                    print(
                        f"{env.seq:>8}  {dt.datetime.fromtimestamp(env.ts / 1e9, dt.UTC).isoformat()}  {env.session or '-':<10} {env.type}"
                    )
            else:
                return bisect_main(tl, args.exists, args.absent, args.state)
    except (DockstateError, FileSystemError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def bisect_predicate(
    exists: str | None, absent: str | None, state: str | None
) -> Callable[[View], bool]:
    if exists or absent:
        ref, _, path = (exists or absent or "").partition(":")
        if not path:
            raise DockstateError("give CONTAINER:PATH")
        if exists:
            return lambda v: v.exists(ref, path)
        return lambda v: v.state(ref) is not None and not v.exists(ref, path)
    ref, _, wanted = (state or "").partition("=")
    if not wanted:
        raise DockstateError("give CONTAINER=STATE")
    return lambda v: v.state(ref) == wanted


def bisect_main(tl: Timeline, exists: str | None, absent: str | None, state: str | None) -> int:
    predicate = bisect_predicate(exists, absent, state)
    seq = tl.first(predicate)
    if seq is None:
        # not true at the head: the condition came and went, so look at every event
        seq = tl.first(predicate, monotone=False)
    if seq is None:
        print("never: the condition held at no point of the history")
        return 1
    env = next(tl.log.read(seq, seq), None)
    when = dt.datetime.fromtimestamp(env.ts / 1e9, dt.UTC).isoformat() if env else "-"
    cmd = f"{env.cmd[0]} {fmt.dumps(env.cmd[1])}" if env and env.cmd else (env.type if env else "-")
    print(f"first seq: {seq}")
    print(f"time:      {when}")
    print(f"command:   {cmd}")
    print(f"session:   {(env.session if env else '') or '-'}")
    print(f"(after {tl.evaluations} evaluations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
