"""The LMDB backend of the event log.

One LMDB environment per store directory, with these named databases:

    events      seq (u64 BE)                  -> envelope bytes
    blobs       sha256 digest (32 bytes)      -> codec byte + chunk
    by_subject  subject (dupsort)             -> seq (u64 BE, dupfixed)
    by_time     ts ns (u64 BE)                -> seq (u64 BE)
    snapshots   name NUL version u32 seq u64  -> projection state
    meta        name                          -> value

Events and the time index are keyed by values that only grow, so both are
written with ``append=True``. The subject index is a dupsort database: each
subject's key is stored once and its seqs are appended to its own sorted
duplicate list, which keeps inserts cheap even with many thousands of subjects.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import lmdb
import structlog

from dockstate.eventlog import blobs
from dockstate.eventlog.chain import verify_chain
from dockstate.eventlog.envelope import (
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    Envelope,
    NewEvent,
    decode,
    encode,
)
from dockstate.eventlog.errors import (
    CorruptStoreError,
    EmptySubjectError,
    StorageError,
    StoreFormatError,
)
from dockstate.eventlog.log import Clock, Head, Snapshot, VerifyReport

T = TypeVar("T")

#: The on-disk format this code writes. Bump it on any incompatible change.
FORMAT_VERSION: Final = 1

#: Start with a large map: it is sparse on Linux, so it costs nothing until
#: used, and growing it needs every transaction of the process closed.
DEFAULT_MAP_SIZE: Final = 1 << 36

_U64 = struct.Struct(">Q")
_SNAP = struct.Struct(">IQ")
_HEAD = "head"

log = structlog.get_logger(__name__)


def subject_key(subject: str) -> bytes:
    """The index key of a subject; long ones are hashed to fit LMDB's 511-byte key limit."""
    raw = subject.encode()
    if not raw:
        raise EmptySubjectError
    if len(raw) > 400:
        return b"#" + hashlib.sha256(raw).digest()
    return raw


def _pack_head(head: Head) -> bytes:
    return _U64.pack(head.seq) + head.hash + _U64.pack(head.ts)


def _unpack_head(raw: bytes | None) -> Head:
    if raw is None:
        return Head(0, GENESIS_HASH, 0)
    return Head(_U64.unpack_from(raw, 0)[0], bytes(raw[8:40]), _U64.unpack_from(raw, 40)[0])


def _oserror_text(exc: lmdb.Error) -> str:
    # py-lmdb messages look like "path: No space left on device"; keep the reason.
    text = str(exc)
    return text.rsplit(": ", 1)[-1] if ": " in text else text


class _Dbs:
    def __init__(self, env: lmdb.Environment) -> None:
        self.events = env.open_db(b"events")
        self.blobs = env.open_db(b"blobs")
        self.by_subject = env.open_db(b"by_subject", dupsort=True, dupfixed=True)
        self.by_time = env.open_db(b"by_time")
        self.snapshots = env.open_db(b"snapshots")
        self.meta = env.open_db(b"meta")


def _read_range(txn: Any, dbs: _Dbs, start: int, stop: int | None) -> Iterator[Envelope]:
    cur = txn.cursor(dbs.events)
    if not cur.set_range(_U64.pack(max(start, 1))):
        return
    if stop is None:
        for raw in cur.iternext(keys=False):
            yield decode(raw)
        return
    end = _U64.pack(stop)
    for key, raw in cur:
        if key > end:
            break
        yield decode(raw)


def _subject_seqs(txn: Any, dbs: _Dbs, subject: str, start: int, stop: int | None) -> list[int]:
    if not subject:
        return []  # no event can name it
    cur = txn.cursor(dbs.by_subject)
    key = subject_key(subject)
    if not cur.set_range_dup(key, _U64.pack(max(start, 1))):
        return []
    seqs = []
    for raw in cur.iternext_dup(keys=False):
        seq = _U64.unpack(raw)[0]
        if stop is not None and seq > stop:
            break
        seqs.append(seq)
    return seqs


