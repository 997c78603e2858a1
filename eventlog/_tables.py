"""The databases of a store, the rows they hold, and a write transaction over them.

Shared by the store (`dockstate.eventlog._lmdb`) and its bulk mode
(`dockstate.eventlog._bulk`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

import lmdb

from dockstate.eventlog import blobs
from dockstate.eventlog.envelope import (
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    Envelope,
    NewEvent,
    decode,
    pack_envelope,
)
from dockstate.eventlog.errors import CorruptStoreError, EmptySubjectError, StorageError
from dockstate.eventlog.log import Head

if TYPE_CHECKING:
    from dockstate.eventlog._lmdb import LmdbEventLog


U64 = struct.Struct(">Q")
SNAP = struct.Struct(">IQ")
HEAD_KEY = "head"


def subject_key(subject: str) -> bytes:
    """The index key of a subject; long ones are hashed to fit LMDB's 511-byte key limit."""
    raw = subject.encode()
    if not raw:
        raise EmptySubjectError
    if len(raw) > 400:
        return b"#" + hashlib.sha256(raw).digest()
    return raw


def pack_head(head: Head) -> bytes:
    return U64.pack(head.seq) + head.hash + U64.pack(head.ts)


def unpack_head(raw: bytes | None) -> Head:
    if raw is None:
        return Head(0, GENESIS_HASH, 0)
    return Head(U64.unpack_from(raw, 0)[0], bytes(raw[8:40]), U64.unpack_from(raw, 40)[0])


class Dbs:
    def __init__(self, env: lmdb.Environment) -> None:
        self.events = env.open_db(b"events")
        self.blobs = env.open_db(b"blobs")
        self.by_subject = env.open_db(b"by_subject", dupsort=True, dupfixed=True)
        self.by_time = env.open_db(b"by_time")
        self.snapshots = env.open_db(b"snapshots")
        self.meta = env.open_db(b"meta")


def read_range(
    txn: Any,
    dbs: Dbs,
    start: int,
    stop: int | None,
    decode: Callable[[bytes], Envelope] = decode,
) -> Iterator[Envelope]:
    cur = txn.cursor(dbs.events)
    if not cur.set_range(U64.pack(max(start, 1))):
        return
    if stop is None:
        for raw in cur.iternext(keys=False):
            yield decode(raw)
        return
    end = U64.pack(stop)
    for key, raw in cur:
        if key > end:
            break
        yield decode(raw)


def values_from(txn: Any, dbs: Dbs, start: int, count: int) -> list[bytes]:
    """The stored bytes of events ``start .. start+count-1`` (fewer past the head)."""
    cur = txn.cursor(dbs.events)
    if not cur.set_range(U64.pack(start)):
        return []
    return list(islice(cur.iternext(keys=False), count))


def subject_seqs(txn: Any, dbs: Dbs, subject: str, start: int, stop: int | None) -> list[int]:
    if not subject:
        return []  # no event can name it
    cur = txn.cursor(dbs.by_subject)
    key = subject_key(subject)
    if not cur.set_range_dup(key, U64.pack(max(start, 1))):
        return []
    seqs = []
    for raw in cur.iternext_dup(keys=False):
        seq = U64.unpack(raw)[0]
        if stop is not None and seq > stop:
            break
        seqs.append(seq)
    return seqs


def read_subject(
    txn: Any, dbs: Dbs, subject: str, start: int, stop: int | None
) -> Iterator[Envelope]:
    for seq in subject_seqs(txn, dbs, subject, start, stop):
        raw = txn.get(U64.pack(seq), db=dbs.events)
        if raw is None:
            raise CorruptStoreError(f"subject index of {subject!r} names missing event {seq}")
        yield decode(raw)


def get_blob_in(txn: Any, dbs: Dbs, digest: bytes) -> bytes:
    raw = txn.get(digest, db=dbs.blobs)
    if raw is None:
        raise CorruptStoreError(f"blob {digest.hex()} is missing from the store")
    if raw[:1] != blobs.RAW:
        raise CorruptStoreError(f"blob {digest.hex()} has an unknown encoding")
    return bytes(raw[1:])


#: Builds an envelope from its field values without NamedTuple's Python-level __new__.
_new_envelope = tuple.__new__


def stamp(
    events: Sequence[NewEvent],
    head: Head,
    now: int,
    *,
    session: str,
    cmd: Command | None,
    out: Rows,
) -> tuple[Head, list[Envelope], int]:
    """Give events their seq, ts and place in the chain, adding their rows to ``out``.

    Returns the head after the last event, the events, and the bytes their rows take.
    """
    seq, h, last_ts = head
    size = 0
    envs: list[Envelope] = []
    keys, raws, ts_keys = out.keys, out.raws, out.ts_keys
    subject_keys, subject_seqs = out.subject_keys, out.subject_seqs
    # The loop runs once per event of every write: names are bound locally, and
    # encode(), chain_hash() and subject_key() are spelled out (same bytes).
    pack_u64, sha256, new, packb = U64.pack, hashlib.sha256, _new_envelope, pack_envelope
    envelope, version = Envelope, ENVELOPE_VERSION
    name, args = (None, None) if cmd is None else cmd
    index = -1
    for etype, data, event_subjects, given_ts in events:
        seq += 1
        index += 1
        ts = now if given_ts is None else given_ts
        last_ts = ts if ts > last_ts else last_ts + 1
        subjects_of = tuple(event_subjects)
        env = new(
            envelope,
            (
                version,
                seq,
                last_ts,
                etype,
                session,
                None if name is None else (name, args, index),
                h,
                data,
                subjects_of,
            ),
        )
        raw = packb(env)
        h = sha256(h + raw).digest()
        key = pack_u64(seq)
        keys.append(key)
        raws.append(raw)
        ts_keys.append(pack_u64(last_ts))
        size += len(raw)
        for s in subjects_of:
            skey = s.encode()
            if not skey or len(skey) > 400:
                skey = subject_key(s)  # refuses an empty subject, hashes a long one
            subject_keys.append(skey)
            subject_seqs.append(key)
            size += len(skey)
        envs.append(env)
    return Head(seq, h, last_ts), envs, size


