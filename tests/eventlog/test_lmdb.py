"""What only the LMDB backend has: files, map growth, storage errors, crashes, other processes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from dockstate.eventlog import (
    FORMAT_VERSION,
    LmdbEventLog,
    NewEvent,
    StorageError,
    StoreFormatError,
)
from dockstate.eventlog.blobs import digested
from tests.conftest import EPOCH, FakeClock

KIB, MIB = 1 << 10, 1 << 20


def run_python(script: str, *args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter with ``args`` as argv[1:]."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_storage_error(exc: BaseException, path: object) -> None:
    assert type(exc).__module__.startswith("dockstate.")
    assert isinstance(exc, StorageError)
    assert not isinstance(exc, lmdb.Error)
    message = str(exc)
    assert "\n" not in message
    assert str(path) in message


def assert_dense_and_verified(store: LmdbEventLog, events: int) -> None:
    report = store.verify()
    assert report.ok, report
    assert report.events == events
    assert [e.seq for e in store.read()] == list(range(1, events + 1))


class TestOpening:
    def test_events_meta_and_blobs_survive_closing_and_reopening(
        self, store_path: Path, clock: FakeClock
    ):
        """A store reopened from its directory holds what was written before, store id included."""
        with LmdbEventLog(store_path, clock=clock) as store:
            store.append([NewEvent("A", {"x": 1}, ("c1",))])
            digests = store.write(lambda tx: tx.put_blob(b"hello"))
            store.write(lambda tx: tx.set_meta("policy", b"discard_on=stop"))
            store.put_snapshot("layers", 1, 1, b"state")
            store_id, head = store.store_id, store.head()

        with LmdbEventLog(store_path, clock=clock) as again:
            assert again.store_id == store_id
            assert again.head() == head
            assert [e.data for e in again.by_subject("c1")] == [{"x": 1}]
            assert again.read_blobs(digests) == b"hello"
            assert again.get_meta("policy") == b"discard_on=stop"
            assert tuple(again.get_snapshot("layers", 1, 5) or ()) == (1, b"state")
            assert again.verify().ok

    def test_ts_stays_increasing_across_a_reopen_with_a_clock_behind_the_log(
        self, store_path: Path
    ):
        """The head's time is kept in the store, so a later process with a slow clock cannot go back."""
        with LmdbEventLog(store_path, clock=FakeClock(start=EPOCH + 10**12)) as store:
            (last,) = store.append([NewEvent("A", {})])

        with LmdbEventLog(store_path, clock=FakeClock(start=EPOCH)) as again:
            (after,) = again.append([NewEvent("B", {})])

        assert after.ts == last.ts + 1

    def test_a_new_store_records_its_format_version_and_a_store_id(self, lmdb_log: LmdbEventLog):
        """A fresh store's meta holds the current format version and a random id."""
        assert lmdb_log.get_meta("format") == str(FORMAT_VERSION).encode()
        assert len(lmdb_log.store_id) == 32
        assert lmdb_log.get_meta("store_id") == lmdb_log.store_id.encode()

    def test_a_store_of_a_newer_format_is_refused(self, store_path: Path, clock: FakeClock):
        """Opening a store whose format is newer than this code reads fails with `StoreFormatError`."""
        with LmdbEventLog(store_path, clock=clock) as store:
            env = store.raw_env()
            meta = env.open_db(b"meta")
            with env.begin(write=True) as txn:
                txn.put(b"format", str(FORMAT_VERSION + 1).encode(), db=meta)

        with pytest.raises(StoreFormatError) as info:
            LmdbEventLog(store_path, clock=clock)

        assert_one_line_storage_error(info.value, store_path)
        assert "newer" in str(info.value)
        assert (info.value.found, info.value.supported) == (FORMAT_VERSION + 1, FORMAT_VERSION)
        with pytest.raises(StoreFormatError):
            LmdbEventLog(store_path, clock=clock, readonly=True)

    def test_a_read_only_store_reads_what_was_written(self, store_path: Path, clock: FakeClock):
        """A store opened read-only sees the events another handle wrote."""
        with LmdbEventLog(store_path, clock=clock) as store:
            store.append([NewEvent("A", {})])

        with LmdbEventLog(store_path, clock=clock, readonly=True) as reader:
            assert [e.type for e in reader.read()] == ["A"]
            assert reader.verify().ok


