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

import functools
import itertools
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import lmdb
import structlog

from dockstate.eventlog._bulk import Bulk
from dockstate.eventlog._tables import (
    HEAD_KEY,
    SNAP,
    U64,
    Dbs,
    LmdbWriteTxn,
    get_blob_in,
    read_range,
    read_subject,
    subject_key,
    subject_seqs,
    unpack_head,
    values_from,
)
from dockstate.eventlog.chain import verify_chain
from dockstate.eventlog.envelope import (
    Command,
    Envelope,
    Facts,
    NewEvent,
    decode,
    decode_facts,
    decode_facts_batch,
    session_of,
)
from dockstate.eventlog.errors import StorageError, StoreFormatError
from dockstate.eventlog.log import Clock, Head, Snapshot, VerifyReport

T = TypeVar("T")

#: The on-disk format this code writes. Bump it on any incompatible change.
FORMAT_VERSION: Final = 1

#: Events a fold's read takes from LMDB, and decodes, at a time (see `_fact_batches`):
#: few enough that a batch's decoded events are still in the CPU's caches when the fold
#: gets to them (state_at per-seq minimum, mean of 4-5 runs each: 512 35.5 ms, 1,024
#: 38.2, 4,096 41.7), many enough that the per-batch costs do not show.
FACTS_BATCH: Final = 512

#: Start with a large map: it is sparse on Linux, so it costs nothing until
#: used, and growing it needs every transaction of the process closed.
DEFAULT_MAP_SIZE: Final = 1 << 36

log = structlog.get_logger(__name__)