class Rows:
    """The rows that store events, in the order they were stamped.

    Only bytes, in parallel lists rather than pairs: a batch keeps them until it
    commits, and a tuple per row (or the envelopes) would be objects for the
    cyclic GC to walk again and again.
    """

    __slots__ = ("keys", "raws", "subject_keys", "subject_seqs", "ts_keys")

    def __init__(self) -> None:
        #: events: seq key -> stored envelope; by_time: ts key -> seq key
        self.keys: list[bytes] = []
        self.raws: list[bytes] = []
        self.ts_keys: list[bytes] = []
        #: by_subject: subject key -> seq key
        self.subject_keys: list[bytes] = []
        self.subject_seqs: list[bytes] = []


class LmdbWriteTxn:
    """A `WriteTxn` over one LMDB write transaction."""

    def __init__(self, store: LmdbEventLog, txn: Any, head: Head | None = None) -> None:
        self._store, self._txn, self._dbs = store, txn, store._dbs
        # A bulk write passes the batch's head: reading it back from meta costs a get.
        self._head = (
            unpack_head(txn.get(HEAD_KEY.encode(), db=self._dbs.meta)) if head is None else head
        )
        self._dirty = False
        self.new_blob_bytes = 0
        # One-shot streams handed to put_blob_stream by earlier tries of this write.
        self._spent: list[object] = []

    @property
    def head(self) -> Head:
        return self._head

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        if not events:
            return []
        txn, dbs = self._txn, self._dbs
        out = Rows()
        self._head, envs, _ = stamp(
            events, self._head, self._store._clock(), session=session, cmd=cmd, out=out
        )
        keys, raws, ts_keys = out.keys, out.raws, out.ts_keys
        # Commands append one event or a few: a plain put is cheaper than a
        # cursor and putmulti for one row, and stores the same.
        if len(keys) == 1:
            txn.put(keys[0], raws[0], append=True, db=dbs.events)
            txn.put(ts_keys[0], keys[0], append=True, db=dbs.by_time)
        else:
            txn.cursor(dbs.events).putmulti(zip(keys, raws, strict=True), append=True)
            txn.cursor(dbs.by_time).putmulti(zip(ts_keys, keys, strict=True), append=True)
        if len(out.subject_keys) == 1:
            txn.put(out.subject_keys[0], out.subject_seqs[0], dupdata=True, db=dbs.by_subject)
        elif out.subject_keys:
            subjects = sorted(zip(out.subject_keys, out.subject_seqs, strict=True))
            txn.cursor(dbs.by_subject).putmulti(subjects, dupdata=True)
        self._dirty = True
        return envs

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        return read_range(self._txn, self._dbs, start, stop)

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        return read_subject(self._txn, self._dbs, subject, start, stop)

    def put_blob(self, data: bytes) -> list[bytes]:
        return self._put_chunks(blobs.chunks_of(data))

    def put_blob_stream(self, chunks: Iterable[bytes]) -> tuple[list[bytes], int]:
        if iter(chunks) is chunks:
            # An iterator is used up by the first try: if the map had to grow and
            # the write is run again, storing what is left would lose data silently.
            if any(spent is chunks for spent in self._spent):
                raise StorageError(
                    f"cannot write to store {self._store.path}: the store had to grow while "
                    "a stream was stored and a one-shot iterator cannot be read again; "
                    "nothing was recorded (create the stream inside the write function)"
                )
            self._spent.append(chunks)
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for piece in chunks:
                size += len(piece)
                yield piece

        return self._put_chunks(blobs.rechunk(counted())), size

    def _put_chunks(self, chunks: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
        put, db = self._txn.put, self._dbs.blobs
        digests = []
        for digest, chunk in chunks:
            # overwrite=False makes the existence check and the insert one call.
            if put(digest, blobs.RAW + chunk, overwrite=False, db=db):
                self.new_blob_bytes += len(chunk)
                self._dirty = True
            digests.append(digest)
        return digests

    def get_blob(self, digest: bytes) -> bytes:
        return get_blob_in(self._txn, self._dbs, digest)

    def has_blob(self, digest: bytes) -> bool:
        return self._txn.get(digest, db=self._dbs.blobs) is not None

    def get_meta(self, key: str) -> bytes | None:
        raw = self._txn.get(key.encode(), db=self._dbs.meta)
        return None if raw is None else bytes(raw)

    def set_meta(self, key: str, value: bytes) -> None:
        if key == HEAD_KEY:
            raise ValueError("the head is kept by the log itself")
        self._put(self._dbs.meta, key.encode(), value)

    def _put(self, db: Any, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=db)
        self._dirty = True

    def _finish(self) -> None:
        self._txn.put(HEAD_KEY.encode(), pack_head(self._head), db=self._dbs.meta)
