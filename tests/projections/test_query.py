"""The read API: objects, files, diff, df, audit and history, now or as of a past seq."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.errors import (
    DockstateError,
    FileSystemError,
    NoSuchContainerError,
    NoSuchVolumeError,
)
from dockstate.core.fs import DIR, FILE
from dockstate.core.refs import find_container
from dockstate.eventlog import CHUNK_SIZE
from dockstate.projections import views
from dockstate.projections.asof import Projector
from dockstate.projections.query import Reader
from tests.projections.helpers import (
    PATHS,
    SESSION,
    file_heavy_ops,
    fold_prefix,
    new_host,
    play,
)


@pytest.fixture
def story(docker: DockerHost) -> dict[str, int]:
    """A short history; returns the seq after each step by name."""
    at: dict[str, int] = {}
    docker.create("app:1", name="web", volumes=["vol1:/data"], discard_on="remove", start=True)
    at["created"] = docker.log.head().seq
    docker.write_file("web", "/app/main.py", b"v1")
    at["v1"] = docker.log.head().seq
    docker.write_file("web", "/app/main.py", b"v2")
    docker.write_file("web", "/data/d", b"data")
    at["v2"] = docker.log.head().seq
    docker.host_write("/host/h", b"host file")
    docker.stop("web")
    at["stopped"] = docker.log.head().seq
    docker.remove("web")
    at["removed"] = docker.log.head().seq
    return at


def test_cat_reads_a_file_as_of_any_past_seq(docker, story):
    """cat at a past seq reads what the file held then: the image's, v1, v2, then no container."""
    r = Reader(docker.log, snapshot_every=3)
    assert r.cat("web", "/app/main.py", at=story["created"]) == b"print('hello')\n"
    assert r.cat("web", "/app/main.py", at=story["v1"]) == b"v1"
    assert r.cat("web", "/app/main.py", at=story["v2"]) == b"v2"
    assert r.cat("web", "/app/main.py", at=story["stopped"]) == b"v2"
    with pytest.raises(NoSuchContainerError):
        r.cat("web", "/app/main.py")
    with pytest.raises(FileSystemError, match="Is a directory"):
        r.cat("web", "/app", at=story["v1"])


def test_ls_and_stat_say_where_each_path_lives(docker, story):
    """ls lists a directory with the layer or mount serving each entry; stat does the same."""
    r = Reader(docker.log)
    items = {i.name: (i.entry.kind, i.layer) for i in r.ls("web", "/app", at=story["v2"])}
    assert items == {"main.py": (FILE, "rw"), "lib": (DIR, "image")}
    assert [(i.name, i.layer) for i in r.ls("web", "/data", at=story["v2"])] == [
        ("d", "volume:vol1")
    ]
    entry, where = r.stat("web", "/data/d", at=story["v2"])
    assert (entry.size, where) == (4, "volume:vol1")
    with pytest.raises(FileSystemError, match="No such file or directory"):
        r.stat("web", "/data/d", at=story["created"])
    with pytest.raises(FileSystemError, match="No such file or directory"):
        r.ls("web", "/nowhere", at=story["v2"])


def test_objects_as_of_a_seq(docker, story):
    """containers, images and volumes as they were: running at v2, gone after rm."""
    r = Reader(docker.log)
    assert [c.name for c in r.containers(at=story["v2"])] == ["web"]
    assert r.containers(at=story["stopped"]) == []
    assert [c.state for c in r.containers(at=story["stopped"], all=True)] == ["exited"]
    assert r.containers(all=True) == []
    removed = r.container("web", removed=True)
    assert (removed.name, removed.removed_at > 0) == ("web", True)
    assert r.container(removed.id[:12], at=story["v2"]).name == "web"
    with pytest.raises(NoSuchContainerError):
        r.container("web")
    assert sorted(t for i in r.images() for t in i.tags) == ["app:1", "db:1", "deep:1"]
    assert r.image("app:1").tags == ["app:1"]
    assert [v.name for v in r.volumes(at=story["created"])] == ["vol1"]
    assert list(r.volume("vol1", at=story["v2"]).refs) == [removed.id]
    assert list(r.volume("vol1").refs) == []
    with pytest.raises(NoSuchVolumeError):
        r.volume("nope")


def test_volume_and_host_files_as_of_a_seq(docker, story):
    """A volume's and the host's files can be listed and read at any point."""
    r = Reader(docker.log)
    assert [n for n, _ in r.volume_ls("vol1", at=story["v1"])] == []
    assert [n for n, _ in r.volume_ls("vol1")] == ["d"]
    assert r.volume_cat("vol1", "/d") == b"data"
    with pytest.raises(FileSystemError, match="No such file or directory"):
        r.volume_cat("vol1", "/d", at=story["v1"])
    assert [n for n, _ in r.host_ls("/")] == ["host"]
    assert r.host_cat("/host/h") == b"host file"
    with pytest.raises(FileSystemError, match="Is a directory"):
        r.host_cat("/host")


def test_diff_and_df_as_of_a_seq(docker, story):
    """docker diff and system df answer for the moment asked."""
    r = Reader(docker.log)
    assert r.diff("web", at=story["created"]) == []
    assert r.diff("web", at=story["v2"]) == [("C", "/app"), ("C", "/app/main.py")]
    assert r.df(at=story["v2"]).containers_size == 2
    assert r.df(at=story["v2"]).volumes_size == 4
    assert r.df().containers == []


