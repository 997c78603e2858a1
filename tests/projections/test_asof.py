"""As-of states: snapshots every N events, the newest one at or below a seq, versions, times."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.state import Volume
from dockstate.eventlog import EventLog
from dockstate.eventlog.envelope import GENESIS_HASH
from dockstate.projections import snapshot
from dockstate.projections.asof import NAME, Projector, State
from tests.projections.helpers import canonical, fold_prefix, hash_at, new_host, play

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEPS = 25


@PROPERTY
@given(every=st.integers(3, 7), data=st.data())
def test_state_at_through_a_snapshot_equals_folding_the_prefix(every, data):
    """state_at(k) from the newest snapshot at or below k, plus the tail, equals folding 1..k."""
    docker = new_host()
    play(data, docker, STEPS)
    log = docker.log
    head = log.head().seq
    Projector(log, every=every).state_at()  # leaves a snapshot every `every` events
    assert log.snapshot_seqs(NAME, snapshot.VERSION) == list(range(every, head, every))
    k = data.draw(st.integers(0, head), label="k")
    via = Projector(log, every=every).state_at(k)
    full = fold_prefix(log, k)
    full.host.hash = hash_at(log, k) if k else GENESIS_HASH
    assert via.seq == k
    assert canonical(via) == canonical(full)


def _busy(docker: DockerHost) -> None:
    """A few dozen events: containers, files, volumes, a stop and an rm."""
    docker.create("app:1", name="web", volumes=["vol1:/data"], tmpfs=["/tmp"], start=True)
    docker.create("db:1", name="db", start=True, discard_on="remove")
    for i in range(6):
        docker.write_file("web", f"/data/f{i}", b"v" * i)
        docker.write_file("web", f"/app/f{i}", b"r" * i)
        docker.write_file("db", f"/tmp/t{i}", b"t")
    docker.write_file("web", "/tmp/scratch", b"s")
    docker.stop("web")
    docker.start("web")
    docker.delete("web", "/data/f1")
    docker.remove("db", force=True)


def test_snapshots_are_written_every_n_events_while_folding(docker_on):
    """Folding to the head leaves a snapshot at each multiple of N below it, on both backends."""
    _busy(docker_on)
    log = docker_on.log
    head = log.head().seq
    Projector(log, every=5).state_at()
    assert log.snapshot_seqs(NAME, snapshot.VERSION) == list(range(5, head, 5))
    for seq in range(5, head, 5):
        snap = log.get_snapshot(NAME, snapshot.VERSION, seq)
        assert snap is not None
        assert snap.seq == seq
        host, _ = snapshot.decode(snap.data, log.read_blobs)
        assert (host.seq, host.hash) == (seq, hash_at(log, seq))


def test_every_zero_writes_no_snapshot(docker):
    """Projector(every=0) folds without leaving snapshots behind."""
    _busy(docker)
    Projector(docker.log, every=0).state_at()
    assert docker.log.snapshot_seqs(NAME, snapshot.VERSION) == []


def _poisoned(log: EventLog, seq: int) -> bytes:
    """A well-formed snapshot of the state at ``seq`` that also holds a volume never created."""
    state = _full(log, seq)
    state.host.volumes["poison"] = Volume("poison", False, "local", {}, {}, 0)
    return snapshot.encode(state.host, state.ledger)


def test_state_at_starts_from_the_newest_snapshot_at_or_below(docker):
    """state_at(k) reads the newest snapshot at or below k, never one above it."""
    _busy(docker)
    log = docker.log
    Projector(log, every=10).state_at()
    k = 25
    assert Projector(log).load(k).seq == 20
    log.put_snapshot(NAME, snapshot.VERSION, 30, _poisoned(log, 30))
    assert canonical(Projector(log, every=10).state_at(k)) == canonical(_full(log, k))
    log.put_snapshot(NAME, snapshot.VERSION, 20, _poisoned(log, 20))
    assert "poison" in Projector(log, every=10).state_at(k).host.volumes


def test_an_unreadable_snapshot_is_passed_over_for_an_older_one(docker):
    """A damaged snapshot is only a lost cache: the one before it (or a full fold) is used."""
    _busy(docker)
    log = docker.log
    Projector(log, every=10).state_at()
    log.put_snapshot(NAME, snapshot.VERSION, 20, b"\xc1 damaged")
    log.put_snapshot(NAME, snapshot.VERSION, 10, b"\x93\x01\x02\x03")
    assert Projector(log).load(25).seq == 0
    for k in (5, 15, 25):
        assert canonical(Projector(log, every=0).state_at(k)) == canonical(_full(log, k))


def _full(log: EventLog, k: int) -> State:
    state = fold_prefix(log, k)
    state.host.hash = hash_at(log, k) if k else GENESIS_HASH
    return state


def test_a_new_projection_version_ignores_old_snapshots(docker):
    """Projector(version=v+1) does not read version-v snapshots (poisoned here), writes its own."""
    _busy(docker)
    log = docker.log
    old = snapshot.VERSION
    Projector(log, every=5).state_at()
    for seq in log.snapshot_seqs(NAME, old):
        log.put_snapshot(NAME, old, seq, _poisoned(log, seq))
    assert "poison" in Projector(log, every=5, version=old).state_at().host.volumes
    newer = Projector(log, every=5, version=old + 1)
    for k in (0, 7, 20, log.head().seq):
        assert canonical(newer.state_at(k)) == canonical(_full(log, k))
    assert log.snapshot_seqs(NAME, old + 1) == list(range(5, log.head().seq, 5))


def test_state_at_a_time_is_the_state_after_the_last_event_recorded_by_then(docker_on):
    """state_at_time(ts) folds up to log.seq_at(ts): the last event at or before ts."""
    _busy(docker_on)
    log = docker_on.log
    envs = list(log.read())
    projector = Projector(log, every=4)
    for env, after in itertools.pairwise(envs):
        assert projector.state_at_time(env.ts).seq == env.seq
        if after.ts - env.ts > 1:
            assert projector.state_at_time(after.ts - 1).seq == env.seq
    assert projector.state_at_time(envs[0].ts - 1).seq == 0
    assert projector.state_at_time(envs[-1].ts + 10**12).seq == log.head().seq
    state = projector.state_at_time(envs[20].ts)
    assert canonical(state) == canonical(_full(log, 21))


def test_state_at_is_clamped_to_the_log(docker):
    """Below 0 is the empty host; past the head is the head."""
    _busy(docker)
    log = docker.log
    projector = Projector(log, every=0)
    empty = projector.state_at(-3)
    assert (empty.seq, empty.host.hash, empty.host.containers) == (0, GENESIS_HASH, {})
    head = projector.state_at(log.head().seq + 100)
    assert (head.seq, head.host.hash) == (log.head().seq, log.head().hash)


def test_the_state_hash_is_the_chain_hash_at_its_seq(docker):
    """However a state was reached (fold, snapshot, snapshot + tail) its hash is the log's at k."""
    _busy(docker)
    log = docker.log
    Projector(log, every=6).state_at()
    for k in range(log.head().seq + 1):
        expected = hash_at(log, k) if k else GENESIS_HASH
        assert Projector(log, every=6).state_at(k).host.hash == expected, k
        assert Projector(log, every=0, version=99).state_at(k).host.hash == expected, k


