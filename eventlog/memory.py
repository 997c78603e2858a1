"""An in-memory event log with the same contract as the LMDB one.

It is public API: tests of the layers above use it when persistence is not the
point, and the contract suite runs against both backends. Events are kept as
their encoded bytes, exactly as LMDB keeps them, so that verification and
tampering behave the same.
"""

from __future__ import annotations

import bisect
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from dockstate.eventlog import blobs
from dockstate.eventlog.chain import verify_chain
from dockstate.eventlog.envelope import (
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    Envelope,
    Facts,
    NewEvent,
    chain_hash,
    decode,
    decode_facts,
    encode,
    session_of,
)
from dockstate.eventlog.errors import CorruptStoreError, EmptySubjectError
from dockstate.eventlog.log import Clock, Head, Snapshot, VerifyReport

T = TypeVar("T")


class InMemoryWriteTxn:
    """A `WriteTxn` that stages its changes until the log commits them."""

    def __init__(self, log: InMemoryEventLog) -> None:
        self._log = log
        self._head = log._head
        self._rows: list[bytes] = []
        self._blobs: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self.new_blob_bytes = 0

    @property
    def head(self) -> Head:
        return self._head

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        if any("" in event.subjects for event in events):
            raise EmptySubjectError
        seq, h, last_ts = self._head
        now = self._log._clock()
        stored = []
        for index, event in enumerate(events):
            seq += 1
            wanted = now if event.ts is None else event.ts
            last_ts = wanted if wanted > last_ts else last_ts + 1
            env = Envelope(
                ENVELOPE_VERSION,
                seq,
                last_ts,
                event.type,
                session,
                None if cmd is None else (cmd.name, cmd.args, index),
                h,
                event.data,
                tuple(event.subjects),
            )
            raw = encode(env)
            h = chain_hash(h, raw)
            self._rows.append(raw)
            stored.append(env)
        self._head = Head(seq, h, last_ts)
        return stored

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        committed = self._log._head.seq
        last = self._head.seq if stop is None else min(stop, self._head.seq)
        for seq in range(max(start, 1), last + 1):
            if seq <= committed:
                yield decode(self._log._events[seq - 1])
            else:
                yield decode(self._rows[seq - committed - 1])

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        for env in self._log.by_subject(subject, start, stop):
            yield env
        committed = self._log._head.seq
        for env in self.read(max(start, committed + 1), stop):
            if subject in env.subjects:
                yield env

    def put_blob(self, data: bytes) -> list[bytes]:
        return self._put_chunks(blobs.split(data))

    def put_blob_stream(self, chunks: Iterable[bytes]) -> tuple[list[bytes], int]:
        pieces = list(chunks)
        return self._put_chunks(blobs.rechunk(pieces)), sum(len(p) for p in pieces)

    def _put_chunks(self, chunks: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
        digests = []
        for digest, chunk in chunks:
            if digest not in self._log._blobs and digest not in self._blobs:
                self._blobs[digest] = chunk
                self.new_blob_bytes += len(chunk)
            digests.append(digest)
        return digests

    def get_blob(self, digest: bytes) -> bytes:
        if digest in self._blobs:
            return self._blobs[digest]
        return self._log.get_blob(digest)

    def has_blob(self, digest: bytes) -> bool:
        return digest in self._blobs or digest in self._log._blobs

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key, self._log._meta.get(key))

    def set_meta(self, key: str, value: bytes) -> None:
        self._meta[key] = value

    def _commit(self) -> None:
        log = self._log
        base = log._head.seq
        for i, raw in enumerate(self._rows):
            seq = base + i + 1
            log._events.append(raw)
            env = decode(raw)
            log._times.append(env.ts)
            for subject in set(env.subjects):  # LMDB's index holds a pair once
                log._subjects.setdefault(subject, []).append(seq)
        log._blobs.update(self._blobs)
        log._meta.update(self._meta)
        log._head = self._head