class TestStorageErrors:
    def test_a_store_under_a_regular_file_is_a_one_line_storage_error(
        self, tmp_path: Path, clock: FakeClock
    ):
        """A store path whose parent is a regular file fails with a one-line `StorageError`."""
        (tmp_path / "file").write_text("not a directory")
        path = tmp_path / "file" / "store"

        with pytest.raises(StorageError) as info:
            LmdbEventLog(path, clock=clock)

        assert_one_line_storage_error(info.value, path)
        assert "Not a directory" in str(info.value)

    def test_a_store_path_that_is_a_regular_file_is_a_storage_error(
        self, tmp_path: Path, clock: FakeClock
    ):
        """A store path naming a regular file fails with a one-line `StorageError`."""
        path = tmp_path / "file"
        path.write_text("not a store")

        with pytest.raises(StorageError) as info:
            LmdbEventLog(path, clock=clock)

        assert_one_line_storage_error(info.value, path)

    @pytest.mark.parametrize("path", ["/proc/dockstate-store", "/proc/self", "/proc/self/fd"])
    def test_a_store_under_proc_is_a_one_line_storage_error(self, path: str, clock: FakeClock):
        """A path in /proc, where no store can live, fails with a one-line `StorageError`."""
        with pytest.raises(StorageError) as info:
            LmdbEventLog(path, clock=clock)

        assert_one_line_storage_error(info.value, path)

    def test_a_missing_store_opened_read_only_is_a_storage_error(
        self, store_path: Path, clock: FakeClock
    ):
        """Opening a store read-only does not create it; a missing one is a `StorageError`."""
        with pytest.raises(StorageError) as info:
            LmdbEventLog(store_path, clock=clock, readonly=True)

        assert_one_line_storage_error(info.value, store_path)
        assert not store_path.exists()

    def test_a_chunk_stored_with_an_unknown_encoding_is_a_corrupt_store(
        self, lmdb_log: LmdbEventLog
    ):
        """A chunk whose codec byte this version does not know is reported, not returned."""
        (digest,) = lmdb_log.write(lambda tx: tx.put_blob(b"content"))
        env = lmdb_log.raw_env()
        blobs = env.open_db(b"blobs")  # before the txn: opening a db takes the writer lock
        with env.begin(write=True) as txn:
            txn.put(digest, b"\x07content", db=blobs)

        with pytest.raises(StorageError, match="unknown encoding"):
            lmdb_log.get_blob(digest)


class TestBulkBlobs:
    def test_a_chunk_written_again_and_again_in_bulk_is_new_once_and_stored_once(
        self, lmdb_log: LmdbEventLog
    ):
        """Across writes and batches, the same content is new (stored, counted) only the
        first time; a refused write's new chunk is not kept, so the next write stores it."""
        content, other = b"x" * 3000, b"y" * 700
        known = digested(content, hashlib.sha256(content).digest())
        new_bytes: list[int] = []

        def put(data: bytes, refuse: bool = False) -> list[bytes]:
            def write(tx: Any) -> list[bytes]:
                digests = tx.put_blob(data)
                new_bytes.append(tx.new_blob_bytes)
                if refuse:
                    raise RuntimeError("refused")
                tx.append([NewEvent("W", {"chunks": digests})])
                return digests

            return lmdb_log.write(write)

        with lmdb_log.bulk(batch=3):
            first = put(content)
            again = [put(known if i % 2 else content) for i in range(7)]
            with pytest.raises(RuntimeError):
                put(other, refuse=True)
            after_refusal = put(other)
            assert lmdb_log.read_blobs(after_refusal) == other  # read in the batch

        assert again == [first] * 7
        assert new_bytes == [3000, *[0] * 7, 700, 700]
        assert lmdb_log.read_blobs(first) == content
        assert lmdb_log.read_blobs(after_refusal) == other
        assert_dense_and_verified(lmdb_log, 9)


