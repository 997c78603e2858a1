"""Verification of the hash chain: a tampered store is caught and the first bad seq is named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.eventlog import (
    GENESIS_HASH,
    InMemoryEventLog,
    LmdbEventLog,
    NewEvent,
    VerifyReport,
    chain_hash,
    encode,
)
from dockstate.eventlog.chain import verify_chain
from dockstate.eventlog.log import Head
from tests.conftest import FakeClock

N = 9  # events in every tampered log


def fill(log: InMemoryEventLog | LmdbEventLog) -> None:
    for i in range(N):
        log.append(
            [NewEvent("FileWritten", {"i": i, "path": f"/data/{i}", "blob": bytes(i)}, ("c",))]
        )


class Tamperer:
    """Raw access to one backend's stored events and head, bypassing the log's API."""

    def __init__(self, log: InMemoryEventLog | LmdbEventLog) -> None:
        self.log = log
        if isinstance(log, LmdbEventLog):
            self.env = log.raw_env()
            self.events = self.env.open_db(b"events")
            self.meta = self.env.open_db(b"meta")

    def get(self, seq: int) -> bytes:
        if isinstance(self.log, InMemoryEventLog):
            return self.log._events[seq - 1]
        with self.env.begin() as txn:
            return bytes(txn.get(seq.to_bytes(8, "big"), db=self.events))

    def put(self, seq: int, raw: bytes) -> None:
        if isinstance(self.log, InMemoryEventLog):
            self.log.tamper(seq, raw)
            return
        with self.env.begin(write=True) as txn:
            txn.put(seq.to_bytes(8, "big"), raw, db=self.events)

    def drop(self, seq: int) -> None:
        if isinstance(self.log, InMemoryEventLog):
            self.log.tamper(seq, None)
            return
        with self.env.begin(write=True) as txn:
            assert txn.delete(seq.to_bytes(8, "big"), db=self.events)

    def flip(self, seq: int, offset: int, mask: int = 0xFF) -> bytes:
        """XOR one byte of event ``seq`` (offset from the end when negative); return the original."""
        raw = self.get(seq)
        edited = bytearray(raw)
        edited[offset] ^= mask
        self.put(seq, bytes(edited))
        return raw


@pytest.fixture(params=["memory", "lmdb"])
def tampered(request: pytest.FixtureRequest, tmp_path: Path):
    """A log of `N` events on each backend, with raw access to its stored bytes."""
    log: InMemoryEventLog | LmdbEventLog
    if request.param == "memory":
        log = InMemoryEventLog(clock=FakeClock())
    else:
        log = LmdbEventLog(tmp_path / "store", clock=FakeClock(), durable=False)
    fill(log)
    assert log.verify().ok
    yield Tamperer(log)
    log.close()


def bad(report: VerifyReport) -> tuple[int | None, str]:
    assert not report.ok
    return report.bad_seq, report.problem or ""


# Byte offsets inside an envelope: 0 is the array header, 1 the version, 2.. the
# seq and ts, then type, session, cmd, prev (34 bytes), data and subjects.
@pytest.mark.parametrize("offset", [0, 1, 2, 5, 12, 20, 30, 40, 60, -10, -5, -1])
@pytest.mark.parametrize("seq", [1, 5, N])
def test_an_edited_event_is_named_by_its_own_seq(tampered: Tamperer, seq: int, offset: int):
    """Flipping any byte of event n, first, middle or last, makes verify name exactly n."""
    tampered.flip(seq, offset)

    assert bad(tampered.log.verify())[0] == seq


def test_an_edited_event_in_the_middle_is_named_with_what_is_wrong(tampered: Tamperer):
    """Editing the payload of a middle event is blamed on it, not on its successor."""
    raw = tampered.get(5)
    tampered.flip(5, raw.index(b"/data/4") + 1, 0x01)  # seq 5 is i=4

    seq, problem = bad(tampered.log.verify())
    assert seq == 5
    assert "does not match the hash recorded by event 6" in problem


def test_a_dropped_event_in_the_middle_is_named_as_missing(tampered: Tamperer):
    """Deleting a middle event is reported as that seq missing."""
    tampered.drop(4)

    seq, problem = bad(tampered.log.verify())
    assert seq == 4
    assert "event 4 is missing" in problem


def test_a_dropped_first_event_is_named_as_missing(tampered: Tamperer):
    """Deleting event 1 is reported as event 1 missing."""
    tampered.drop(1)

    seq, problem = bad(tampered.log.verify())
    assert seq == 1
    assert "missing" in problem


def test_a_dropped_last_event_is_named_as_missing(tampered: Tamperer):
    """Deleting the newest event is caught by the head recorded in meta."""
    tampered.drop(N)

    seq, problem = bad(tampered.log.verify())
    assert seq == N
    assert f"event {N} is missing (the head records {N})" in problem


@pytest.mark.parametrize(("a", "b"), [(3, 4), (2, 7), (1, N)])
def test_two_swapped_events_are_named_by_the_first_of_them(tampered: Tamperer, a: int, b: int):
    """Exchanging the stored bytes of two events names the lower seq as moved."""
    raw_a, raw_b = tampered.get(a), tampered.get(b)
    tampered.put(a, raw_b)
    tampered.put(b, raw_a)

    seq, problem = bad(tampered.log.verify())
    assert seq == a
    assert f"holds event {b}" in problem


def test_an_event_replaced_by_a_copy_of_another_is_named(tampered: Tamperer):
    """Overwriting event n with event m's bytes names n."""
    tampered.put(6, tampered.get(2))

    assert bad(tampered.log.verify())[0] == 6