class InMemoryEventLog:
    """An `EventLog` held in memory; nothing survives the process."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._events: list[bytes] = []
        self._times: list[int] = []
        self._subjects: dict[str, list[int]] = {}
        self._blobs: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._snapshots: dict[tuple[str, int], dict[int, bytes]] = {}
        self._dropped: set[int] = set()  # seqs removed by `tamper`
        self._head = Head(0, GENESIS_HASH, 0)
        self._store_id = secrets.token_hex(16)

    @property
    def store_id(self) -> str:
        return self._store_id

    def write(self, fn: Callable[[InMemoryWriteTxn], T]) -> T:
        with self._lock:
            tx = InMemoryWriteTxn(self)
            result = fn(tx)
            tx._commit()
            return result

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        return self.write(lambda tx: tx.append(events, session=session, cmd=cmd))

    @contextmanager
    def bulk(self, batch: int = 10_000) -> Iterator[None]:
        # Memory has no commit cost to amortise; a refused write still stages nothing.
        yield

    def head(self) -> Head:
        return self._head

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        events = self._events
        last = len(events) if stop is None else min(stop, len(events))
        for seq in range(max(start, 1), last + 1):
            yield decode(events[seq - 1])

    def read_facts(self, start: int = 1, stop: int | None = None) -> Iterator[Facts]:
        events = self._events
        last = len(events) if stop is None else min(stop, len(events))
        for seq in range(max(start, 1), last + 1):
            yield decode_facts(events[seq - 1])

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        for seq in self.subject_seqs(subject, start, stop):
            yield decode(self._events[seq - 1])

    def subjects(self, prefix: str) -> list[str]:
        return sorted(s for s in self._subjects if s.startswith(prefix))

    def sessions(self, seqs: Iterable[int]) -> dict[int, str]:
        events = self._events
        return {seq: session_of(events[seq - 1]) for seq in seqs if 0 < seq <= len(events)}

    def subject_seqs(self, subject: str, start: int = 1, stop: int | None = None) -> list[int]:
        seqs = self._subjects.get(subject, [])
        lo = bisect.bisect_left(seqs, start)
        hi = len(seqs) if stop is None else bisect.bisect_right(seqs, stop)
        return seqs[lo:hi]

    def seq_at(self, ts: int) -> int:
        return bisect.bisect_right(self._times, ts)

    def get_blob(self, digest: bytes) -> bytes:
        try:
            return self._blobs[digest]
        except KeyError:
            raise CorruptStoreError(f"blob {digest.hex()} is missing from the store") from None

    def read_blobs(self, digests: Iterable[bytes]) -> bytes:
        return b"".join(self.get_blob(d) for d in digests)

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes) -> None:
        self.write(lambda tx: tx.set_meta(key, value))

    def put_snapshot(self, name: str, version: int, seq: int, data: bytes) -> None:
        with self._lock:
            self._snapshots.setdefault((name, version), {})[seq] = data

    def get_snapshot(self, name: str, version: int, at_or_below: int) -> Snapshot | None:
        snaps = self._snapshots.get((name, version), {})
        seqs = [s for s in snaps if s <= at_or_below]
        if not seqs:
            return None
        best = max(seqs)
        return Snapshot(best, snaps[best])

    def snapshot_seqs(self, name: str, version: int) -> list[int]:
        return sorted(self._snapshots.get((name, version), {}))

    def verify(self) -> VerifyReport:
        dropped = self._dropped
        items = ((i + 1, raw) for i, raw in enumerate(self._events) if i + 1 not in dropped)
        return verify_chain(items, self._head)

    def tamper(self, seq: int, raw: bytes | None) -> None:
        """Replace (or with None, drop) the stored bytes of ``seq``: for tamper tests.

        A dropped event leaves a gap in the seqs verification sees, as a deleted
        LMDB key does, rather than moving the later events down.
        """
        if raw is None:
            self._dropped.add(seq)
        else:
            self._dropped.discard(seq)
            self._events[seq - 1] = raw

    def close(self) -> None:
        pass