def test_audit_filters_by_container_and_seq_range(docker, story):
    """audit lists loss records, for one container (removed ones too) and within since..until."""
    docker.create("app:1", name="other", start=True)
    docker.write_file("other", "/o", b"o")
    docker.stop("other")
    r = Reader(docker.log)
    assert [(a.event, a.name) for a in r.audit()] == [
        ("stop", "web"),
        ("rm", "web"),
        ("stop", "other"),
    ]
    assert [a.event for a in r.audit("web")] == ["stop", "rm"]
    assert [a.event for a in r.audit(since=story["removed"])] == ["rm", "stop"]
    assert [a.event for a in r.audit(until=story["stopped"])] == ["stop"]
    assert [a.event for a in r.audit(at=story["stopped"])] == ["stop"]
    (rm,) = r.audit("web", since=story["removed"])
    assert [(f.path, f.size) for f in rm.lost] == [("/app/main.py", 2)]


def test_audit_names_the_session_and_digest_of_each_lost_file(docker):
    """Each lost file comes with the session of the write that last set it and the sha256 of
    its content (a file of several chunks hashed whole); the state's own records are left
    as the fold made them."""
    docker.create("app:1", name="web", start=True)
    docker.write_file("web", "/one", b"one")
    big = bytes(range(256)) * (CHUNK_SIZE // 256 + 100)  # two chunks
    docker.session = "bug42"
    docker.write_file("web", "/big", big)
    docker.session = ""
    docker.write_file("web", "/anon", b"")
    docker.stop("web")
    r = Reader(docker.log)
    (stop,) = r.audit("web")
    assert [(f.path, f.session, f.digest) for f in stop.lost] == [
        ("/anon", "", "sha256:" + hashlib.sha256(b"").hexdigest()),
        ("/big", "bug42", "sha256:" + hashlib.sha256(big).hexdigest()),
        ("/one", SESSION, "sha256:" + hashlib.sha256(b"one").hexdigest()),
    ]
    assert len(stop.lost[1].chunks) == 2
    assert all((f.session, f.digest) == ("", "") for f in r.state().ledger.records[0].lost)


def test_history_and_event_read_the_log(docker, story):
    """history lists a subject's events up to a seq; event reads one envelope."""
    r = Reader(docker.log)
    cid = r.container("web", removed=True).id
    types = [e.type for e in r.history(f"c:{cid}")]
    assert types[0] == "ContainerCreated"
    assert types[-1] == "ContainerRemoved"
    assert [e.type for e in r.history(f"c:{cid}", at=story["created"])] == [
        "ContainerCreated",
        "ContainerStarted",
    ]
    env = r.event(story["v1"])
    assert env is not None
    assert (env.type, env.data["path"]) == ("FileWritten", "/app/main.py")
    assert r.event(10**6) is None


def test_a_reader_folds_each_seq_once(docker, story):
    """Several questions about one moment share one state."""
    r = Reader(docker.log)
    assert r.state(story["v2"]) is r.state(story["v2"])
    assert r.state() is r.state(docker.log.head().seq)


def _answer(fn):
    try:
        return fn()
    except DockstateError as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(every=st.integers(5, 20), data=st.data())
def test_cat_at_a_past_seq_answers_as_the_full_state_does(every, data):
    """cat as of k (folding only the container's and its volumes' events) equals the full state's."""
    docker = new_host()
    # two containers sharing a volume (so writes by one show in the other's view)
    for name in ("c1", "c2"):
        docker.create("app:1", name=name, volumes=["vol1:/data"], start=True)
    play(data, docker, 25, mix=file_heavy_ops)
    log = docker.log
    Projector(log, every=every).state_at()
    head = log.head().seq
    for k in data.draw(st.lists(st.integers(1, head), min_size=3, max_size=3), label="k"):
        full = fold_prefix(log, k).host
        refs = [*full.containers, *full.removed, "f" * 64, *full.names, "nope"]
        for ref in refs:
            for path in PATHS:
                got = _answer(
                    lambda r=ref, p=path, k=k: Reader(log, snapshot_every=every).cat(r, p, at=k)
                )
                want = _answer(
                    lambda r=ref, p=path, h=full: views.read_file(
                        h, find_container(h, r), p, log.read_blobs
                    )
                )
                assert got == want, (ref, path, k)


def test_cat_at_a_past_seq_folds_only_the_container_and_its_volumes(docker):
    """The scoped read reads the container's and its volumes' events, not the others'."""
    docker.create("app:1", name="web", volumes=["vol1:/data"], start=True)
    docker.create("app:1", name="other", start=True)
    docker.write_file("web", "/data/a", b"a")
    for i in range(20):
        docker.write_file("other", f"/o{i}", b"o")
    docker.write_file("web", "/data/a", b"b", append=True)
    log = docker.log
    Projector(log, every=5).state_at()
    scoped = Projector(log, every=5).scoped_at(log.head().seq, "web", "/data/a")
    assert scoped is not None
    host, c = scoped
    assert c is not None
    assert views.read_file(host, c, "/data/a", log.read_blobs) == b"ab"
    other = host.containers[host.names["other"]]
    assert "/o19" not in other.rw  # the other container's events after the snapshot: not folded
    # a bind path, a name the snapshot does not know: the caller folds everything
    assert Projector(log).scoped_at(3, "web", "/data/a") is None