class TestMapGrowth:
    def test_a_tiny_map_grows_to_hold_megabytes_of_events_and_blobs(
        self, store_path: Path, clock: FakeClock
    ):
        """Starting from a 64 KiB map, megabytes of events and chunks are all stored."""
        rng = random.Random(7)
        contents = [rng.randbytes(rng.randrange(1, 700 * KIB)) for _ in range(8)]
        with LmdbEventLog(store_path, clock=clock, map_size=64 * KIB, durable=False) as store:
            all_digests = []
            for i, content in enumerate(contents):

                def fn(tx: Any, i: int = i, content: bytes = content) -> list[bytes]:
                    digests = tx.put_blob(content)
                    tx.append(
                        [NewEvent("FileWritten", {"i": i, "pad": bytes(20 * KIB)}, (f"c{i}",))] * 10
                    )
                    return digests

                all_digests.append(store.write(fn))
            pieces = [contents[0][j : j + 5000] for j in range(0, len(contents[0]), 5000)]
            streamed, size = store.write(lambda tx: tx.put_blob_stream(pieces * 4))

            assert store.raw_env().info()["map_size"] > 64 * KIB
            assert_dense_and_verified(store, 80)
            for digests, content in zip(all_digests, contents, strict=True):
                assert store.read_blobs(digests) == content
            assert size == 4 * len(contents[0])
            assert store.read_blobs(streamed) == contents[0] * 4

    def test_a_tiny_map_grows_during_a_bulk_block(self, store_path: Path, clock: FakeClock):
        """Bulk writes that fill the map mid-batch are grown into, not refused."""
        with LmdbEventLog(store_path, clock=clock, map_size=64 * KIB, durable=False) as store:
            with store.bulk(batch=1000):
                for i in range(60):
                    store.write(
                        lambda tx, i=i: tx.append(
                            [NewEvent("Bulk", {"i": i, "blob": tx.put_blob(os.urandom(50 * KIB))})]
                        )
                    )

            assert_dense_and_verified(store, 60)
            assert [len(store.read_blobs(e.data["blob"])) for e in store.read()] == [50 * KIB] * 60

    def test_a_bulk_batch_that_outgrows_the_map_is_put_in_after_growing(
        self, store_path: Path, clock: FakeClock
    ):
        """A bulk write bigger than the room its batch began with lands whole, with the batch."""
        big = os.urandom(96 * MIB)
        with LmdbEventLog(store_path, clock=clock, map_size=256 * KIB, durable=False) as store:
            with store.bulk(batch=1000):
                store.append([NewEvent("Before", {})])
                room = store.raw_env().info()["map_size"]
                store.write(lambda tx: tx.append([NewEvent("Big", {"blob": tx.put_blob(big)})]))
                store.append([NewEvent("After", {})])

            assert room < len(big)  # the batch began with less room than the write took
            assert_dense_and_verified(store, 3)
            (event,) = [e for e in store.read() if e.type == "Big"]
            assert store.read_blobs(event.data["blob"]) == big

    def test_a_bulk_batch_growing_while_another_process_writes_is_refused_clearly(
        self, store_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ):
        """If another process appends in the moment a batch grows the map, the batch says so."""
        other = """
            import sys, time
            from dockstate.eventlog import LmdbEventLog, NewEvent
            with LmdbEventLog(sys.argv[1], clock=time.time_ns) as log:
                log.append([NewEvent("Other", {})])
        """
        with LmdbEventLog(store_path, clock=clock, map_size=256 * KIB, durable=False) as store:
            grow = store._grow

            def grow_while_another_process_writes(at_least: int = 0) -> None:
                # The batch's transaction is closed here: the other process can write.
                child = run_python(other, store_path)
                assert child.returncode == 0, child.stderr
                grow(at_least)

            with store.bulk(batch=1000):
                store.append([NewEvent("Kept", {})])
                list(store.read(1))  # puts it into the batch's transaction
                monkeypatch.setattr(store, "_grow", grow_while_another_process_writes)
                with pytest.raises(StorageError) as caught:
                    store.write(
                        lambda tx: tx.append(
                            [NewEvent("Big", {"b": tx.put_blob(os.urandom(80 * MIB))})]
                        )
                    )

            assert_one_line_storage_error(caught.value, store_path)
            assert "another process" in str(caught.value)
            assert "not recorded" in str(caught.value)
            assert [e.type for e in store.read()] == ["Kept", "Other"]
            assert store.verify().ok

    def test_a_one_shot_stream_cut_short_by_growth_is_refused_not_truncated(
        self, store_path: Path, clock: FakeClock
    ):
        """A write retried after growth fails loudly rather than store the rest of a used-up stream."""
        with LmdbEventLog(store_path, clock=clock, map_size=64 * KIB, durable=False) as store:
            stream = (bytes([i]) * 300 * KIB for i in range(10))

            def fn(tx: Any) -> Any:
                digests, size = tx.put_blob_stream(stream)
                tx.append([NewEvent("FileWritten", {"content": digests, "size": size})])

            with pytest.raises(StorageError) as info:
                store.write(fn)

            assert_one_line_storage_error(info.value, store_path)
            assert store.head().seq == 0

    def test_a_stream_made_inside_the_write_survives_growth(
        self, store_path: Path, clock: FakeClock
    ):
        """A one-shot stream created by the write function is made afresh on each try."""
        with LmdbEventLog(store_path, clock=clock, map_size=64 * KIB, durable=False) as store:

            def fn(tx: Any) -> tuple[list[bytes], int]:
                return tx.put_blob_stream(bytes([i]) * 300 * KIB for i in range(10))

            digests, size = store.write(fn)

            assert size == 3000 * KIB
            assert store.read_blobs(digests) == b"".join(bytes([i]) * 300 * KIB for i in range(10))

    def test_a_map_grown_by_another_process_is_adopted(self, store_path: Path, clock: FakeClock):
        """When another process grows the map past ours, reads and writes here go on working."""
        grower = """
            import sys, time
            from dockstate.eventlog import LmdbEventLog, NewEvent
            with LmdbEventLog(sys.argv[1], clock=time.time_ns, map_size=256 << 20) as log:
                for i in range(8):
                    digests = log.write(lambda tx: tx.put_blob(bytes([i]) * (1 << 20)))
                    log.append([NewEvent("Grown", {"content": digests}, ("other",))])
                print(log.head().seq)
        """
        with LmdbEventLog(store_path, clock=clock, map_size=256 * KIB) as store:
            store.append([NewEvent("Mine", {}, ("me",))])
            size_before = store.raw_env().info()["map_size"]

            child = run_python(grower, store_path)
            assert child.returncode == 0, child.stderr
            assert child.stdout.split() == ["9"]

            assert store.head().seq == 9
            assert [e.type for e in store.read()] == ["Mine"] + ["Grown"] * 8
            (last,) = store.by_subject("other", 9)
            assert store.read_blobs(last.data["content"]) == bytes([7]) * MIB
            store.append([NewEvent("Mine", {"after": True}, ("me",))])
            assert [e.seq for e in store.by_subject("me")] == [1, 10]
            assert_dense_and_verified(store, 10)
            assert store.raw_env().info()["map_size"] > size_before

    def test_a_bulk_block_adopts_a_map_grown_by_another_process(
        self, store_path: Path, clock: FakeClock
    ):
        """A bulk batch begun after another process grew the map starts without error."""
        grower = """
            import sys, time
            from dockstate.eventlog import LmdbEventLog, NewEvent
            with LmdbEventLog(sys.argv[1], clock=time.time_ns, map_size=256 << 20) as log:
                log.write(lambda tx: tx.put_blob(bytes(4 << 20)))
                log.append([NewEvent("Grown", {})])
        """
        with LmdbEventLog(store_path, clock=clock, map_size=256 * KIB) as store:
            store.append([NewEvent("Mine", {})])
            child = run_python(grower, store_path)
            assert child.returncode == 0, child.stderr

            with store.bulk(batch=10):
                store.append([NewEvent("Bulk", {})])

            assert [e.type for e in store.read()] == ["Mine", "Grown", "Bulk"]


