"""Bulk mode of the LMDB log: many writes, one LMDB transaction per batch.

A bulk write reads through the batch's LMDB write transaction, but stages what
it writes in Python (`BulkWriteTxn`). Only when its function returns do its
rows join the batch's pending rows, and those go into the transaction
together, with one sorted ``putmulti`` per database, when the batch commits or
something reads through the log. A write that raises leaves nothing behind:
that is the bulk contract (a refused command appends nothing while the batch
goes on), kept without an LMDB nested transaction per write. A nested
transaction copies every page it touches and merges its dirty-page list into
the parent's when it commits, which made it the largest fixed cost of a bulk
write.

Putting the pending rows in must not leave the batch half-written: once LMDB
reports a full map, a transaction can only be aborted, and every write of the
batch that had returned would go with it. So the rows go in through a nested
transaction (one per batch, not per write); when the map is full, the part of
the batch already in is committed, the map grows, and the rows go into a new
transaction, whose head must still be the batch's. Before that happens, a
batch that is about to need more room than its map has left commits early,
and the next batch grows the map before it begins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import lmdb

from dockstate.eventlog import blobs
from dockstate.eventlog._tables import (
    HEAD_KEY,
    U64,
    LmdbWriteTxn,
    Rows,
    get_blob_in,
    pack_head,
    read_range,
    read_subject,
    stamp,
    subject_key,
)
from dockstate.eventlog.blobs import CHUNK_SIZE, Digested
from dockstate.eventlog.envelope import Command, Envelope, NewEvent, decode
from dockstate.eventlog.errors import StorageError
from dockstate.eventlog.log import Head

if TYPE_CHECKING:
    from dockstate.eventlog._lmdb import LmdbEventLog

T = TypeVar("T")

#: Blob bytes a batch holds in Python before they go into its transaction.
PENDING_BLOB_BYTES: Final = 32 << 20

#: Room a batch keeps in the map, as a multiple of a generous guess of what its
#: pending rows take once stored (B-tree pages copied on write, half-full leaves).
ROOM_FACTOR: Final = 4

#: The least room a new batch begins with; the map grows to give it.
MIN_ROOM: Final = 64 << 20


class _Pending(Rows):
    """What the writes of a batch staged and the batch's transaction does not hold yet."""

    __slots__ = ("blob_bytes", "blobs", "puts", "size")

    def __init__(self) -> None:
        super().__init__()
        #: digest -> stored chunk (codec byte + bytes).
        self.blobs: dict[bytes, bytes] = {}
        #: (database, key) -> value, for meta and snapshots; the last put wins.
        self.puts: dict[tuple[Any, bytes], bytes] = {}
        self.blob_bytes = 0
        #: stored bytes of all of the above, keys included: what the room check counts.
        self.size = 0

    def __bool__(self) -> bool:
        return bool(self.keys or self.blobs or self.puts)

    def put_into(self, txn: Any, store: LmdbEventLog, head: Head) -> None:
        """Write the rows into ``txn`` with the head they lead to."""
        dbs = store._dbs
        if self.keys:
            # Seqs and times only grow, so both go at the end of their trees.
            txn.cursor(dbs.events).putmulti(zip(self.keys, self.raws, strict=True), append=True)
            txn.cursor(dbs.by_time).putmulti(zip(self.ts_keys, self.keys, strict=True), append=True)
        if self.subject_keys:
            # Sorted, each subject's seqs go in along one walk of its leaf. Seqs were
            # staged in order, so a stable sort on the subject alone sorts the pairs
            # (comparing keys only is cheaper than comparing tuples).
            keys, seqs = self.subject_keys, self.subject_seqs
            order = sorted(range(len(keys)), key=keys.__getitem__)
            subjects = zip(map(keys.__getitem__, order), map(seqs.__getitem__, order), strict=True)
            txn.cursor(dbs.by_subject).putmulti(subjects, dupdata=True)
        if self.blobs:
            txn.cursor(dbs.blobs).putmulti(sorted(self.blobs.items()), overwrite=False)
        for (db, key), value in self.puts.items():
            txn.put(key, value, db=db)
        txn.put(HEAD_KEY.encode(), pack_head(head), db=dbs.meta)