def test_an_event_that_no_longer_decodes_is_named(tampered: Tamperer):
    """Truncated bytes that are no envelope any more are blamed on their seq."""
    tampered.put(3, tampered.get(3)[:10])

    seq, problem = bad(tampered.log.verify())
    assert seq == 3
    assert "cannot be decoded" in problem


def test_a_consistently_rewritten_event_is_caught_by_its_successor(tampered: Tamperer):
    """An event rewritten with a valid envelope and correct link still breaks the next link."""
    from dockstate.eventlog import decode

    env = decode(tampered.get(5))
    forged = env._replace(data={**env.data, "path": "/etc/shadow"})
    tampered.put(5, encode(forged))

    seq, problem = bad(tampered.log.verify())
    assert seq == 5
    assert "event 6" in problem


@pytest.mark.parametrize(
    "field",
    [
        {"prev": "a link that is text, not bytes"},
        {"prev": 12345},
        {"prev": b"short"},
        {"ts": 1.5e18},
        {"ts": "yesterday"},
        {"seq": True},
    ],
)
def test_an_event_decoding_with_fields_of_the_wrong_type_is_named(
    tampered: Tamperer, field: dict[str, object]
):
    """Bytes that decode to an envelope with a mistyped seq, ts or link are blamed, not crashed on."""
    from dockstate.eventlog import decode

    tampered.put(5, encode(decode(tampered.get(5))._replace(**field)))

    seq, problem = bad(tampered.log.verify())
    assert seq == 5
    assert "cannot be decoded" in problem


def test_an_edited_head_hash_in_meta_is_reported(tmp_path: Path):
    """Changing the head hash kept in meta makes verify fail at the head."""
    with LmdbEventLog(tmp_path / "store", clock=FakeClock()) as log:
        fill(log)
        env = log.raw_env()
        meta = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            head = bytearray(txn.get(b"head", db=meta))
            head[8] ^= 0x01  # the first byte of the hash, after the u64 seq
            txn.put(b"head", bytes(head), db=meta)

        seq, problem = bad(log.verify())
        assert seq == N
        assert "head hash" in problem


def test_a_head_seq_behind_the_events_is_reported(tmp_path: Path):
    """A head in meta that records fewer events than are stored names the first extra one."""
    with LmdbEventLog(tmp_path / "store", clock=FakeClock()) as log:
        fill(log)
        env = log.raw_env()
        meta = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            head = txn.get(b"head", db=meta)
            txn.put(b"head", (N - 2).to_bytes(8, "big") + head[8:], db=meta)

        seq, problem = bad(log.verify())
        assert seq == N - 1
        assert "beyond the recorded head" in problem


def test_any_single_byte_edit_is_named_by_the_edited_seq(tmp_path: Path):
    """Whatever byte of whichever event is changed, verify names that event and never crashes."""
    log = LmdbEventLog(tmp_path / "store", clock=FakeClock(), durable=False)
    fill(log)
    memory = InMemoryEventLog(clock=FakeClock())
    fill(memory)
    tamperers = [Tamperer(log), Tamperer(memory)]

    @given(
        seq=st.integers(1, N),
        position=st.floats(0, 1, exclude_max=True),
        mask=st.integers(1, 255),
    )
    def check(seq: int, position: float, mask: int) -> None:
        for tamperer in tamperers:
            offset = int(position * len(tamperer.get(seq)))
            original = tamperer.flip(seq, offset, mask)
            try:
                report = tamperer.log.verify()
            finally:
                tamperer.put(seq, original)
            assert report.bad_seq == seq, report

    try:
        check()
    finally:
        log.close()


class TestVerifyChain:
    """`verify_chain` on hand-made inputs, as both backends feed it."""

    @staticmethod
    def chain(n: int) -> tuple[list[tuple[int, bytes]], Head]:
        memory = InMemoryEventLog(clock=FakeClock())
        for i in range(n):
            memory.append([NewEvent("E", {"i": i})])
        items = [(e.seq, encode(e)) for e in memory.read()]
        return items, memory.head()

    def test_no_items_and_an_empty_head_verify(self):
        """An empty store with an empty head is fine."""
        assert verify_chain([], Head(0, GENESIS_HASH, 0)) == VerifyReport(0, GENESIS_HASH)

    def test_events_beyond_the_head_are_named(self):
        """A head of 0 over stored events names event 1 as beyond it."""
        items, _ = self.chain(2)

        report = verify_chain(items, Head(0, GENESIS_HASH, 0))

        assert report.bad_seq == 1
        assert "beyond the recorded head 0" in (report.problem or "")

    def test_a_head_hash_equal_to_the_chain_verifies(self):
        """A chain ending on the recorded hash verifies with its event count."""
        items, head = self.chain(3)

        report = verify_chain(items, head)

        assert report.ok
        assert report.events == 3
        h = GENESIS_HASH
        for _, raw in items:
            h = chain_hash(h, raw)
        assert report.head == h == head.hash

    @pytest.mark.parametrize(
        "edit",
        [
            lambda raw: raw[:-1],
            lambda raw: raw + b"\x00",
            lambda raw: b"\x93\x01\x02\x03",
            lambda raw: b"\xc1",
            lambda raw: b"",
        ],
    )
    def test_garbage_in_place_of_an_event_is_named(self, edit: Callable[[bytes], bytes]):
        """Bytes that are not a whole envelope are blamed on the key they are stored under."""
        items, head = self.chain(4)
        items[1] = (2, edit(items[1][1]))

        assert verify_chain(items, head).bad_seq == 2
