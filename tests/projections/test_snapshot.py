"""The snapshot codec: a host and its ledger to bytes and back, bulky parts decoded lazily."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core import state as state_module
from dockstate.core.commands import DockerHost
from dockstate.core.state import Host, Pending
from dockstate.eventlog import NewEvent
from dockstate.projections import snapshot
from dockstate.projections.asof import NAME, Projector, State
from dockstate.projections.ledger import Ledger
from tests.projections.helpers import Op, canonical, new_host, play, run_op

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode(raw: bytes, docker: DockerHost) -> State:
    return State(*snapshot.decode(raw, docker.log.read_blobs))


def _force(state: State) -> State:
    """Decode every lazily kept part now, as an eager decoder would have."""
    for c in [*state.host.containers.values(), *state.host.removed.values()]:
        assert isinstance(c.rw, dict)
        assert isinstance(c.tmpfs, dict)
    for v in state.host.volumes.values():
        assert isinstance(v.files, dict)
    assert isinstance(state.ledger.records, list)
    return state


@PROPERTY
@given(data=st.data())
def test_decode_then_encode_gives_back_the_same_state_and_bytes(data):
    """encode(decode(b)) == b, and the decoded state equals the one encoded, lazy or forced."""
    docker = new_host()
    play(data, docker, 25)
    state = Projector(docker.log, every=0).state_at()
    raw = snapshot.encode(state.host, state.ledger)
    lazy = _decode(raw, docker)
    assert snapshot.encode(lazy.host, lazy.ledger) == raw  # encoded parts pass through
    eager = _force(_decode(raw, docker))
    assert snapshot.encode(eager.host, eager.ledger) == raw  # and re-encode to the same bytes
    assert canonical(lazy) == canonical(eager) == canonical(state)


@PROPERTY
@given(data=st.data())
def test_folding_on_a_lazy_state_equals_folding_on_an_eager_one(data):
    """Events folded onto a decoded snapshot give the same state whether its trees were decoded."""
    docker = new_host()
    play(data, docker, 15)
    mid = Projector(docker.log, every=0).state_at()
    raw = snapshot.encode(mid.host, mid.ledger)
    before = docker.log.head().seq
    play(data, docker, 15)
    lazy, eager = _decode(raw, docker), _force(_decode(raw, docker))
    for state in (lazy, eager):
        state.apply_all(docker.log.read(before + 1))
    assert canonical(lazy) == canonical(eager)
    assert snapshot.encode(lazy.host, lazy.ledger) == snapshot.encode(eager.host, eager.ledger)


def test_tmpfs_contents_survive_a_snapshot(docker):
    """A container's tmpfs files are in the snapshot and read back (version 1 could not)."""
    run_op(docker, _create("web", tmpfs="/tmp"))
    docker.write_file("web", "/tmp/a", b"aaa")
    docker.write_file("web", "/tmp/d/b", b"b")
    state = Projector(docker.log, every=0).state_at()
    decoded = _decode(snapshot.encode(state.host, state.ledger), docker)
    c = decoded.host.containers[decoded.host.names["web"]]
    assert sorted(c.tmpfs["/tmp"]) == ["/a", "/d", "/d/b"]
    assert docker.log.read_blobs(c.tmpfs["/tmp"]["/a"].chunks) == b"aaa"
    assert snapshot.VERSION >= 2


def test_the_bulky_parts_stay_encoded_until_used(docker):
    """Writable layers, tmpfs, volume contents and loss records are decoded on first use."""
    run_op(docker, _create("web", tmpfs="/tmp", volume="vol1:/data"))
    docker.write_file("web", "/x", b"x")
    docker.write_file("web", "/data/y", b"y")
    docker.stop("web")
    state = Projector(docker.log, every=0).state_at()
    decoded = _decode(snapshot.encode(state.host, state.ledger), docker)
    c = decoded.host.containers[decoded.host.names["web"]]
    assert isinstance(c._rw, bytes)
    assert isinstance(c._tmpfs, bytes)
    assert isinstance(decoded.host.volumes["vol1"]._files, bytes)
    assert decoded.ledger._own
    assert all(isinstance(r, bytes) for r in decoded.ledger._own)
    assert sorted(decoded.host.volumes["vol1"].files) == ["/y"]
    assert isinstance(decoded.host.volumes["vol1"]._files, dict)