def _oserror_text(exc: lmdb.Error) -> str:
    # py-lmdb messages look like "path: No space left on device"; keep the reason.
    text = str(exc)
    return text.rsplit(": ", 1)[-1] if ": " in text else text


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
        self._bulk: Bulk | None = None
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
            self._dbs = self._guarded(lambda: Dbs(self._env))
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

    def _grow(self, at_least: int = 0) -> None:
        info, psize = self._env.info(), self._env.stat()["psize"]
        # Another process may have filled more than our map holds: grow from that.
        size = max(max(info["map_size"], (info["last_pgno"] + 1) * psize) * 2, at_least)
        log.info("store.map_grown", path=self.path, map_size=size)
        self._env.set_mapsize(size)

    def _reading(self, fn: Callable[[Any], T]) -> T:
        bulk = self._bulk
        if bulk is not None and bulk.active:
            # Inside a bulk block the log reads as if the batch had committed.
            return self._guarded(lambda: fn(bulk.reading_txn()))
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
        bulk = self._bulk = Bulk(self, batch)
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
        if self._bulk is not None and self._bulk.active:
            return self._bulk.head
        return self._reading(lambda txn: unpack_head(txn.get(HEAD_KEY.encode(), db=self._dbs.meta)))

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        return self._read(start, stop, decode)

    def read_facts(self, start: int = 1, stop: int | None = None) -> Iterator[Facts]:
        if self._bulk is not None and self._bulk.active:
            return self._read(start, stop, decode_facts)
        # chained in C: the generator resumes once a batch, not once an event
        return itertools.chain.from_iterable(self._fact_batches(max(start, 1), stop))

    def _fact_batches(self, start: int, stop: int | None) -> Iterator[list[Facts]]:
        """Folds read in batches: each batch's values taken from LMDB, then decoded in
        one C-level pass (`decode_facts_batch`), in memory bounded by `FACTS_BATCH`.

        Seqs are dense from 1, so a range is a count of values from ``start``. Each
        batch is read in a transaction of its own: events never change once written.
        """
        at = start
        while stop is None or at <= stop:
            want = FACTS_BATCH if stop is None else min(FACTS_BATCH, stop - at + 1)
            raws = self._reading(
                functools.partial(values_from, dbs=self._dbs, start=at, count=want)
            )
            yield decode_facts_batch(raws)
            if len(raws) < want:
                return
            at += want

    def _read(
        self, start: int, stop: int | None, decode: Callable[[bytes], Any]
    ) -> Iterator[Any]:  # Envelope or Facts, as ``decode`` makes them
        if self._bulk is not None and self._bulk.active:
            # Read the uncommitted batch at once: it may commit, ending its
            # transaction, while the caller is still iterating.
            yield from self._reading(
                lambda txn: list(read_range(txn, self._dbs, start, stop, decode))
            )
            return
        try:
            with self._env.begin(buffers=False) as txn:
                yield from read_range(txn, self._dbs, start, stop, decode)
        except lmdb.MapResizedError:
            self._env.set_mapsize(0)
            yield from self._read(start, stop, decode)
        except lmdb.Error as exc:
            raise self._storage_error(exc) from exc

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        # Collect under one transaction so a caller may hold the iterator open.
        return iter(
            self._reading(lambda txn: list(read_subject(txn, self._dbs, subject, start, stop)))
        )

    def subjects(self, prefix: str) -> list[str]:
        raw = prefix.encode()

        def scan(txn: Any) -> list[str]:
            cur = txn.cursor(self._dbs.by_subject)
            out: list[str] = []
            found = cur.set_range(raw)
            while found:
                key = cur.key()
                if not key.startswith(raw):
                    break
                if not key.startswith(b"#"):  # a long subject, indexed by its hash
                    out.append(bytes(key).decode())
                found = cur.next_nodup()
            return out

        return self._reading(scan)

    def subject_seqs(self, subject: str, start: int = 1, stop: int | None = None) -> list[int]:
        """The seqs of the events about ``subject`` (no decoding)."""
        return self._reading(lambda txn: subject_seqs(txn, self._dbs, subject, start, stop))

    def seq_at(self, ts: int) -> int:
        def find(txn: Any) -> int:
            cur = txn.cursor(self._dbs.by_time)
            if cur.set_range(U64.pack(ts + 1)):
                if not cur.prev():
                    return 0
            elif not cur.last():
                return 0
            return int(U64.unpack(cur.value())[0])

        return self._reading(find)

    def sessions(self, seqs: Iterable[int]) -> dict[int, str]:
        wanted = sorted({seq for seq in seqs if seq > 0})  # in key order: neighbours share pages
        events = self._dbs.events

        def find(txn: Any) -> dict[int, str]:
            out = {}
            for seq in wanted:
                raw = txn.get(U64.pack(seq), db=events)
                if raw is not None:
                    out[seq] = session_of(raw)
            return out

        return self._reading(find)

    def get_blob(self, digest: bytes) -> bytes:
        return self._reading(lambda txn: get_blob_in(txn, self._dbs, digest))

    def read_blobs(self, digests: Iterable[bytes]) -> bytes:
        wanted = list(digests)
        return self._reading(lambda txn: b"".join(get_blob_in(txn, self._dbs, d) for d in wanted))

    def get_meta(self, key: str) -> bytes | None:
        raw = self._reading(lambda txn: txn.get(key.encode(), db=self._dbs.meta))
        return None if raw is None else bytes(raw)

    def set_meta(self, key: str, value: bytes) -> None:
        self.write(lambda tx: tx.set_meta(key, value))

    # -- snapshots -----------------------------------------------------------

    @staticmethod
    def _snap_key(name: str, version: int, seq: int) -> bytes:
        return name.encode() + b"\0" + SNAP.pack(version, seq)

    def put_snapshot(self, name: str, version: int, seq: int, data: bytes) -> None:
        key = self._snap_key(name, version, seq)

        def put(tx: LmdbWriteTxn) -> None:
            tx._put(self._dbs.snapshots, key, data)

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
            return Snapshot(SNAP.unpack(key[-12:])[1], cur.value())

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
                    out.append(U64.unpack(key[-8:])[0])
            return out

        return self._reading(scan)

    # -- integrity -----------------------------------------------------------

    def verify(self) -> VerifyReport:
        def run(txn: Any) -> VerifyReport:
            head = unpack_head(txn.get(HEAD_KEY.encode(), db=self._dbs.meta))
            cur = txn.cursor(self._dbs.events)
            items = ((U64.unpack(k)[0], v) for k, v in cur) if cur.first() else iter(())
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


__all__ = ["DEFAULT_MAP_SIZE", "FORMAT_VERSION", "LmdbEventLog", "LmdbWriteTxn", "subject_key"]