class BulkWriteTxn(LmdbWriteTxn):
    """One write of a bulk batch: reads see the batch so far, writes are staged.

    It stages straight into the batch's pending rows and remembers where it
    began, so that `undo` can take back a write whose function raised.
    """

    def __init__(self, bulk: Bulk) -> None:
        super().__init__(bulk.store, bulk.txn, bulk.head)
        self._bulk = bulk
        pending = self._pending = bulk.pending
        # Where this write began; most writes stage rows only, so the two lists
        # for blobs and puts are made when first needed.
        self._rows, self._subjects = len(pending.keys), len(pending.subject_keys)
        self._blob_bytes, self._size = pending.blob_bytes, pending.size
        self._new_blobs: list[bytes] | None = None
        #: (slot, value it held before, None if none) for each meta or snapshot put.
        self._replaced: list[tuple[tuple[Any, bytes], bytes | None]] | None = None

    def undo(self) -> None:
        """Take this write's staged rows out of the batch again."""
        pending = self._pending
        rows, subjects = self._rows, self._subjects
        pending.blob_bytes, pending.size = self._blob_bytes, self._size
        del pending.keys[rows:], pending.raws[rows:], pending.ts_keys[rows:]
        del pending.subject_keys[subjects:], pending.subject_seqs[subjects:]
        for digest in self._new_blobs or ():
            del pending.blobs[digest]
        for slot, old in reversed(self._replaced or ()):
            if old is None:
                del pending.puts[slot]
            else:
                pending.puts[slot] = old

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        if not events:
            return []
        pending = self._pending
        self._head, envs, size = stamp(
            events, self._head, self._store._clock(), session=session, cmd=cmd, out=pending
        )
        # Beside the envelope: the time row and node headers of each row.
        pending.size += size + 64 * len(envs)
        self._dirty = True
        return envs

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        base = self._bulk.base_seq
        if start <= base:
            low_stop = base if stop is None else min(stop, base)
            yield from read_range(self._txn, self._dbs, start, low_stop)
        if stop is not None and stop <= base:
            return
        # Staged rows are kept as bytes (see Rows); reads of them are rare.
        first = max(start - base - 1, 0)
        last = None if stop is None else stop - base
        for raw in self._pending.raws[first:last]:
            yield decode(raw)

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        base = self._bulk.base_seq
        if start <= base:
            low_stop = base if stop is None else min(stop, base)
            yield from read_subject(self._txn, self._dbs, subject, start, low_stop)
        if (stop is not None and stop <= base) or not subject:
            return
        pending, wanted = self._pending, subject_key(subject)
        low, high = U64.pack(max(start, 1)), None if stop is None else U64.pack(stop)
        for key, seq in zip(pending.subject_keys, pending.subject_seqs, strict=True):
            if key == wanted and seq >= low and (high is None or seq <= high):
                yield decode(pending.raws[U64.unpack(seq)[0] - base - 1])

    def put_blob(self, data: bytes) -> list[bytes]:
        # A replay writing a chunk it wrote before: nothing to hash, look up or stage.
        if (
            type(data) is Digested
            and 0 < len(data) <= CHUNK_SIZE
            and data.sha256 in self._bulk.stored
        ):
            return [data.sha256]
        return self._put_chunks(blobs.chunks_of(data))

    def _put_chunks(self, chunks: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
        pending = self._pending
        staged, stored = pending.blobs, self._bulk.stored
        digests = []
        for digest, chunk in chunks:
            digests.append(digest)
            if digest in stored or digest in staged:
                continue
            if self._txn.get(digest, db=self._dbs.blobs) is not None:
                stored.add(digest)
                continue
            staged[digest] = blobs.RAW + chunk
            if self._new_blobs is None:
                self._new_blobs = []
            self._new_blobs.append(digest)
            pending.blob_bytes += len(chunk)
            pending.size += len(chunk) + 64
            self.new_blob_bytes += len(chunk)
            self._dirty = True
        return digests

    def get_blob(self, digest: bytes) -> bytes:
        found = self._pending.blobs.get(digest)
        return get_blob_in(self._txn, self._dbs, digest) if found is None else found[1:]

    def has_blob(self, digest: bytes) -> bool:
        return digest in self._pending.blobs or super().has_blob(digest)

    def get_meta(self, key: str) -> bytes | None:
        found = self._pending.puts.get((self._dbs.meta, key.encode()))
        return super().get_meta(key) if found is None else found

    def _put(self, db: Any, key: bytes, value: bytes) -> None:
        puts = self._pending.puts
        if self._replaced is None:
            self._replaced = []
        self._replaced.append(((db, key), puts.get((db, key))))
        puts[(db, key)] = value
        self._pending.size += len(key) + len(value) + 64
        self._dirty = True


class Bulk:
    """Many writes in one LMDB transaction, committed every ``batch`` events."""

    def __init__(self, store: LmdbEventLog, batch: int) -> None:
        self.store, self.batch = store, batch
        self.txn: Any = None
        #: the head after every write that returned, staged or not.
        self.head = Head(0, b"", 0)
        #: the head of what is in the transaction (a batch begins with the committed head).
        self.base = self.head
        self.pending = _Pending()
        self.start_seq = 0
        self.room = 0
        #: digests of blobs found in the batch's transaction: blobs are never deleted, so a
        #: chunk written again and again (a replay) is looked up in LMDB once per batch.
        self.stored: set[bytes] = set()

    @property
    def base_seq(self) -> int:
        return self.base.seq

    @property
    def active(self) -> bool:
        return self.txn is not None

    def write(self, fn: Callable[[LmdbWriteTxn], T]) -> T:
        if self.txn is None:
            self._begin()
        tx = BulkWriteTxn(self)
        try:
            result = fn(tx)
        except BaseException as exc:
            tx.undo()
            if isinstance(exc, lmdb.Error):
                raise self.store._storage_error(exc) from exc
            raise
        if tx._dirty:
            self.head = tx._head
            if self.head.seq - self.start_seq >= self.batch or self._short_of_room():
                self.flush()
            elif self.pending.blob_bytes >= PENDING_BLOB_BYTES:
                self._put_pending()  # LMDB spills big batches to disk; Python would not
        return result

    def _short_of_room(self) -> bool:
        return self.pending.size * ROOM_FACTOR > self.room

    def _begin(self) -> None:
        store = self.store
        env = store._env
        for _ in range(8):
            try:
                info, psize = env.info(), env.stat()["psize"]
                used = (info["last_pgno"] + 1) * psize
                room = info["map_size"] - used
                if used > room or room < MIN_ROOM:
                    # Grow ahead: a batch should never meet a full map.
                    store._grow(at_least=max(2 * used, used + MIN_ROOM))
                    continue
                self.txn = env.begin(write=True)
                break
            except lmdb.MapResizedError:
                env.set_mapsize(0)  # another process grew the map; adopt its size
            except lmdb.Error as exc:
                raise store._storage_error(exc) from exc
        else:
            raise StorageError(f"store {store.path}: the map kept changing size")
        self.room = room
        self.stored = set()
        self.head = self.base = LmdbWriteTxn(store, self.txn).head
        self.start_seq = self.head.seq

    def _put_pending(self) -> None:
        """Put the pending rows into the batch's transaction (not committed yet)."""
        if not self.pending:
            return
        store = self.store
        for _ in range(32):
            child = store._env.begin(write=True, parent=self.txn)
            try:
                self.pending.put_into(child, store, self.head)
                child.commit()
                break
            except lmdb.MapFullError:
                child.abort()
                self._regrow()
            except lmdb.Error as exc:
                child.abort()
                raise store._storage_error(exc) from exc
            except BaseException:
                child.abort()
                raise
        else:
            raise StorageError(f"cannot write to store {store.path}: the map could not grow enough")
        self.room -= self.pending.size * ROOM_FACTOR
        self.base = self.head
        self.pending = _Pending()

    def _regrow(self) -> None:
        """Commit what is in, grow the map, and go on in a new transaction at the same head."""
        store, expected = self.store, self.base
        try:
            self.txn.commit()
        except lmdb.Error as exc:
            self.txn = None
            raise store._storage_error(exc) from exc
        self.txn = None
        store._grow()
        staged = self.head
        self._begin()
        self.head = staged
        if self.base != expected:
            lost = staged.seq - expected.seq
            self.pending = _Pending()
            self.head = self.base
            raise StorageError(
                f"cannot write to store {store.path}: the store had to grow while another "
                f"process wrote to it; the last {lost} events of this bulk batch were not "
                "recorded"
            )

    def reading_txn(self) -> Any:
        """The batch's transaction for reads, with every write so far in it."""
        self._put_pending()
        return self.txn

    def flush(self) -> None:
        if self.txn is None:
            return
        try:
            self._put_pending()
            txn, self.txn = self.txn, None
            txn.commit()
        except lmdb.Error as exc:
            raise self.store._storage_error(exc) from exc
        finally:
            self.close()

    def close(self) -> None:
        if self.txn is not None:
            self.txn.abort()
            self.txn = None
        self.pending = _Pending()