def _file_event(docker: DockerHost, etype: str, cid: str, path: str, **data: object) -> None:
    """An event as the fold may meet it in any log, not only as the commands write it."""
    body = {"container": cid, "path": path, "volume": "vol1", "host_path": "", **data}
    docker.log.append([NewEvent(etype, body, (f"c:{cid}", "v:vol1"))])


def test_writes_into_a_volume_left_encoded_wait_until_it_is_read(docker):
    """A file written, appended to or deleted in a volume whose tree a snapshot left encoded
    waits (`Pending`: the tree is not decoded); the first read makes the writes in order and
    gives what folding every event gives: a file put over a directory, an append to a
    directory, a directory deleted with everything below it, a missing path deleted. A
    stop in between lends the volume as it is then; the writes after it do not show there."""
    run_op(docker, _create("web", volume="vol1:/data"))
    cid = Projector(docker.log).state_at().host.names["web"]
    docker.write_file("web", "/data/d/f", b"f")
    docker.write_file("web", "/data/e/g", b"g")
    docker.write_file("web", "/data/h/i", b"i")
    docker.write_file("web", "/data/keep", b"k")
    state = Projector(docker.log, every=0).state_at()
    raw = snapshot.encode(state.host, state.ledger)
    before = docker.log.head().seq
    chunk = docker.log.write(lambda tx: tx.put_blob(b"zz"))
    _file_event(docker, "FileWritten", cid, "/data/d", chunks=chunk, size=2, mode=0o600)
    _file_event(docker, "FileAppended", cid, "/data/e", chunks=chunk, size=2)
    _file_event(docker, "FileDeleted", cid, "/data/h")
    _file_event(docker, "FileDeleted", cid, "/data/nothing")
    docker.write_file("web", "/data/keep", b"more", append=True)
    docker.stop("web")
    docker.start("web")
    docker.write_file("web", "/data/late", b"late")

    lazy = _decode(raw, docker)
    lazy.apply_all(docker.log.read(before + 1))
    vol = lazy.host.volumes["vol1"]
    assert isinstance(vol._files, Pending)
    assert isinstance(vol._files.base, bytes)
    assert len(vol._files.ops) == 6
    eager = Projector(docker.log, every=0).state_at()
    lazy.host.hash = eager.host.hash  # the chain hash is the projector's to set
    assert canonical(lazy) == canonical(eager)  # reads it: the writes are made
    assert sorted(vol.files) == ["/d", "/e", "/keep", "/late"]
    assert isinstance(vol._files, dict)
    (stop,) = [r for r in lazy.ledger.records if r.event == "stop"]
    assert [p.path for p in stop.persisted] == ["/data/d", "/data/e", "/data/keep"]
    assert snapshot.encode(lazy.host, lazy.ledger) == snapshot.encode(eager.host, eager.ledger)


def test_a_volume_makes_its_tree_when_too_many_writes_wait(docker, monkeypatch):
    """The queue of waiting writes is bounded (`PENDING_MAX`): at the bound the volume makes
    its tree and writes into it from then on, to the same files as a full fold."""
    monkeypatch.setattr(state_module, "PENDING_MAX", 4)
    run_op(docker, _create("web", volume="vol1:/data"))
    docker.write_file("web", "/data/a", b"a")
    state = Projector(docker.log, every=0).state_at()
    raw = snapshot.encode(state.host, state.ledger)
    before = docker.log.head().seq
    for i in range(3):
        docker.write_file("web", f"/data/f{i}", b"f")
    lazy = _decode(raw, docker)
    lazy.apply_all(docker.log.read(before + 1))
    assert len(lazy.host.volumes["vol1"]._files.ops) == 3
    docker.write_file("web", "/data/f3", b"f")
    docker.write_file("web", "/data/f4", b"f")
    lazy.apply_all(docker.log.read(before + 4))
    assert isinstance(lazy.host.volumes["vol1"]._files, dict)
    eager = Projector(docker.log, every=0).state_at()
    assert lazy.host.volumes["vol1"].files == eager.host.volumes["vol1"].files