FULL_DISK_CHILD = """
    import json, os, resource, signal, sys, time
    from dockstate.eventlog import LmdbEventLog, NewEvent, StorageError
    path, limit = sys.argv[1], int(sys.argv[2])
    store = LmdbEventLog(path, clock=time.time_ns)
    # Without this the kernel kills the process at the limit instead of failing the write.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    for i in range(100_000):
        def fn(tx, i=i):
            digests = tx.put_blob(os.urandom(6000))
            return tx.append([NewEvent("FileWritten", {"i": i, "content": digests}, ("c1",))])
        try:
            (env,) = store.write(fn)
        except StorageError as exc:
            kinds = [k.__name__ for k in type(exc).__mro__]
            print(json.dumps({"error": str(exc), "kinds": kinds, "ok": store.verify().ok}))
            break
        print(env.seq, flush=True)
"""


def test_a_full_disk_is_a_clear_error_and_leaves_every_returned_append(
    store_path: Path, clock: FakeClock
):
    """Writing past the file size limit fails with a one-line `StorageError`; the store stays whole."""
    LmdbEventLog(store_path, clock=clock).close()
    limit = (store_path / "data.mdb").stat().st_size + 384 * KIB

    child = run_python(FULL_DISK_CHILD, store_path, limit)

    assert child.returncode == 0, child.stderr
    *appended, outcome = child.stdout.splitlines()
    assert len(appended) > 10  # it did write before the limit was hit
    assert [int(s) for s in appended] == list(range(1, len(appended) + 1))
    failure = json.loads(outcome)
    assert "StorageError" in failure["kinds"]
    assert "Error" not in failure["kinds"]  # lmdb.Error is named just that
    assert "\n" not in failure["error"]
    assert str(store_path) in failure["error"]
    assert "File too large" in failure["error"]
    assert failure["ok"]

    with LmdbEventLog(store_path, clock=clock) as store:
        assert_dense_and_verified(store, len(appended))
        assert [e.data["i"] for e in store.by_subject("c1")] == list(range(len(appended)))
        store.append([NewEvent("AfterTheDiskWasFreed", {})])
        assert store.verify().ok


