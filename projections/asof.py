"""As-of reconstruction: the host as it was at any seq or time.

``state_at(seq)`` loads the newest snapshot at or below ``seq`` and folds the
events after it. While folding forward it leaves a snapshot behind every
``every`` events, so the next question about the same stretch of history is
cheap. A snapshot is keyed by the projection's version: when the fold or its
encoding changes, old snapshots are simply not found. Each snapshot of the host
comes with a segment of the ledger (the loss records since the previous one);
the records before a loaded snapshot are read back from the chain of segments
only when someone asks for them. Snapshots are a cache: one that cannot be
read is passed over. ``scoped_at`` answers for one container's files with
only the events that can change them.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import structlog

from dockstate.core import fs
from dockstate.core.errors import LifecycleViolation
from dockstate.core.mounts import BIND, VOLUME, Mount
from dockstate.core.names import is_full_id
from dockstate.core.state import Container, Host, InconsistentLogError
from dockstate.eventlog.envelope import GENESIS_HASH, Envelope, Facts
from dockstate.eventlog.log import EventLog
from dockstate.projections import _gc, snapshot
from dockstate.projections.ledger import EVENT_NAMES, Ledger, LossRecord

log = structlog.get_logger(__name__)

_SEQ: Final = operator.attrgetter("seq")

#: Snapshot name in the log's snapshots db.
NAME: Final = "host"
DEFAULT_EVERY: Final = 10_000
#: The store's meta key for its snapshot interval (``dockstate config --snapshot-every``).
EVERY_META: Final = "snapshot_every"


def configured_every(log: EventLog) -> int:
    """The store's snapshot interval (`EVERY_META`), `DEFAULT_EVERY` unless set; 0: never."""
    raw = log.get_meta(EVERY_META)
    return int(raw) if raw else DEFAULT_EVERY


class State:
    """The host and its loss ledger as of ``seq``: what every read query asks."""

    __slots__ = ("host", "ledger")

    def __init__(self, host: Host, ledger: Ledger) -> None:
        self.host, self.ledger = host, ledger

    @property
    def seq(self) -> int:
        return self.host.seq

    def apply(self, env: Envelope | Facts) -> None:
        self.ledger.observe(self.host, env.seq, env.ts, env.type, env.data)
        self.host.apply(env)

    def apply_all(self, envs: Iterable[Envelope | Facts]) -> None:
        # the ledger looks only at the events that discard data, before the host folds them
        observe = self.ledger.observe
        self.host.apply_all(envs, dict.fromkeys(EVENT_NAMES, observe))