def test_a_snapshot_of_pending_writes_holds_them_made(docker):
    """Encoding a state whose volume has writes waiting stores the tree with them made;
    one with none waiting passes its encoded tree through."""
    run_op(docker, _create("web", volume="vol1:/data"))
    docker.write_file("web", "/data/a", b"a")
    state = Projector(docker.log, every=0).state_at()
    raw = snapshot.encode(state.host, state.ledger)
    before = docker.log.head().seq
    docker.write_file("web", "/data/b", b"b")
    lazy = _decode(raw, docker)
    lazy.apply_all(docker.log.read(before + 1))
    assert isinstance(lazy.host.volumes["vol1"]._files, Pending)
    again = _decode(snapshot.encode(lazy.host, lazy.ledger), docker)
    assert sorted(again.host.volumes["vol1"].files) == ["/a", "/b"]
    assert isinstance(lazy.host.volumes["vol1"]._files, Pending)  # encoding read nothing


def test_new_loss_records_follow_the_encoded_ones(docker):
    """Records folded after a snapshot come after those the snapshot kept encoded."""
    run_op(docker, _create("aa"))
    run_op(docker, _create("bb"))
    docker.write_file("aa", "/a", b"a")
    docker.stop("aa")
    state = Projector(docker.log, every=0).state_at()
    before = docker.log.head().seq
    docker.write_file("bb", "/b", b"b")
    docker.stop("bb")
    decoded = _decode(snapshot.encode(state.host, state.ledger), docker)
    decoded.apply_all(docker.log.read(before + 1))
    assert [r.name for r in decoded.ledger.records] == ["aa", "bb"]
    raw = snapshot.encode(decoded.host, decoded.ledger)
    assert [r.name for r in _decode(raw, docker).ledger.records] == ["aa", "bb"]


def test_an_empty_state_round_trips(docker):
    """The host before any event encodes and decodes to itself."""
    empty = State(Host(docker.log.read_blobs), Ledger())
    assert canonical(_decode(snapshot.encode(empty.host, empty.ledger), docker)) == canonical(empty)


def _create(name: str, *, tmpfs: str = "", volume: str = "") -> Op:
    mounts = (("--tmpfs", tmpfs),) if tmpfs else ()
    mounts += (("-v", volume),) if volume else ()
    return Op("create", name, mounts=mounts)


def _busy(docker: DockerHost) -> None:
    run_op(docker, _create("web", tmpfs="/tmp", volume="vol1:/data"))
    run_op(docker, _create("db"))
    for i in range(8):
        docker.write_file("web", f"/data/f{i}", b"v" * 40)
        docker.write_file("web", f"/app/f{i}", b"r" * 40)
        docker.write_file("db", f"/srv/f{i}", b"d")
    docker.write_file("web", "/tmp/t", b"t")
    docker.remove("db", force=True)
    docker.stop("web")
    docker.start("web")
    docker.write_file("web", "/app/late", b"late")
    for i in range(12):  # the volume stays as it is from here on
        docker.write_file("web", f"/app/g{i}", b"g")


def test_bulky_parts_go_to_the_blob_store_and_come_back(docker, monkeypatch):
    """Written with the log's blob store, every bulky part is a digest, read back when used."""
    monkeypatch.setattr(snapshot, "STORE_OVER", 0)
    monkeypatch.setattr(snapshot, "INLINE_LIVE_UNDER", 0)
    _busy(docker)
    log = docker.log
    Projector(log, every=5).state_at()
    head = log.head().seq
    for k in range(5, head + 1, 3):
        assert canonical(Projector(log, every=5).state_at(k)) == canonical(fold_prefix_at(log, k))
    raw = log.get_snapshot(NAME, snapshot.VERSION, head - 1).data
    d = snapshot._unpack(raw)
    assert all(not isinstance(row[14], bytes) for row in d["containers"])  # digests
    assert all(not isinstance(row[6], bytes) for row in d["volumes"])
    assert all(not isinstance(chunk, bytes) for chunk in d["removed"])
    # an unchanged part is the same blob in every snapshot that holds it: vol1 is
    # not written after the first events
    first, last = log.snapshot_seqs(NAME, snapshot.VERSION)[-2:]
    vol1 = [
        {
            r[0]: r[6]
            for r in snapshot._unpack(log.get_snapshot(NAME, snapshot.VERSION, q).data)["volumes"]
        }["vol1"]
        for q in (first, last)
    ]
    assert vol1[0] == vol1[1]


