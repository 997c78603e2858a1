"""The `EventLog` interface every backend implements, and its small value types."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol, TypeVar

from dockstate.eventlog.envelope import Command, Envelope, Facts, NewEvent

T = TypeVar("T")

#: A clock gives wall-clock time in ns since the epoch; passed in so that the
#: log itself never reads the machine's clock.
Clock = Callable[[], int]


class Head(NamedTuple):
    """The newest event of a log: its seq, its chain hash and its time (all 0 when empty)."""

    seq: int
    hash: bytes
    ts: int


class VerifyReport(NamedTuple):
    """The outcome of checking a log's hash chain.

    ``bad_seq`` is the first seq found wrong and ``problem`` says what is wrong
    with it; both are None when the log verifies.
    """

    events: int
    head: bytes
    bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


class Snapshot(NamedTuple):
    """A projection's state as of ``seq``, encoded by its owner."""

    seq: int
    data: bytes


class WriteTxn(Protocol):
    """One write transaction: read the head state, validate, append, all or nothing.

    Everything appended becomes visible to other readers at once when the
    transaction commits, and not at all if the function that was given it raises.
    Reads inside the transaction see its own appends.
    """

    @property
    def head(self) -> Head: ...

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]: ...

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]: ...

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]: ...

    def put_blob(self, data: bytes) -> list[bytes]: ...

    def put_blob_stream(self, chunks: Iterable[bytes]) -> tuple[list[bytes], int]:
        """Store a stream of pieces as chunks; return their digests and the total size.

        A write may run its function again when the store grows: a one-shot
        iterator made outside that function cannot be read twice, and such a
        retry fails with `StorageError` instead of storing what was left of it.
        """
        ...

    def get_blob(self, digest: bytes) -> bytes: ...

    def has_blob(self, digest: bytes) -> bool: ...

    def get_meta(self, key: str) -> bytes | None: ...

    def set_meta(self, key: str, value: bytes) -> None: ...


class EventLog(Protocol):
    """An append-only, hash-chained log of events with blobs, indexes and snapshots."""

    @property
    def store_id(self) -> str: ...

    def write(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn`` in one write transaction and commit what it appended.

        ``fn`` may be run again if the store had to grow, so it must not keep
        effects outside the transaction.
        """
        ...

    def append(
        self, events: Sequence[NewEvent], *, session: str = "", cmd: Command | None = None
    ) -> list[Envelope]:
        """Append a batch atomically and return the stored envelopes."""
        ...

    def read(self, start: int = 1, stop: int | None = None) -> Iterator[Envelope]:
        """Events with ``start <= seq <= stop`` in order (to the head when stop is None)."""
        ...

    def read_facts(self, start: int = 1, stop: int | None = None) -> Iterator[Facts]:
        """`read` for folds: `Facts`, with only ``v, seq, ts, type, data`` decoded.

        ``session``, ``cmd``, ``prev`` and ``subjects`` are left undecoded (msgspec.Raw).
        """
        ...

    def by_subject(
        self, subject: str, start: int = 1, stop: int | None = None
    ) -> Iterator[Envelope]:
        """Events about ``subject``, in seq order, within ``start..stop``."""
        ...

    def sessions(self, seqs: Iterable[int]) -> dict[int, str]:
        """The session each of these events was recorded in ("" for none), by seq; a seq
        the log does not hold is left out. Reads only that field of each envelope."""
        ...

    def subjects(self, prefix: str) -> list[str]:
        """The subjects indexed so far that begin with ``prefix``, sorted.

        A subject longer than 400 bytes is indexed by its hash in the LMDB log and is
        not listed there.
        """
        ...

    def head(self) -> Head: ...

    def seq_at(self, ts: int) -> int:
        """The seq of the last event recorded at or before ``ts`` (ns), 0 if none."""
        ...

    def get_blob(self, digest: bytes) -> bytes: ...

    def read_blobs(self, digests: Iterable[bytes]) -> bytes:
        """The content made of these chunks, concatenated."""
        ...

    def get_meta(self, key: str) -> bytes | None: ...

    def put_snapshot(self, name: str, version: int, seq: int, data: bytes) -> None: ...

    def get_snapshot(self, name: str, version: int, at_or_below: int) -> Snapshot | None:
        """The newest snapshot of ``name``/``version`` taken at a seq <= ``at_or_below``."""
        ...

    def bulk(self, batch: int = 10_000) -> AbstractContextManager[None]:
        """Batch many writes per transaction until the block exits (import, replay, bench)."""
        ...

    def verify(self) -> VerifyReport: ...

    def close(self) -> None: ...