def _by_subject(
    txn: Any, dbs: _Dbs, subject: str, start: int, stop: int | None
) -> Iterator[Envelope]:
    for seq in _subject_seqs(txn, dbs, subject, start, stop):
        raw = txn.get(_U64.pack(seq), db=dbs.events)
        if raw is None:
            raise CorruptStoreError(f"subject index of {subject!r} names missing event {seq}")
        yield decode(raw)


def _get_blob(txn: Any, dbs: _Dbs, digest: bytes) -> bytes:
    raw = txn.get(digest, db=dbs.blobs)
    if raw is None:
        raise CorruptStoreError(f"blob {digest.hex()} is missing from the store")
    if raw[:1] != blobs.RAW:
        raise CorruptStoreError(f"blob {digest.hex()} has an unknown encoding")
    return bytes(raw[1:])


class LmdbWriteTxn:
    """A `WriteTxn` over one LMDB write transaction."""

    def __init__(self, store: LmdbEventLog, txn: Any, head: Head | None = None) -> None:
        self._store, self._txn, self._dbs = store, txn, store._dbs
        # A bulk write passes the batch's head: reading it back from meta costs a get.
        self._head = (
            _unpack_head(txn.get(_HEAD.encode(), db=self._dbs.meta)) if head is None else head
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
        seq, h, last_ts = self._head
        now = self._store._clock()
        stored: list[Envelope] = []
        rows: list[tuple[bytes, bytes]] = []
        times: list[tuple[bytes, bytes]] = []
        subjects: list[tuple[bytes, bytes]] = []
        # The loop runs once per event of every write: names are bound locally, and
        # chain_hash() and subject_key() are spelled out (same bytes).
        pack_u64, sha256 = _U64.pack, hashlib.sha256
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
            h = sha256(h + raw).digest()
            key = pack_u64(seq)
            rows.append((key, raw))
            times.append((pack_u64(last_ts), key))
            for s in env.subjects:
                skey = s.encode()
                if not skey or len(skey) > 400:
                    skey = subject_key(s)  # refuses an empty subject, hashes a long one
                subjects.append((skey, key))
            stored.append(env)
        # Commands append one event or a few: a plain put is cheaper than a
        # cursor and putmulti for one row, and stores the same.
        if len(rows) == 1:
            txn.put(*rows[0], append=True, db=dbs.events)
            txn.put(*times[0], append=True, db=dbs.by_time)
        else:
            txn.cursor(dbs.events).putmulti(rows, append=True)
            txn.cursor(dbs.by_time).putmulti(times, append=True)
        if len(subjects) == 1:
            txn.put(*subjects[0], dupdata=True, db=dbs.by_subject)
        elif subjects:
            subjects.sort()
            txn.cursor(dbs.by_subject).putmulti(subjects, dupdata=True)
        self._head = Head(seq, h, last_ts)
        self._dirty = True
        return stored

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        return _read_range(self._txn, self._dbs, start, stop)

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        return _by_subject(self._txn, self._dbs, subject, start, stop)

    def put_blob(self, data: bytes) -> list[bytes]:
        return self._put_chunks(blobs.split(data))

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
        return _get_blob(self._txn, self._dbs, digest)

    def has_blob(self, digest: bytes) -> bool:
        return self._txn.get(digest, db=self._dbs.blobs) is not None

    def get_meta(self, key: str) -> bytes | None:
        raw = self._txn.get(key.encode(), db=self._dbs.meta)
        return None if raw is None else bytes(raw)

    def set_meta(self, key: str, value: bytes) -> None:
        if key == _HEAD:
            raise ValueError("the head is kept by the log itself")
        self._txn.put(key.encode(), value, db=self._dbs.meta)
        self._dirty = True

    def _finish(self) -> None:
        self._txn.put(_HEAD.encode(), _pack_head(self._head), db=self._dbs.meta)


class LmdbEventLog:
    """The embedded event log: one LMDB environment in a store directory.

    Args:
        path: the store directory, created if missing.
        clock: wall-clock time in ns; recorded as each event's ``ts``.
        map_size: initial LMDB map size; the map grows on demand.
        durable: fsync every commit (the default); off only for throwaway stores.
        readonly: open without taking the writer role (fails if the store is missing).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock,
        map_size: int = DEFAULT_MAP_SIZE,
        durable: bool = True,
        readonly: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self._clock = clock
        self._bulk: _Bulk | None = None
        try:
            if not readonly:
                os.makedirs(self.path, exist_ok=True)
            self._env = lmdb.open(
                self.path,
                map_size=map_size,
                max_dbs=8,
                sync=durable,
                metasync=durable,
                readonly=readonly,
                # Readers use their own short transactions; never let a reader
                # slot outlive a thread.
                max_readers=256,
            )
        except (OSError, lmdb.Error) as exc:
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else _oserror_text(exc)
            raise StorageError(f"cannot open store {self.path}: {reason}") from exc
        try:
            self._dbs = self._guarded(lambda: _Dbs(self._env))
            self._store_id = self._init_meta(readonly)
        except BaseException:
            self._env.close()
            raise

    # -- setup ---------------------------------------------------------------

    def _init_meta(self, readonly: bool) -> str:
        def check(txn: Any) -> tuple[bytes | None, bytes | None]:
            fmt = txn.get(b"format", db=self._dbs.meta)
            sid = txn.get(b"store_id", db=self._dbs.meta)
            return (None if fmt is None else bytes(fmt)), (None if sid is None else bytes(sid))

        fmt, sid = self._reading(check)
        if fmt is not None:
            found = int(fmt)
            if found > FORMAT_VERSION:
                raise StoreFormatError(self.path, found, FORMAT_VERSION)
            assert sid is not None
            return sid.decode()
        if readonly:
            return ""

        def create(tx: LmdbWriteTxn) -> str:
            existing = tx.get_meta("store_id")
            if existing is not None:  # another process created it first
                return existing.decode()
            sid = secrets.token_hex(16)
            tx.set_meta("format", str(FORMAT_VERSION).encode())
            tx.set_meta("store_id", sid.encode())
            return sid

        return self.write(create)

    @property
    def store_id(self) -> str:
        return self._store_id

    # -- errors and growth ---------------------------------------------------

    def _storage_error(self, exc: lmdb.Error) -> StorageError:
        reason = _oserror_text(exc)
        if isinstance(exc, lmdb.DiskError) or "No space" in reason or "too large" in reason:
            return StorageError(
                f"cannot write to store {self.path}: {reason}; nothing was recorded"
            )
        return StorageError(f"store {self.path}: {reason}")

    def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except lmdb.Error as exc:
            raise self._storage_error(exc) from exc

    def _grow(self) -> None:
        info, psize = self._env.info(), self._env.stat()["psize"]
        # Another process may have filled more than our map holds: grow from that.
        size = max(info["map_size"], (info["last_pgno"] + 1) * psize) * 2
        log.info("store.map_grown", path=self.path, map_size=size)
        self._env.set_mapsize(size)

    def _reading(self, fn: Callable[[Any], T]) -> T:
        if self._bulk is not None and self._bulk.txn is not None:
            # Inside a bulk block the log reads as if the batch had committed.
            return self._guarded(lambda: fn(self._bulk.reading_txn()))  # type: ignore[union-attr]
        for _ in range(8):
            try:
                with self._env.begin(buffers=False) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                # Another process grew the map; adopt its size and retry.
                self._env.set_mapsize(0)
            except lmdb.Error as exc:
                raise self._storage_error(exc) from exc
        raise StorageError(f"store {self.path}: the map kept changing size while reading")

    # -- writing -------------------------------------------------------------

    def write(self, fn: Callable[[LmdbWriteTxn], T]) -> T:
        if self._bulk is not None:
            return self._bulk.write(fn)
        spent: list[object] = []
        for _ in range(32):
            txn = None
            try:
                txn = self._env.begin(write=True)
                tx = LmdbWriteTxn(self, txn)
                tx._spent = spent
                result = fn(tx)
                if tx._dirty:
                    tx._finish()
                    txn.commit()
                else:
                    txn.abort()
                return result
            except lmdb.MapFullError:
                txn.abort()  # type: ignore[union-attr]
                self._grow()
            except lmdb.MapResizedError:
                if txn is not None:
                    txn.abort()
                self._env.set_mapsize(0)
            except lmdb.Error as exc:
                if txn is not None:
                    txn.abort()
                raise self._storage_error(exc) from exc
            except BaseException:
                if txn is not None:
                    txn.abort()
                raise
        raise StorageError(f"cannot write to store {self.path}: the map could not grow enough")

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        return self.write(lambda tx: tx.append(events, session=session, cmd=cmd))

    @contextmanager
    def bulk(self, batch: int = 10_000) -> Iterator[None]:
        if self._bulk is not None:
            yield
            return
        bulk = self._bulk = _Bulk(self, batch)
        try:
            yield
        finally:
            # Every write that returned is kept, even when an exception leaves the
            # block, as it would be without bulk mode; a refused one never joined.
            self._bulk = None
            try:
                bulk.flush()
            finally:
                bulk.close()

    # -- reading -------------------------------------------------------------

    def head(self) -> Head:
        if self._bulk is not None and self._bulk.tx is not None:
            return self._bulk.tx.head
        return self._reading(lambda txn: _unpack_head(txn.get(_HEAD.encode(), db=self._dbs.meta)))

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        if self._bulk is not None and self._bulk.txn is not None:
            # Read the uncommitted batch at once: it may commit, ending its
            # transaction, while the caller is still iterating.
            yield from self._reading(lambda txn: list(_read_range(txn, self._dbs, start, stop)))
            return
        try:
            with self._env.begin(buffers=False) as txn:
                yield from _read_range(txn, self._dbs, start, stop)
        except lmdb.MapResizedError:
            self._env.set_mapsize(0)
            yield from self.read(start, stop)
        except lmdb.Error as exc:
            raise self._storage_error(exc) from exc

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        # Collect under one transaction so a caller may hold the iterator open.
        return iter(
            self._reading(lambda txn: list(_by_subject(txn, self._dbs, subject, start, stop)))
        )

    def subject_seqs(self, subject: str, start: int = 1, stop: int | None = None) -> list[int]:
        """The seqs of the events about ``subject`` (no decoding)."""
        return self._reading(lambda txn: _subject_seqs(txn, self._dbs, subject, start, stop))

    def seq_at(self, ts: int) -> int:
        def find(txn: Any) -> int:
            cur = txn.cursor(self._dbs.by_time)
            if cur.set_range(_U64.pack(ts + 1)):
                if not cur.prev():
                    return 0
            elif not cur.last():
                return 0
            return int(_U64.unpack(cur.value())[0])

        return self._reading(find)

    def get_blob(self, digest: bytes) -> bytes:
        return self._reading(lambda txn: _get_blob(txn, self._dbs, digest))

    def read_blobs(self, digests: Iterable[bytes]) -> bytes:
        wanted = list(digests)
        return self._reading(lambda txn: b"".join(_get_blob(txn, self._dbs, d) for d in wanted))

    def get_meta(self, key: str) -> bytes | None:
        raw = self._reading(lambda txn: txn.get(key.encode(), db=self._dbs.meta))
        return None if raw is None else bytes(raw)

    def set_meta(self, key: str, value: bytes) -> None:
        self.write(lambda tx: tx.set_meta(key, value))

    # -- snapshots -----------------------------------------------------------

    @staticmethod
    def _snap_key(name: str, version: int, seq: int) -> bytes:
        return name.encode() + b"\0" + _SNAP.pack(version, seq)

    def put_snapshot(self, name: str, version: int, seq: int, data: bytes) -> None:
        key = self._snap_key(name, version, seq)

        def put(tx: LmdbWriteTxn) -> None:
            tx._txn.put(key, data, db=self._dbs.snapshots)
            tx._dirty = True

        self.write(put)

    def get_snapshot(self, name: str, version: int, at_or_below: int) -> Snapshot | None:
        low = self._snap_key(name, version, 0)
        high = self._snap_key(name, version, at_or_below)

        def find(txn: Any) -> Snapshot | None:
            cur = txn.cursor(self._dbs.snapshots)
            found = cur.set_range(high)
            if found and cur.key() == high:
                key = high
            else:
                if not (cur.prev() if found else cur.last()):
                    return None
                key = cur.key()
            if not (low <= key <= high):
                return None
            return Snapshot(_SNAP.unpack(key[-12:])[1], cur.value())

        return self._reading(find)

    def snapshot_seqs(self, name: str, version: int) -> list[int]:
        """Seqs at which ``name``/``version`` has a snapshot, ascending."""
        prefix = self._snap_key(name, version, 0)[:-8]

        def scan(txn: Any) -> list[int]:
            cur = txn.cursor(self._dbs.snapshots)
            out = []
            if cur.set_range(prefix):
                for key in cur.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    out.append(_U64.unpack(key[-8:])[0])
            return out

        return self._reading(scan)

    # -- integrity -----------------------------------------------------------

    def verify(self) -> VerifyReport:
        def run(txn: Any) -> VerifyReport:
            head = _unpack_head(txn.get(_HEAD.encode(), db=self._dbs.meta))
            cur = txn.cursor(self._dbs.events)
            items = ((_U64.unpack(k)[0], v) for k, v in cur) if cur.first() else iter(())
            return verify_chain(items, head)

        return self._reading(run)

    def raw_env(self) -> lmdb.Environment:
        """The LMDB environment, for tests and benchmarks that tamper or compare."""
        return self._env

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> LmdbEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Bulk:
    """Many writes in one LMDB transaction, committed every ``batch`` events.

    Each write runs in a nested transaction so a refused command still appends
    nothing while the batch around it goes on.
    """

    def __init__(self, store: LmdbEventLog, batch: int) -> None:
        self.store, self.batch = store, batch
        self.txn: Any = None
        self.tx: LmdbWriteTxn | None = None
        self.start_seq = 0

    def write(self, fn: Callable[[LmdbWriteTxn], T]) -> T:
        store = self.store
        spent: list[object] = []
        for _ in range(32):
            if self.txn is None:
                self._begin()
            assert self.tx is not None
            child = store._env.begin(write=True, parent=self.txn)
            tx = LmdbWriteTxn(store, child, self.tx._head)
            tx._spent = spent
            try:
                result = fn(tx)
                child.commit()
                break
            except lmdb.MapFullError:
                # The batch so far is intact: commit it, grow, run fn again in a new one.
                child.abort()
                self.flush()
                store._grow()
            except lmdb.Error as exc:
                child.abort()
                raise store._storage_error(exc) from exc
            except BaseException:
                child.abort()
                raise
        else:
            raise StorageError(f"cannot write to store {store.path}: the map could not grow enough")
        if tx._dirty:
            self.tx._head = tx._head
            self.tx._dirty = True
        if self.tx._head.seq - self.start_seq >= self.batch:
            self.flush()
        return result

    def _begin(self) -> None:
        env = self.store._env
        for _ in range(8):
            try:
                info, stat = env.info(), env.stat()
                used = (info["last_pgno"] + 1) * stat["psize"]
                if used * 2 > info["map_size"]:
                    self.store._grow()  # grow ahead: fewer batches cut short by a full map
                self.txn = env.begin(write=True)
                break
            except lmdb.MapResizedError:
                env.set_mapsize(0)  # another process grew the map; adopt its size
            except lmdb.Error as exc:
                raise self.store._storage_error(exc) from exc
        else:
            raise StorageError(f"store {self.store.path}: the map kept changing size")
        self.tx = LmdbWriteTxn(self.store, self.txn)
        self.start_seq = self.tx._head.seq

    def reading_txn(self) -> Any:
        """The batch's transaction for reads, its head in meta brought up to date.

        Writes leave the head in meta to the reads that need it: one more put
        per write, in a database no other write touches, costs a page copy each.
        """
        assert self.tx is not None
        if self.tx._dirty:
            self.tx._finish()
        return self.txn

    def flush(self) -> None:
        if self.txn is None:
            return
        assert self.tx is not None
        try:
            if self.tx._dirty:
                self.tx._finish()
            self.txn.commit()
        except lmdb.Error as exc:
            raise self.store._storage_error(exc) from exc
        finally:
            self.txn, self.tx = None, None

    def close(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn, self.tx = None, None


__all__ = ["DEFAULT_MAP_SIZE", "FORMAT_VERSION", "LmdbEventLog", "LmdbWriteTxn", "subject_key"]