def test_live_trees_are_inline_and_idle_ones_in_the_blob_store(docker, monkeypatch):
    """What the next events touch first (a running container's writable layer, a volume it
    mounts) is kept in the snapshot itself; an exited container's layer and a volume no
    running container mounts are blobs. The state comes back the same either way."""
    monkeypatch.setattr(snapshot, "STORE_OVER", 0)
    _busy(docker)  # web runs, with vol1 at /data
    run_op(docker, _create("idle", volume="vol2:/data"))
    docker.write_file("idle", "/data/x", b"x" * 40)
    docker.write_file("idle", "/srv/x", b"x" * 40)
    docker.stop("idle")
    log = docker.log
    Projector(log, every=0).snapshot()
    head = log.head().seq
    d = snapshot._unpack(log.get_snapshot(NAME, snapshot.VERSION, head).data)
    rw = {row[1]: row[14] for row in d["containers"]}
    files = {row[0]: row[6] for row in d["volumes"]}
    assert isinstance(rw["web"], bytes)
    assert isinstance(files["vol1"], bytes)
    assert not isinstance(rw["idle"], bytes)
    assert not isinstance(files["vol2"], bytes)
    assert canonical(Projector(log).state_at(head)) == canonical(fold_prefix_at(log, head))
    # a live tree too big to keep inline goes to the blob store all the same
    monkeypatch.setattr(snapshot, "INLINE_LIVE_UNDER", 64)
    docker.start("idle")
    Projector(log, every=0).snapshot()
    d = snapshot._unpack(log.get_snapshot(NAME, snapshot.VERSION, log.head().seq).data)
    assert not isinstance({row[1]: row[14] for row in d["containers"]}["web"], bytes)


def test_stored_parts_are_read_through_the_hosts_current_reader(docker, monkeypatch):
    """A write model moves its host to each new transaction's reader: stored trees follow it."""
    monkeypatch.setattr(snapshot, "STORE_OVER", 0)
    monkeypatch.setattr(snapshot, "INLINE_LIVE_UNDER", 0)
    _busy(docker)
    log = docker.log
    Projector(log, every=0).snapshot()
    raw = log.get_snapshot(NAME, snapshot.VERSION, log.head().seq).data
    calls = []
    host, _ = snapshot.decode(raw, lambda d: pytest.fail("the first reader is gone"))
    host.layer_cache.set_reader(lambda digests: calls.append(digests) or log.read_blobs(digests))
    c = host.containers[host.names["web"]]
    assert "/app/late" in c.rw
    assert calls


def fold_prefix_at(log, k):
    from tests.projections.helpers import fold_prefix, hash_at

    state = fold_prefix(log, k)
    state.host.hash = hash_at(log, k)
    return state


def test_every_mount_option_survives_a_snapshot(docker):
    """Mounts are stored as the fields that differ from the defaults (version 7): a read-only
    volume, nocopy, a bind with its propagation, a sized tmpfs with its mode and an
    anonymous volume all come back equal, as do the containers and volumes themselves."""
    docker.host_mkdir("/srv/conf", parents=True)
    docker.create(
        "app:1",
        name="web",
        volumes=["vol1:/data:ro", "/anon", "/srv/conf:/etc/conf:rslave"],
        mounts=["type=volume,source=vol2,target=/cache,volume-nocopy"],
        tmpfs=["/run:size=64k,mode=1770"],
        start=True,
    )
    docker.write_file("web", "/cache/a", b"aaa")
    state = Projector(docker.log, every=0).state_at()
    decoded = _decode(snapshot.encode(state.host, state.ledger), docker)

    web = state.host.containers[state.host.names["web"]]
    back = decoded.host.containers[web.id]
    assert back.mounts == web.mounts
    assert {
        (m.target, m.rw, m.nocopy, m.propagation, m.anonymous, m.size) for m in back.mounts
    } >= {
        ("/data", False, False, "", False, 0),
        ("/cache", True, True, "", False, 0),
        ("/etc/conf", True, False, "rslave", False, 0),
        ("/run", True, False, "", False, 64 * 1024),
    }
    assert any(m.anonymous for m in back.mounts)
    assert canonical(decoded) == canonical(state)
    assert decoded.host.volumes["vol2"].refs == {web.id: None}
    assert "/a" in decoded.host.volumes["vol2"].files