def test_a_snapshot_on_demand_is_written_at_the_seq_asked(docker_on):
    """Projector.snapshot(seq) writes one at exactly seq; snapshot() writes one at the head."""
    _busy(docker_on)
    log = docker_on.log
    projector = Projector(log, every=0)
    assert projector.snapshot(13) == 13
    assert projector.snapshot() == log.head().seq
    assert projector.snapshot(0) == 0
    assert log.snapshot_seqs(NAME, snapshot.VERSION) == [13, log.head().seq]
    assert log.snapshot_seqs(snapshot.LEDGER, snapshot.VERSION) == [13, log.head().seq]
    assert canonical(Projector(log).load(13)) == canonical(_full(log, 13))


def test_a_snapshot_holds_only_the_loss_records_since_the_previous_one(docker):
    """The ledger is written in segments: (prev, S] with each snapshot S, chained down to 0."""
    _busy(docker)
    log = docker.log
    Projector(log, every=10).state_at()
    full = _full(log, log.head().seq).ledger.records
    prev = 0
    for seq in log.snapshot_seqs(NAME, snapshot.VERSION):
        host_snap = log.get_snapshot(NAME, snapshot.VERSION, seq)
        _, ledger = snapshot.decode(host_snap.data, log.read_blobs)
        assert (ledger.base, ledger._own) == (seq, [])
        back, records = snapshot.decode_segment(
            log.get_snapshot(snapshot.LEDGER, snapshot.VERSION, seq).data
        )
        assert back == prev
        assert [snapshot.decode_record(r) for r in records] == [
            r for r in full if prev < r.seq <= seq
        ]
        prev = seq
        with pytest.raises(LookupError, match="ledger segments"):
            _ = ledger.records  # without the Projector, the earlier segments are not read


