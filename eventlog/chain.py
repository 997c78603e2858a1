"""Checking a log's hash chain: which seq is the first one that is wrong.

Each envelope stores ``prev``, the chain hash of the event before it, and the
store's meta records the head's seq and hash. An edited event breaks the link
to its successor; a dropped one leaves a gap in the dense seqs; a moved one
sits under a key that is not its own seq.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dockstate.eventlog.envelope import GENESIS_HASH, Envelope, chain_hash, decode
from dockstate.eventlog.errors import CorruptStoreError
from dockstate.eventlog.log import Head, VerifyReport

_Item = tuple[int, bytes]


class _Peekable:
    def __init__(self, items: Iterable[_Item]) -> None:
        self._it: Iterator[_Item] = iter(items)
        self._next: _Item | None = None

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> _Item:
        if self._next is not None:
            item, self._next = self._next, None
            return item
        return next(self._it)

    def peek(self) -> _Item | None:
        if self._next is None:
            self._next = next(self._it, None)
        return self._next


def _decodes(raw: bytes) -> Envelope | None:
    try:
        env = decode(raw)
    except CorruptStoreError:
        return None
    # An edit can leave bytes that still decode, with fields of the wrong type.
    if type(env.seq) is not int or type(env.ts) is not int:
        return None
    if not isinstance(env.prev, bytes) or len(env.prev) != len(GENESIS_HASH):
        return None
    return env


def verify_chain(items: Iterable[_Item], head: Head) -> VerifyReport:
    """Verify ``(key seq, stored bytes)`` pairs in key order against the recorded head."""
    stream = _Peekable(items)
    expected, h, last_ts = 1, GENESIS_HASH, 0

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(events=expected - 1, head=h, bad_seq=seq, problem=problem)

    for key, raw in stream:
        if key != expected:
            return bad(expected, f"event {expected} is missing (the next stored event is {key})")
        env = _decodes(raw)
        if env is None:
            return bad(key, "stored bytes cannot be decoded as an event")
        if env.seq != key:
            return bad(key, f"holds event {env.seq}: events were moved or reordered")
        if env.prev != h:
            # Either the previous event was altered (its hash no longer matches the
            # link stored here), or this event's own link was. If this event is
            # consistent with its successor (or the head), the fault is before it.
            own = chain_hash(env.prev, raw)
            nxt = stream.peek()
            if nxt is None:
                intact = own == head.hash and key == head.seq
            else:
                successor = _decodes(nxt[1])
                intact = successor is not None and successor.prev == own
            if intact and key > 1:
                return bad(key - 1, f"content does not match the hash recorded by event {key}")
            return bad(key, "its link to the previous event does not match the chain")
        if env.ts <= last_ts:
            return bad(key, "its time is not after the previous event's: events were reordered")
        last_ts = env.ts
        h = chain_hash(h, raw)
        expected += 1

    last = expected - 1
    if last < head.seq:
        return bad(last + 1, f"event {last + 1} is missing (the head records {head.seq})")
    if last > head.seq:
        return bad(head.seq + 1, f"event {head.seq + 1} is beyond the recorded head {head.seq}")
    if h != head.hash:
        return bad(last, "content does not match the head hash recorded in meta")
    return VerifyReport(events=last, head=h)