CRASH_CHILD = """
    import os, sys, time
    from dockstate.eventlog import LmdbEventLog, NewEvent
    store = LmdbEventLog(sys.argv[1], clock=time.time_ns)
    round_ = int(sys.argv[2])
    i = 0
    while True:
        def fn(tx):
            digests = tx.put_blob(os.urandom(i % 5 * 3000))
            batch = [NewEvent("Tick", {"round": round_, "i": i, "content": digests}, (f"r{round_}",))]
            return tx.append(batch * (1 + i % 3))
        envs = store.write(fn)
        sys.stdout.write(f"{envs[-1].seq}\\n")
        sys.stdout.flush()
        i += 1
"""


def _killed_at_random(
    script: str, store_path: Path, round_: int, rng: random.Random, seed: int
) -> list[str]:
    """Run ``script`` on the store, kill it at a random moment after its first line, and
    return the whole lines it printed (the last one may be cut and is dropped)."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(store_path), str(round_)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        # Wait for the first report (start-up is slow on a loaded machine), then kill
        # at a random moment of the write loop.
        assert child.stdout is not None
        first = child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.3))
        child.kill()
        out, err = child.communicate()
        out = first + out
    assert child.returncode == -9, f"seed {seed}: child died on its own: {err}"
    return [line for line in out.split("\n")[:-1] if line]


@pytest.mark.slow
def test_a_store_killed_mid_write_reopens_whole_with_every_reported_append(
    store_path: Path, clock: FakeClock
):
    """SIGKILL at random moments never loses a committed append nor breaks the chain."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    reported = 0
    deadline = time.monotonic() + 25
    rounds = 0
    while rounds < 24 and (rounds < 20 or time.monotonic() < deadline):
        lines = _killed_at_random(CRASH_CHILD, store_path, rounds, rng, seed)
        if lines:
            assert int(lines[-1]) > reported, f"seed {seed}"
            reported = int(lines[-1])
        rounds += 1

        if not (store_path / "data.mdb").exists():
            continue  # killed before the store was created
        with LmdbEventLog(store_path, clock=clock) as store:
            report = store.verify()
            assert report.ok, f"seed {seed}, round {rounds}: {report}"
            assert store.head().seq >= reported, f"seed {seed}, round {rounds}"
            assert [e.seq for e in store.read(1, reported)] == list(range(1, reported + 1))
            for env in store.read():
                store.read_blobs(env.data["content"])
            reported = store.head().seq
    assert reported > 0, f"seed {seed}: no round wrote anything"