def test_a_lost_ledger_segment_costs_a_fold_not_the_records(docker):
    """A damaged or missing segment is rebuilt by folding the log: the records are all there."""
    _busy(docker)
    log = docker.log
    Projector(log, every=10).state_at()
    log.put_snapshot(snapshot.LEDGER, snapshot.VERSION, 20, b"\xc1 damaged")
    state = Projector(log, every=10).state_at(35)
    assert state.ledger.base == 30
    assert canonical(state) == canonical(_full(log, 35))


def test_removed_containers_stay_encoded_until_asked_for(docker):
    """A state loaded from a snapshot decodes its removed containers only when they are used."""
    _busy(docker)
    log = docker.log
    Projector(log, every=0).snapshot()  # at the head, after db's removal
    host = Projector(log, every=0).state_at().host
    assert host._removed_encoded
    (db,) = host.removed_ids()
    assert host.was_removed(db)
    assert host._removed_encoded  # knowing the ids decodes no container
    assert [c.name for c in host.removed.values()] == ["db"]
    assert not host._removed_encoded


def test_was_removed_tells_new_ids_without_decoding_the_removed_ones(docker):
    """A loaded host answers a new id from the ids' prefixes, and a removed one from the ids."""
    _busy(docker)
    log = docker.log
    Projector(log, every=0).snapshot()
    host = Projector(log, every=0).state_at().host
    assert host._removed_prefixes is not None
    assert not host.was_removed("f" * 64)
    assert not isinstance(host._removed_ids, dict)  # still encoded
    (db,) = Projector(log, every=0).state_at().host.removed_ids()
    assert not host.was_removed(db[:8] + "0" * 56)  # same prefix, another id: decodes
    assert isinstance(host._removed_ids, dict)
    assert host.was_removed(db)


def test_a_read_of_the_head_past_a_long_tail_leaves_a_snapshot_there(docker_on):
    """With head_snapshot_after set, the next read of the head starts from a snapshot at it."""
    _busy(docker_on)
    log = docker_on.log
    head = log.head().seq
    quiet = Projector(log, every=1000)
    quiet.state_at()
    assert log.get_snapshot(NAME, snapshot.VERSION, head) is None

    eager = Projector(log, every=1000)
    eager.head_snapshot_after = 5
    state = eager.state_at()
    snap = log.get_snapshot(NAME, snapshot.VERSION, head)
    assert snap is not None
    assert snap.seq == head
    again = Projector(log, every=1000).state_at()
    assert canonical(again) == canonical(state)
    assert canonical(again) == canonical(Projector(log, every=0).state_at())


def test_a_short_tail_leaves_no_snapshot_at_the_head(docker_on):
    """A tail shorter than head_snapshot_after is folded each time, not snapshotted."""
    _busy(docker_on)
    log = docker_on.log
    eager = Projector(log, every=1000)
    eager.head_snapshot_after = log.head().seq + 1
    eager.state_at()
    assert log.get_snapshot(NAME, snapshot.VERSION, log.head().seq) is None