class Projector:
    """Builds `State` at any point of a log, with snapshots.

    Args:
        log: the event log.
        every: write a snapshot each time folding passes a multiple of this seq (0: never).
        version: the snapshot version to read and write.
    """

    def __init__(
        self, log: EventLog, *, every: int = DEFAULT_EVERY, version: int = snapshot.VERSION
    ) -> None:
        self.log = log
        self.every = every
        self.version = version
        #: when a read of the head folded at least this many events past the newest
        #: snapshot, leave a snapshot at the head for the next read (0: never).
        self.head_snapshot_after = 0

    def _read_blobs(self, digests: Sequence[bytes]) -> bytes:
        return self.log.read_blobs(digests)

    def empty(self) -> State:
        return State(Host(self._read_blobs), Ledger())

    def _earlier(self, seq: int) -> Callable[[], list[LossRecord]]:
        return lambda: self._ledger_up_to(seq)

    def _ledger_up_to(self, seq: int) -> list[LossRecord]:
        """The loss records up to ``seq``: the chain of ledger segments from ``seq`` down.

        A segment missing or unreadable (they are a cache too) costs a fold of
        the log up to ``seq``.
        """
        chain: list[list[bytes]] = []
        at = seq
        while at > 0:
            snap = self.log.get_snapshot(snapshot.LEDGER, self.version, at)
            try:
                if snap is None or snap.seq != at:
                    raise LookupError(f"no ledger segment at seq {at}")
                prev, records = snapshot.decode_segment(snap.data)
                if prev >= at:
                    raise ValueError(f"ledger segment at seq {at} points forward to {prev}")
            except (LookupError, ValueError, TypeError) as exc:
                log.warning("snapshot.ledger_unreadable", seq=at, error=str(exc))
                state = self.empty()
                with _gc.paused():
                    state.apply_all(self.log.read_facts(1, seq))
                return state.ledger.records
            chain.append(records)
            at = prev
        return [snapshot.decode_record(raw) for segment in reversed(chain) for raw in segment]

    def load(self, at_or_below: int) -> State:
        """The newest readable snapshot at or below a seq, or the empty state.

        A snapshot is only a cache of the log: one that cannot be decoded is
        passed over (with a warning) for an older one, or for a full fold.
        """
        while True:
            snap = self.log.get_snapshot(NAME, self.version, at_or_below)
            if snap is None:
                return self.empty()
            try:
                host, ledger = snapshot.decode(snap.data, self._read_blobs)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                # msgpack's errors are ValueErrors; a wrong shape fails indexing
                log.warning("snapshot.unreadable", seq=snap.seq, error=str(exc))
                at_or_below = snap.seq - 1
                continue
            ledger.read_earlier_with(self._earlier(ledger.base))
            return State(host, ledger)

    def state_at(self, seq: int | None = None) -> State:
        """The state after event ``seq`` (the head when None; 0 is the empty host)."""
        head = self.log.head()
        target = head.seq if seq is None else max(0, min(seq, head.seq))
        with _gc.paused():
            state = self.load(target)
            newest = state.seq
            self.fold(state, target)
        # whichever way the state was reached (snapshot, tail, full fold), its
        # hash is the chain hash at its own seq, not the snapshot's
        state.host.hash = head.hash if target == head.seq else self._hash_at(target)
        if self.every:
            newest = max(newest, (target // self.every) * self.every)
        if (
            self.head_snapshot_after
            and target == head.seq
            and target - newest >= self.head_snapshot_after
        ):
            self._write(state, target)
            log.debug("snapshot.written_at_head", seq=target)
        return state

    def scoped_at(self, seq: int, ref: str, path: str) -> tuple[Host, Container | None] | None:
        """A host that knows what container ``ref`` sees at ``path`` as of ``seq``, cheaply.

        The snapshot at or below ``seq`` plus only the events indexed under the
        container and the volumes it mounts: what can change its writable
        layer, its tmpfs and those volumes. Everything else in the host may be
        stale, so use it for that container's files only. Returns the container
        (None: it does not exist at ``seq``), or None when this cannot be sure
        and the caller must fold everything: a ``ref`` that is neither a full id
        nor a name the snapshot knows (or whose container went since), a path
        under a bind mount (host writes are indexed by their own path), or an
        event needing something outside the scope.
        """
        head = self.log.head().seq
        target = max(0, min(seq, head))
        with _gc.paused():
            state = self.load(target)
            host = state.host
            by_name = ref.removeprefix("/") in host.names and ref not in host.containers
            cid = host.names[ref.removeprefix("/")] if by_name else ref
            if not by_name and cid not in host.containers and not is_full_id(cid):
                return None
            c = host.containers.get(cid)
            mounts = c.mounts if c is not None else self._created_mounts(cid, state.seq, target)
            subjects = [f"c:{cid}"]
            for m in mounts:
                if m.type == BIND and fs.is_below(path, m.target):
                    return None
                if m.type == VOLUME:
                    subjects.append(f"v:{m.source}")
            streams = [list(self.log.by_subject(s, state.seq + 1, target)) for s in subjects]
            # in log order, once each (a container's write into its volume is under both)
            merged = heapq.merge(*streams, key=_SEQ)
            envs = [next(group) for _, group in itertools.groupby(merged, key=_SEQ)]
            try:
                host.apply_all(envs)
            except (InconsistentLogError, LifecycleViolation):
                return None
        found = host.containers.get(cid)
        if found is None and by_name:
            return None  # gone: the name may have been given to another container since
        return host, found

    def _created_mounts(self, cid: str, after: int, target: int) -> list[Mount]:
        first = next(iter(self.log.by_subject(f"c:{cid}", after + 1, target)), None)
        if first is None or first.type != "ContainerCreated":
            return []
        d = first.data
        return [Mount.from_data(m) for m in (*d["mounts"], *d.get("tmpfs", ()))]

    def state_at_time(self, ts: int) -> State:
        """The state after the last event recorded at or before ``ts`` (ns)."""
        return self.state_at(self.log.seq_at(ts))

    def fold(self, state: State, target: int) -> None:
        """Fold events ``state.seq+1 .. target`` into ``state``, leaving snapshots behind."""
        start = state.seq + 1
        if start > target:
            return
        every = self.every
        with _gc.paused():
            if not every:
                state.apply_all(self.log.read_facts(start, target))
                return
            # fold up to each multiple of `every` below the target, and leave a snapshot there
            next_snap = (state.seq // every + 1) * every
            while next_snap < target:
                state.apply_all(self.log.read_facts(state.seq + 1, next_snap))
                self._snapshot_here(state, next_snap)
                next_snap += every
            state.apply_all(self.log.read_facts(state.seq + 1, target))

    def _hash_at(self, seq: int) -> bytes:
        """The chain hash after event ``seq``: the ``prev`` the event after it recorded."""
        if seq == 0:
            return GENESIS_HASH
        follower = next(self.log.read(seq + 1, seq + 1), None)
        return follower.prev if follower is not None else self.log.head().hash

    def _snapshot_here(self, state: State, seq: int) -> None:
        state.host.hash = self._hash_at(seq)
        if self._has_exact(NAME, seq) and self._has_exact(snapshot.LEDGER, seq):
            # written before (the fold is deterministic): its segment holds our records
            state.ledger.rebase(seq, self._earlier(seq))
            return
        self._write(state, seq)
        log.debug("snapshot.written", seq=seq)

    def _write(self, state: State, seq: int) -> None:
        """The ledger's segment at ``seq``, then the host with the ledger rebased on it."""
        self.log.put_snapshot(
            snapshot.LEDGER, self.version, seq, snapshot.encode_segment(state.ledger)
        )
        state.ledger.rebase(seq, self._earlier(seq))
        host, ledger = state.host, state.ledger
        raw = self.log.write(lambda tx: snapshot.encode(host, ledger, tx.put_blob))
        self.log.put_snapshot(NAME, self.version, seq, raw)

    def _has_exact(self, name: str, seq: int) -> bool:
        snap = self.log.get_snapshot(name, self.version, seq)
        return snap is not None and snap.seq == seq

    def snapshot(self, seq: int | None = None) -> int:
        """Write a snapshot at ``seq`` (default: the head) on demand; returns its seq."""
        state = self.state_at(seq)
        if state.seq == 0:
            return 0
        self._write(state, state.seq)
        return state.seq
