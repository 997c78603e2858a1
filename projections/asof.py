"""As-of reconstruction: the host as it was at any seq or time.

``state_at(seq)`` loads the newest snapshot at or below ``seq`` and folds the
events after it. While folding forward it leaves a snapshot behind every
``every`` events, so the next question about the same stretch of history is
cheap. A snapshot is keyed by the projection's version: when the fold or its
encoding changes, old snapshots are simply not found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import structlog

from dockstate.core.state import Host
from dockstate.eventlog.envelope import GENESIS_HASH, Envelope
from dockstate.eventlog.log import EventLog
from dockstate.projections import snapshot
from dockstate.projections.ledger import Ledger

log = structlog.get_logger(__name__)

#: Snapshot name in the log's snapshots db.
NAME: Final = "host"
DEFAULT_EVERY: Final = 10_000


class State:
    """The host and its loss ledger as of ``seq``: what every read query asks."""

    __slots__ = ("host", "ledger")

    def __init__(self, host: Host, ledger: Ledger) -> None:
        self.host, self.ledger = host, ledger

    @property
    def seq(self) -> int:
        return self.host.seq

    def apply(self, env: Envelope) -> None:
        self.ledger.observe(self.host, env.seq, env.ts, env.type, env.data)
        self.host.apply(env)

    def apply_all(self, envs: Iterable[Envelope]) -> None:
        observe, apply = self.ledger.observe, self.host.apply
        host = self.host
        for env in envs:
            observe(host, env.seq, env.ts, env.type, env.data)
            apply(env)


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

    def _read_blobs(self, digests: Sequence[bytes]) -> bytes:
        return self.log.read_blobs(digests)

    def empty(self) -> State:
        return State(Host(self._read_blobs), Ledger())

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
            return State(host, ledger)

    def state_at(self, seq: int | None = None) -> State:
        """The state after event ``seq`` (the head when None; 0 is the empty host)."""
        head = self.log.head()
        target = head.seq if seq is None else max(0, min(seq, head.seq))
        state = self.load(target)
        self.fold(state, target)
        # whichever way the state was reached (snapshot, tail, full fold), its
        # hash is the chain hash at its own seq, not the snapshot's
        state.host.hash = head.hash if target == head.seq else self._hash_at(target)
        return state

    def state_at_time(self, ts: int) -> State:
        """The state after the last event recorded at or before ``ts`` (ns)."""
        return self.state_at(self.log.seq_at(ts))

    def fold(self, state: State, target: int) -> None:
        """Fold events ``state.seq+1 .. target`` into ``state``, leaving snapshots behind."""
        start = state.seq + 1
        if start > target:
            return
        every = self.every
        if not every:
            state.apply_all(self.log.read(start, target))
            return
        next_snap = (state.seq // every + 1) * every
        envs = self.log.read(start, target)
        for env in envs:
            state.apply(env)
            if env.seq == next_snap:
                if env.seq < target:
                    # the hash at a seq is the prev recorded by the event after it
                    self._snapshot_here(state, env.seq)
                next_snap += every

    def _hash_at(self, seq: int) -> bytes:
        """The chain hash after event ``seq``: the ``prev`` the event after it recorded."""
        if seq == 0:
            return GENESIS_HASH
        follower = next(self.log.read(seq + 1, seq + 1), None)
        return follower.prev if follower is not None else self.log.head().hash

    def _snapshot_here(self, state: State, seq: int) -> None:
        state.host.hash = self._hash_at(seq)
        if self._has_exact(seq):
            return
        self.log.put_snapshot(NAME, self.version, seq, snapshot.encode(state.host, state.ledger))
        log.debug("snapshot.written", seq=seq)

    def _has_exact(self, seq: int) -> bool:
        snap = self.log.get_snapshot(NAME, self.version, seq)
        return snap is not None and snap.seq == seq

    def snapshot(self, seq: int | None = None) -> int:
        """Write a snapshot at ``seq`` (default: the head) on demand; returns its seq."""
        state = self.state_at(seq)
        if state.seq == 0:
            return 0
        self.log.put_snapshot(
            NAME, self.version, state.seq, snapshot.encode(state.host, state.ledger)
        )
        return state.seq
