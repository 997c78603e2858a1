"""The `EventLog` contract, run on `InMemoryEventLog` and on `LmdbEventLog` in ``tmp_path``."""

from __future__ import annotations

import hashlib
import itertools
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.eventlog import (
    CHUNK_SIZE,
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    CorruptStoreError,
    Envelope,
    EventLog,
    Facts,
    InMemoryEventLog,
    InvalidParameterError,
    LmdbEventLog,
    NewEvent,
    _lmdb,
    chain_hash,
    decode,
    encode,
)
from tests.conftest import EPOCH, FakeClock


class Boom(Exception):
    """Raised by test code inside a write to make it fail."""


def events(n: int, subject: str = "c1", **data: Any) -> list[NewEvent]:
    return [NewEvent("Touched", {"i": i, **data}, (subject,)) for i in range(n)]


def seqs(envs: Iterator[Envelope] | list[Envelope]) -> list[int]:
    return [e.seq for e in envs]


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes repeating every 251 bytes: a prime period, so no two chunks are equal."""
    block = bytes((i * 7 + seed) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


class TestAppend:
    def test_a_batch_gets_dense_seqs_from_one_and_comes_back_as_stored(self, log: EventLog):
        """Appending assigns seqs 1, 2, 3 … and returns the envelopes exactly as stored."""
        first = log.append(events(3))
        second = log.append(events(2, subject="c2"))

        assert seqs(first) == [1, 2, 3]
        assert seqs(second) == [4, 5]
        stored = list(log.read())
        assert [encode(e) for e in stored] == [encode(e) for e in first + second]
        assert [e.v for e in stored] == [ENVELOPE_VERSION] * 5
        assert [e.type for e in stored] == ["Touched"] * 5
        assert [e.data["i"] for e in stored] == [0, 1, 2, 0, 1]
        assert [e.subjects for e in stored] == [("c1",)] * 3 + [("c2",)] * 2

    def test_each_envelope_links_to_the_chain_hash_of_the_one_before(self, log: EventLog):
        """``prev`` of event 1 is the genesis hash and of event n is h(n-1); the head holds h(last)."""
        stored = log.append(events(2)) + log.append(events(3))

        h = GENESIS_HASH
        for env in stored:
            assert env.prev == h
            h = chain_hash(h, encode(env))
        assert log.head().hash == h
        assert log.head().seq == 5
        assert log.head().ts == stored[-1].ts

    def test_session_and_command_are_recorded_on_every_event_of_the_batch(self, log: EventLog):
        """The session and the producing command are stored with each event of a batch."""
        cmd = Command("create", {"image": "alpine", "ports": [80, 443]})
        log.append(events(2), session="s-1", cmd=cmd)
        log.append(events(1))

        one, two, three = log.read()
        assert one.session == two.session == "s-1"
        assert one.command == two.command
        assert one.command == Command("create", {"image": "alpine", "ports": (80, 443)})
        assert three.session == ""
        assert three.cmd is None
        assert three.command is None

    def test_an_empty_batch_appends_nothing(self, log: EventLog):
        """Appending no events returns nothing and leaves the head alone."""
        log.append(events(1))
        head = log.head()

        assert log.append([]) == []
        assert log.head() == head

    def test_ts_comes_from_the_clock_and_stays_strictly_increasing_within_a_batch(
        self, log: EventLog, clock: FakeClock
    ):
        """A batch is stamped with one clock reading, each later event 1 ns after the previous."""
        clock.set(EPOCH + 5_000)
        stored = log.append(events(3))

        assert [e.ts for e in stored] == [EPOCH + 5_000, EPOCH + 5_001, EPOCH + 5_002]

    def test_ts_stays_strictly_increasing_when_the_clock_goes_backwards(
        self, log: EventLog, clock: FakeClock
    ):
        """A clock that jumps back or stands still never makes ``ts`` go back or repeat."""
        first = log.append(events(2))
        clock.set(EPOCH - 10**12)
        clock.step = 0
        later = log.append(events(2)) + log.append(events(1))

        all_ts = [e.ts for e in first + later]
        assert all(a < b for a, b in itertools.pairwise(all_ts))
        assert later[0].ts == first[-1].ts + 1
        assert [e.ts for e in log.read()] == all_ts

    def test_an_explicit_ts_is_kept_when_later_than_the_head_and_bumped_otherwise(
        self, log: EventLog
    ):
        """Imported times are kept as given, except where they would not be after the head."""
        stored = log.append(
            [
                NewEvent("Imported", {}, ts=EPOCH + 10**9),
                NewEvent("Imported", {}, ts=EPOCH + 2 * 10**9),
                NewEvent("Imported", {}, ts=EPOCH + 10**9),  # earlier than its predecessor
            ]
        )

        assert [e.ts for e in stored] == [EPOCH + 10**9, EPOCH + 2 * 10**9, EPOCH + 2 * 10**9 + 1]

    def test_an_empty_subject_is_refused_and_nothing_is_appended(self, log: EventLog):
        """An event naming the empty subject is an invalid parameter on every backend."""
        log.append(events(1))
        head = log.head()

        with pytest.raises(InvalidParameterError, match="subject"):
            log.append([NewEvent("Touched", {}, ("c1",)), NewEvent("Touched", {}, ("",))])
        assert log.head() == head
        assert seqs(log.by_subject("c1")) == [1]


class TestRead:
    def test_a_seq_range_is_inclusive_at_both_ends(self, log: EventLog):
        """``read(start, stop)`` yields exactly the events with start <= seq <= stop."""
        log.append(events(10))

        assert seqs(log.read(3, 6)) == [3, 4, 5, 6]
        assert seqs(log.read(4, 4)) == [4]
        assert seqs(log.read(8)) == [8, 9, 10]
        assert seqs(log.read()) == list(range(1, 11))
        assert seqs(log.read(0, 2)) == [1, 2]

    def test_read_facts_gives_what_a_fold_reads_and_leaves_the_rest_undecoded(self, log: EventLog):
        """``read_facts`` has each event's v, seq, ts, type and data; the rest stays raw."""
        log.append(events(3, subject="c7", size=5), session="s1", cmd=Command("write", {"a": 1}))
        with log.bulk(batch=100):
            log.append(events(2, subject="c8"))
            facts = list(log.read_facts(2))  # inside a bulk block, staged rows too
        full = list(log.read(2))

        assert [(f.v, f.seq, f.ts, f.type, f.data) for f in facts] == [
            (e.v, e.seq, e.ts, e.type, e.data) for e in full
        ]
        assert all(isinstance(f, Facts) for f in facts)
        assert {type(field) for f in facts for field in (f.session, f.cmd, f.prev, f.subjects)} == {
            msgspec.Raw
        }
        assert seqs(log.read_facts(3, 4)) == [3, 4]
        assert list(log.read_facts(6)) == []

    def test_read_facts_in_batches_gives_every_range_whole(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        """An LMDB store reads facts a batch at a time (decoded in one pass when every
        envelope has the common shape, one by one when one has not): ranges that start,
        end and straddle anywhere across the batches give the same events as `read`."""
        monkeypatch.setattr(_lmdb, "FACTS_BATCH", 3)
        log = LmdbEventLog(tmp_path / "store", clock=itertools.count(1).__next__)
        log.append(events(5))
        # data msgspec's declared type does not cover (arrays of arrays), between the others
        log.append([NewEvent("Registered", {"config": (("Cmd", ("sh",)),)}, ("i1",))])
        log.append(events(5, size=3))
        for start, stop in [(1, None), (1, 11), (2, 4), (3, 3), (4, 9), (6, 6), (10, 20), (12, 30)]:
            facts = list(log.read_facts(start, stop))
            assert [(f.seq, f.type, f.data) for f in facts] == [
                (e.seq, e.type, e.data) for e in log.read(start, stop)
            ], (start, stop)
        assert list(log.read_facts(5, 4)) == []

    def test_an_empty_range_or_one_beyond_the_head_yields_nothing(self, log: EventLog):
        """Reading an empty log, past the head, or with stop before start yields no events."""
        assert list(log.read()) == []
        log.append(events(3))

        assert list(log.read(4)) == []
        assert list(log.read(10, 20)) == []
        assert list(log.read(3, 2)) == []
        assert list(log.read(1, 0)) == []
        assert seqs(log.read(2, 99)) == [2, 3]

    def test_by_subject_yields_only_the_events_naming_it_in_seq_order(self, log: EventLog):
        """The subject index finds every event naming a subject and no other."""
        log.append([NewEvent("A", {}, ("c1",)), NewEvent("B", {}, ("c2", "v1"))])
        log.append([NewEvent("C", {}, ("c1", "v1")), NewEvent("D", {}, ())])
        log.append([NewEvent("E", {}, ("c1",))])

        assert seqs(log.by_subject("c1")) == [1, 3, 5]
        assert seqs(log.by_subject("v1")) == [2, 3]
        assert seqs(log.by_subject("c2")) == [2]
        assert list(log.by_subject("c")) == []
        assert list(log.by_subject("nobody")) == []
        assert [e.type for e in log.by_subject("c1")] == ["A", "C", "E"]

    def test_by_subject_honours_start_and_stop(self, log: EventLog):
        """``by_subject(subject, start, stop)`` keeps the subject's events within the range."""
        for _ in range(5):
            log.append([NewEvent("A", {}, ("c1",)), NewEvent("B", {}, ("c2",))])

        assert seqs(log.by_subject("c1", 3)) == [3, 5, 7, 9]
        assert seqs(log.by_subject("c1", 4, 7)) == [5, 7]
        assert seqs(log.by_subject("c1", 3, 3)) == [3]
        assert seqs(log.by_subject("c1", 4, 4)) == []
        assert seqs(log.by_subject("c1", 10)) == []
        assert seqs(log.by_subject("c1", 11, 20)) == []

    def test_an_event_naming_a_subject_twice_is_listed_once(self, log: EventLog):
        """A subject repeated in one event's subjects gives one index entry."""
        log.append([NewEvent("A", {}, ("c1", "c1")), NewEvent("B", {}, ("c1",))])

        assert seqs(log.by_subject("c1")) == [1, 2]

    def test_long_subjects_are_indexed_apart(self, log: EventLog):
        """Subjects too long for an LMDB key are still told apart by the index."""
        a, b = "p" * 600, "p" * 599 + "q"
        log.append([NewEvent("A", {}, (a,)), NewEvent("B", {}, (b,)), NewEvent("C", {}, (a,))])

        assert seqs(log.by_subject(a)) == [1, 3]
        assert seqs(log.by_subject(b)) == [2]

    def test_head_is_zero_on_an_empty_log_and_the_last_event_after_appends(self, log: EventLog):
        """The head names the newest event's seq, hash and ts (all zero when empty)."""
        assert tuple(log.head()) == (0, GENESIS_HASH, 0)

        stored = log.append(events(4))

        head = log.head()
        assert head.seq == 4
        assert head.ts == stored[-1].ts
        assert head.hash == chain_hash(stored[-1].prev, encode(stored[-1]))


class TestSubjects:
    def test_subjects_under_a_prefix_are_listed_once_each_in_order(self, log: EventLog):
        """Every indexed subject with the prefix, however many events name it; no others."""
        for subject in ("h:/srv/b", "h:/srv/a/x", "h:/srv", "h:/srvx", "c:1", "h:/srv/a/x"):
            log.append([NewEvent("E", {}, (subject,))])

        assert log.subjects("h:/srv/") == ["h:/srv/a/x", "h:/srv/b"]
        assert log.subjects("h:/srv") == ["h:/srv", "h:/srv/a/x", "h:/srv/b", "h:/srvx"]
        assert log.subjects("v:") == []

    def test_subjects_inside_a_bulk_block_include_its_writes(self, log: EventLog):
        """A subject first named by a write of the current batch is listed."""
        with log.bulk(batch=1000):
            log.append([NewEvent("E", {}, ("v:data",))])
            assert log.subjects("v:") == ["v:data"]


class TestSessions:
    def test_each_held_seq_gets_the_session_it_was_recorded_in(self, log: EventLog):
        """Sessions by seq, one lookup per distinct seq; seq 0 and seqs past the head are
        left out; an event recorded with no session has ""."""
        log.append(events(2), session="s1")
        log.append(events(1))
        log.append(events(1), session="bug42")

        assert log.sessions([4, 1, 2, 2, 3, 0, 9]) == {1: "s1", 2: "s1", 3: "", 4: "bug42"}
        assert log.sessions([]) == {}

    def test_sessions_inside_a_bulk_block_include_its_writes(self, log: EventLog):
        """An event of the current batch is read as if it had committed."""
        with log.bulk(batch=1000):
            log.append(events(1), session="s2")
            assert log.sessions([1]) == {1: "s2"}


class TestSeqAt:
    def test_seq_at_maps_a_time_to_the_last_event_recorded_at_or_before_it(
        self, log: EventLog, clock: FakeClock
    ):
        """Before the first event is 0, an exact ts is its event, between is the earlier one."""
        assert log.seq_at(EPOCH) == 0
        clock.step = 1_000_000
        stored = log.append(events(1)) + log.append(events(1)) + log.append(events(1))
        t1, t2, t3 = (e.ts for e in stored)
        assert t1 < t2 < t3

        assert log.seq_at(0) == 0
        assert log.seq_at(t1 - 1) == 0
        assert log.seq_at(t1) == 1
        assert log.seq_at(t1 + 1) == 1
        assert log.seq_at(t2 - 1) == 1
        assert log.seq_at(t2) == 2
        assert log.seq_at((t2 + t3) // 2) == 2
        assert log.seq_at(t3) == 3
        assert log.seq_at(t3 + 10**12) == 3

    def test_seq_at_tells_apart_events_of_one_batch(self, log: EventLog):
        """Events of one batch get distinct times, so each one's ts finds it."""
        stored = log.append(events(4))

        assert [log.seq_at(e.ts) for e in stored] == [1, 2, 3, 4]


class TestWrite:
    def test_reads_inside_a_write_see_its_own_appends(self, log: EventLog):
        """Head, range reads and subject reads inside a write include what it appended."""
        log.append([NewEvent("A", {}, ("c1",))])

        def fn(tx: Any) -> list[int]:
            tx.append([NewEvent("B", {}, ("c1",)), NewEvent("C", {}, ("c2",))])
            assert tx.head.seq == 3
            assert seqs(tx.read()) == [1, 2, 3]
            assert seqs(tx.read(2, 2)) == [2]
            assert seqs(tx.by_subject("c1")) == [1, 2]
            assert seqs(tx.by_subject("c1", 2)) == [2]
            assert seqs(tx.by_subject("c2")) == [3]
            more = tx.append([NewEvent("D", {}, ("c1",))])
            assert seqs(tx.by_subject("c1")) == [1, 2, 4]
            return seqs(more)

        assert log.write(fn) == [4]
        assert log.head().seq == 4
        assert seqs(log.by_subject("c1")) == [1, 2, 4]
        assert log.verify().ok

    def test_an_exception_inside_a_write_appends_nothing(self, log: EventLog):
        """A write whose function raises leaves no event, blob or meta behind, and re-raises."""
        log.append(events(2))
        head = log.head()
        content = pattern(3000, seed=9)

        def fn(tx: Any) -> None:
            tx.append(events(3))
            digests = tx.put_blob(content)
            assert tx.has_blob(digests[0])
            tx.set_meta("policy", b"discard_on=stop")
            raise Boom("refused")

        with pytest.raises(Boom, match="refused"):
            log.write(fn)

        assert log.head() == head
        assert seqs(log.read()) == [1, 2]
        assert log.get_meta("policy") is None
        digest = hashlib.sha256(content).digest()  # one chunk: its digest is the content's
        assert not log.write(lambda tx: tx.has_blob(digest))
        with pytest.raises(CorruptStoreError):
            log.get_blob(digest)
        assert log.verify().ok

    def test_a_write_that_raises_stores_no_blob(self, log: EventLog):
        """Blob chunks put by a refused write are not in the store afterwards."""
        content = pattern(5000, seed=3)

        def fn(tx: Any) -> list[bytes]:
            digests = tx.put_blob(content)
            raise Boom(digests)

        with pytest.raises(Boom) as info:
            log.write(fn)
        digest = info.value.args[0][0]

        assert not log.write(lambda tx: tx.has_blob(digest))
        with pytest.raises(CorruptStoreError):
            log.get_blob(digest)

    def test_write_returns_what_its_function_returns(self, log: EventLog):
        """The value of the function given to ``write`` is handed back to the caller."""
        assert log.write(lambda tx: ("ok", tx.head.seq)) == ("ok", 0)

    def test_a_read_only_write_changes_nothing(self, log: EventLog):
        """A write that only reads leaves the head exactly as it was."""
        log.append(events(1))
        head = log.head()

        assert log.write(lambda tx: seqs(tx.read())) == [1]
        assert log.head() == head


class TestBlobs:
    def test_content_is_split_into_chunks_of_at_most_chunk_size(self, log: EventLog):
        """Content of 2.5 chunks is stored as three chunks, each at most `CHUNK_SIZE` bytes."""
        content = pattern(CHUNK_SIZE * 5 // 2)

        digests = log.write(lambda tx: tx.put_blob(content))

        assert len(digests) == math.ceil(len(content) / CHUNK_SIZE) == 3
        sizes = [len(log.get_blob(d)) for d in digests]
        assert sizes == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE // 2]
        assert log.read_blobs(digests) == content

    def test_empty_content_is_no_chunks(self, log: EventLog):
        """Empty content has no chunks and reads back as empty."""
        assert log.write(lambda tx: tx.put_blob(b"")) == []
        assert log.read_blobs([]) == b""

    def test_identical_content_is_stored_once(self, log: EventLog):
        """Putting content already in the store adds no bytes, in the same or a later write."""
        content = pattern(CHUNK_SIZE + 100)

        def put_twice(tx: Any) -> tuple[list[bytes], list[bytes], int]:
            first = tx.put_blob(content)
            second = tx.put_blob(content)
            return first, second, tx.new_blob_bytes

        first, second, new_bytes = log.write(put_twice)
        assert first == second
        assert new_bytes == len(content)

        def again(tx: Any) -> tuple[list[bytes], int]:
            return tx.put_blob(content), tx.new_blob_bytes

        digests, new_bytes = log.write(again)
        assert digests == first
        assert new_bytes == 0
        assert log.read_blobs(digests) == content

    def test_appending_to_content_stores_only_the_new_bytes(self, log: EventLog):
        """Content extended by new chunks shares the old ones and stores just the appended bytes."""
        old = pattern(CHUNK_SIZE * 2)
        tail = pattern(4321, seed=5)
        old_digests = log.write(lambda tx: tx.put_blob(old))

        def append(tx: Any) -> tuple[list[bytes], int]:
            return old_digests + tx.put_blob(tail), tx.new_blob_bytes

        content, new_bytes = log.write(append)

        assert new_bytes == len(tail)
        assert content[:2] == old_digests
        assert log.read_blobs(content) == old + tail
        assert log.read_blobs(old_digests) == old

    def test_a_large_stream_is_chunked_like_the_whole_content(self, log: EventLog):
        """A stream of odd-sized pieces is stored as the same chunks as its concatenation."""
        content = pattern(CHUNK_SIZE * 3 + 12345, seed=1)
        pieces = (content[i : i + 100_003] for i in range(0, len(content), 100_003))

        digests, size = log.write(lambda tx: tx.put_blob_stream(pieces))

        assert size == len(content)
        assert digests == log.write(lambda tx: tx.put_blob(content))
        assert log.read_blobs(digests) == content
        assert all(len(log.get_blob(d)) <= CHUNK_SIZE for d in digests)

    def test_content_written_with_events_is_readable_after_the_write(self, log: EventLog):
        """An event carrying its content's digests reads back to the same bytes."""
        content = pattern(70_000, seed=2)

        def fn(tx: Any) -> list[Envelope]:
            digests = tx.put_blob(content)
            assert tx.get_blob(digests[0]) == content
            return tx.append([NewEvent("FileWritten", {"path": "/a", "content": digests})])

        (env,) = log.write(fn)
        (stored,) = log.read()
        assert log.read_blobs(stored.data["content"]) == content
        assert stored.data["content"] == tuple(env.data["content"])

    def test_a_missing_chunk_is_reported_as_a_corrupt_store(self, log: EventLog):
        """Asking for a digest the store never held raises `CorruptStoreError`."""
        with pytest.raises(CorruptStoreError, match="missing"):
            log.get_blob(bytes(32))
        with pytest.raises(CorruptStoreError):
            log.read_blobs([bytes(32)])


class TestMeta:
    def test_meta_written_in_a_write_is_read_back(self, log: EventLog):
        """A meta value set inside a write is visible inside it and after it."""
        assert log.get_meta("policy") is None

        def fn(tx: Any) -> bytes | None:
            tx.set_meta("policy", b"discard_on=remove")
            return tx.get_meta("policy")

        assert log.write(fn) == b"discard_on=remove"
        assert log.get_meta("policy") == b"discard_on=remove"
        log.write(lambda tx: tx.set_meta("policy", b"discard_on=stop"))
        assert log.get_meta("policy") == b"discard_on=stop"
        assert log.head().seq == 0


class TestSnapshots:
    def test_the_newest_snapshot_at_or_below_a_seq_is_returned(self, log: EventLog):
        """``get_snapshot`` picks the highest snapshot seq that is not after the one asked."""
        for seq in (10, 20, 30):
            log.put_snapshot("layers", 1, seq, f"state@{seq}".encode())

        assert log.get_snapshot("layers", 1, 9) is None
        assert tuple(log.get_snapshot("layers", 1, 10) or ()) == (10, b"state@10")
        assert tuple(log.get_snapshot("layers", 1, 19) or ()) == (10, b"state@10")
        assert tuple(log.get_snapshot("layers", 1, 20) or ()) == (20, b"state@20")
        assert tuple(log.get_snapshot("layers", 1, 10**9) or ()) == (30, b"state@30")

    def test_snapshots_of_another_version_or_name_are_ignored(self, log: EventLog):
        """A projection sees neither its other versions' snapshots nor other projections'."""
        log.put_snapshot("layers", 1, 10, b"v1")
        log.put_snapshot("layers", 3, 5, b"v3")
        log.put_snapshot("layer", 2, 7, b"other name")
        log.put_snapshot("layers2", 2, 8, b"other name")
        log.put_snapshot("layers", 2, 20, b"v2")

        assert log.get_snapshot("layers", 2, 15) is None
        assert tuple(log.get_snapshot("layers", 2, 25) or ()) == (20, b"v2")
        assert tuple(log.get_snapshot("layers", 1, 25) or ()) == (10, b"v1")
        assert log.get_snapshot("layers", 3, 4) is None
        assert log.get_snapshot("volumes", 1, 25) is None
        assert log.get_snapshot("layer", 1, 25) is None

    def test_a_snapshot_put_again_at_the_same_seq_replaces_the_old_one(self, log: EventLog):
        """Re-taking a snapshot at a seq keeps only the newest state for it."""
        log.put_snapshot("volumes", 1, 4, b"old")
        log.put_snapshot("volumes", 1, 4, b"new")

        assert tuple(log.get_snapshot("volumes", 1, 4) or ()) == (4, b"new")


class TestBulk:
    def test_many_writes_in_bulk_are_all_committed_and_verify(self, log: EventLog):
        """Appends in a bulk block across several batches are all stored and chained."""
        with log.bulk(batch=7):
            for i in range(40):
                log.append([NewEvent("Bulk", {"i": i}, (f"s{i % 3}",))])
            log.write(lambda tx: tx.set_meta("imported", b"yes"))

        assert log.head().seq == 40
        assert [e.data["i"] for e in log.read()] == list(range(40))
        assert seqs(log.by_subject("s1")) == list(range(2, 41, 3))
        assert log.get_meta("imported") == b"yes"
        report = log.verify()
        assert report.ok
        assert report.events == 40

    def test_a_write_that_raises_in_bulk_appends_nothing_while_the_others_land(self, log: EventLog):
        """A refused write inside a bulk block is rolled back alone."""
        content = pattern(2000, seed=4)

        def refused(tx: Any) -> None:
            tx.append(events(5, subject="refused"))
            tx.put_blob(content)
            tx.set_meta("refused", b"1")
            raise Boom

        with log.bulk(batch=4):
            log.append(events(3))
            with pytest.raises(Boom):
                log.write(refused)
            log.append(events(3))

        assert seqs(log.read()) == [1, 2, 3, 4, 5, 6]
        assert list(log.by_subject("refused")) == []
        assert log.get_meta("refused") is None
        assert log.write(lambda tx: (tx.put_blob(content), tx.new_blob_bytes)[1]) == len(content)
        assert log.verify().ok

    def test_writes_that_returned_survive_an_exception_leaving_the_bulk_block(self, log: EventLog):
        """An exception escaping a bulk block keeps every write that had already returned."""

        def import_then_fail() -> None:
            with log.bulk(batch=1000):
                log.append(events(3))
                raise Boom

        with pytest.raises(Boom):
            import_then_fail()

        assert seqs(log.read()) == [1, 2, 3]
        assert log.verify().ok

    def test_reads_inside_a_bulk_block_see_its_writes(self, log: EventLog):
        """Inside a bulk block the log reads as if every write so far had committed."""
        with log.bulk(batch=1000):
            stored = log.append(events(3, subject="c9"))
            log.write(lambda tx: tx.set_meta("k", b"v"))

            assert log.head().seq == 3
            assert seqs(log.read()) == [1, 2, 3]
            assert seqs(log.by_subject("c9")) == [1, 2, 3]
            assert log.seq_at(stored[1].ts) == 2
            assert log.get_meta("k") == b"v"
            assert log.verify().ok
            assert log.verify().events == 3

    def test_a_write_inside_a_bulk_block_reads_the_batch_before_and_after_a_log_read(
        self, log: EventLog
    ):
        """A write's own reads see committed, staged and its own events, in seq order."""
        log.append(events(2, subject="c1"))
        seen: list[tuple[list[int], list[int], list[int]]] = []

        def look(tx: Any) -> None:
            mine = tx.append(events(1, subject="c1"))
            seen.append(
                (
                    seqs(tx.read(1)),
                    seqs(tx.by_subject("c1", 2, mine[0].seq)),
                    seqs(tx.read(mine[0].seq - 1, mine[0].seq - 1)),
                )
            )

        with log.bulk(batch=1000):
            log.append(events(2, subject="c2"))
            log.write(look)  # seq 5, with 3-4 staged
            assert seqs(log.read(4)) == [4, 5]  # a read through the log mid-batch
            log.append(events(1, subject="c2"))
            log.write(look)  # seq 7: 1-5 read back from the batch, 6 staged

        assert seen == [
            ([1, 2, 3, 4, 5], [2, 5], [4]),
            ([1, 2, 3, 4, 5, 6, 7], [2, 5, 7], [6]),
        ]
        assert log.verify().ok

    def test_a_refused_bulk_write_gives_back_the_meta_it_overwrote(self, log: EventLog):
        """Meta set earlier in the batch keeps its value when a later write setting it raises."""

        def refused(tx: Any) -> None:
            tx.set_meta("k", b"refused")
            tx.set_meta("other", b"refused")
            assert tx.get_meta("k") == b"refused"
            raise Boom

        with log.bulk(batch=1000):
            log.write(lambda tx: tx.set_meta("k", b"kept"))
            with pytest.raises(Boom):
                log.write(refused)
            assert log.write(lambda tx: tx.get_meta("k")) == b"kept"
            assert log.write(lambda tx: tx.get_meta("other")) is None

        assert log.get_meta("k") == b"kept"
        assert log.get_meta("other") is None

    def test_bulk_blocks_nest(self, log: EventLog):
        """A bulk block inside another one simply joins it."""
        with log.bulk(batch=2):
            log.append(events(1))
            with log.bulk(batch=100):
                log.append(events(2))
            log.append(events(1))

        assert log.head().seq == 4
        assert log.verify().ok


class TestVerify:
    def test_an_empty_log_verifies(self, log: EventLog):
        """A log with no events verifies with zero events and the genesis head."""
        report = log.verify()

        assert report.ok
        assert (report.events, report.head, report.bad_seq, report.problem) == (
            0,
            GENESIS_HASH,
            None,
            None,
        )

    def test_a_log_verifies_with_its_event_count_and_head_hash(self, log: EventLog):
        """Verification counts the events and ends at the head hash."""
        log.append(events(3))
        log.append(events(4))

        report = log.verify()

        assert report.ok
        assert report.events == 7
        assert report.head == log.head().hash


# -- property: whatever goes in comes back --------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.binary(max_size=40)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(-50, 50), inner, max_size=4)
    ),
    max_leaves=12,
)
_data = st.dictionaries(st.text(max_size=8), _values, max_size=5)
_subjects = st.lists(
    st.sampled_from(["c1", "c2", "v1", "sha256:ab12", "/var/lib/x", "L" * 450, "L" * 449 + "M"])
    | st.text(min_size=1, max_size=10),
    max_size=3,
)
_new_events = st.builds(
    NewEvent,
    type=st.sampled_from(["ContainerCreated", "FileWritten", "VolumeRemoved"]) | st.text(),
    data=_data,
    subjects=_subjects,
    ts=st.none() | st.integers(min_value=0, max_value=2**62),
)
_batches = st.lists(
    st.tuples(
        st.lists(_new_events, min_size=1, max_size=6),
        st.text(max_size=5),
        st.none() | st.builds(Command, name=st.text(max_size=8), args=_data),
    ),
    max_size=6,
)


def _plain(value: Any) -> Any:
    """A value as msgpack reads it back: sequences become tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=_batches)
def test_any_sequence_of_batches_reads_back_identically(
    backend: str, tmp_path: Path, batches: list[tuple[list[NewEvent], str, Command | None]]
):
    """Every appended event reads back byte for byte, is indexed by its subjects, and verifies."""
    clock = FakeClock()
    log: EventLog
    if backend == "memory":
        log = InMemoryEventLog(clock=clock)
    else:  # a fresh store per example; tmp_path is shared by all examples of one test
        log = LmdbEventLog(tempfile.mkdtemp(dir=tmp_path), clock=clock, durable=False)
    try:
        appended: list[Envelope] = []
        for new, session, cmd in batches:
            head_ts = log.head().ts
            stored = log.append(new, session=session, cmd=cmd)
            for env, event in zip(stored, new, strict=True):
                assert (env.type, env.session, env.command) == (event.type, session, cmd)
                assert env.subjects == tuple(event.subjects)
                assert env.data == event.data
                if event.ts is not None and event.ts > head_ts:
                    assert env.ts == event.ts
                assert env.ts > head_ts
                head_ts = env.ts
            appended += stored

        back = list(log.read())
        assert [encode(e) for e in back] == [encode(e) for e in appended]
        assert back == [decode(encode(e)) for e in appended]
        for got, sent in zip(back, appended, strict=True):
            assert got.data == _plain(sent.data)
            assert got.subjects == sent.subjects
        assert seqs(back) == list(range(1, len(appended) + 1))

        for subject in {s for e in appended for s in e.subjects} | {"nobody"}:
            expected = [e.seq for e in appended if subject in e.subjects]
            assert seqs(log.by_subject(subject)) == expected
            middle = len(appended) // 2
            assert seqs(log.by_subject(subject, middle)) == [s for s in expected if s >= middle]

        for env in back:
            assert log.seq_at(env.ts) == env.seq
            assert log.seq_at(env.ts - 1) == env.seq - 1

        report = log.verify()
        assert report.ok, report
        assert report.events == len(appended)
        assert report.head == log.head().hash
    finally:
        log.close()


def test_lmdb_and_memory_store_the_same_bytes_for_the_same_appends(tmp_path: Path):
    """Both backends, given the same clock and batches, hold byte-identical logs."""
    batches = [events(2, x=b"\x00\xff"), [NewEvent("B", {"l": [1, [2, "3"]]}, ("v", "c"))]]
    memory = InMemoryEventLog(clock=FakeClock())
    with LmdbEventLog(tmp_path / "s", clock=FakeClock()) as lmdb_log:
        for batch in batches:
            memory.append(batch, session="s", cmd=Command("run", {"a": 1}))
            lmdb_log.append(batch, session="s", cmd=Command("run", {"a": 1}))

        assert [encode(e) for e in lmdb_log.read()] == [encode(e) for e in memory.read()]
        assert lmdb_log.head() == memory.head()