BULK_CRASH_CHILD = """
    import os, sys, time
    from dockstate.eventlog import LmdbEventLog, NewEvent
    store = LmdbEventLog(sys.argv[1], clock=time.time_ns)
    round_ = int(sys.argv[2])
    i = 0
    while True:
        # One bulk block of 1-40 writes (small batches, so commits fall inside blocks too);
        # what it wrote is committed when the block is left, and only then reported.
        with store.bulk(batch=7):
            for _ in range(1 + i % 40):
                def fn(tx, i=i):
                    digests = tx.put_blob(os.urandom(i % 5 * 3000))
                    event = NewEvent("Tick", {"round": round_, "i": i, "content": digests}, (f"r{i % 4}",))
                    return tx.append([event] * (1 + i % 3))
                store.write(fn)
                i += 1
        sys.stdout.write(f"{store.head().seq}\\n")
        sys.stdout.flush()
"""


@pytest.mark.slow
def test_a_store_killed_mid_bulk_block_reopens_whole_with_every_committed_batch(
    store_path: Path, clock: FakeClock
):
    """SIGKILL during bulk writes leaves a verified store holding every block that was left."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    reported = 0
    deadline = time.monotonic() + 15
    rounds = 0
    while rounds < 12 and (rounds < 8 or time.monotonic() < deadline):
        lines = _killed_at_random(BULK_CRASH_CHILD, store_path, rounds, rng, seed)
        if lines:
            reported = int(lines[-1])
        rounds += 1
        with LmdbEventLog(store_path, clock=clock) as store:
            report = store.verify()
            assert report.ok, f"seed {seed}, round {rounds}: {report}"
            assert store.head().seq >= reported, f"seed {seed}, round {rounds}"
            for env in store.read():
                store.read_blobs(env.data["content"])
            for subject in ("r0", "r1", "r2", "r3"):
                seqs = store.subject_seqs(subject)
                assert [e.seq for e in store.by_subject(subject)] == seqs
                assert all(
                    env.data["i"] % 4 == int(subject[1]) for env in store.by_subject(subject)
                )
            reported = store.head().seq
    assert reported > 0, f"seed {seed}: no round wrote anything"


WRITER_CHILD = """
    import sys, time
    from dockstate.eventlog import LmdbEventLog, NewEvent
    path, me, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with LmdbEventLog(path, clock=time.time_ns) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(batches):
            store.append([NewEvent("Step", {"proc": me, "i": i, "part": part}, (me,))
                          for part in range(3)])
"""


@pytest.mark.slow
def test_processes_appending_at_once_are_serialised_into_one_dense_chain(store_path: Path):
    """Several processes creating and appending to one store interleave whole batches only."""
    procs, batches = 4, 40
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(WRITER_CHILD),
                str(store_path),
                f"p{k}",
                str(batches),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(procs)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:  # all open before any writes
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()

    with LmdbEventLog(store_path, clock=FakeClock(), readonly=True) as store:
        total = procs * batches * 3
        assert_dense_and_verified(store, total)
        stored = list(store.read())
        for start in range(0, total, 3):  # each batch landed whole and in order
            batch = stored[start : start + 3]
            assert len({e.data["proc"] for e in batch}) == 1
            assert [e.data["part"] for e in batch] == [0, 1, 2]
        for k in range(procs):
            mine = list(store.by_subject(f"p{k}"))
            assert [e.data["i"] for e in mine[::3]] == list(range(batches))
