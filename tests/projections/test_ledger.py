"""The audit ledger: what each stop, kill, rm, volume rm and tmpfs discard lost, and what persisted."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.fs import DIR, SYMLINK, WHITEOUT
from dockstate.projections.asof import Projector
from dockstate.projections.ledger import LossRecord
from tests.projections.conftest import reader
from tests.projections.helpers import Model, content, naive_merged, new_host, play

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEPS = 25


def _records(docker: DockerHost) -> list[LossRecord]:
    return Projector(docker.log, every=0).state_at().ledger.records


def _lost(record: LossRecord) -> list[tuple[str, int]]:
    return [(f.path, f.size) for f in record.lost]


def _persisted(record: LossRecord) -> list[tuple[str, str, str]]:
    return [(p.path, p.type, p.source) for p in record.persisted]


def _lost_value(f, read):
    return read(f.chunks) if f.kind != SYMLINK else ("l",)


@PROPERTY
@given(data=st.data())
def test_files_and_ledger_follow_an_independent_model(data):
    """Each file a process sees, each loss record and each persisted file is what the model says.

    The model knows which files live only in the writable layer or a tmpfs; the
    ledger must list exactly those, never a file of a volume or a bind mount.
    """
    docker = new_host()
    model = Model(docker)
    play(data, docker, STEPS, model.step)
    log = docker.log
    read = log.read_blobs
    Projector(log, every=4).state_at()
    state = Projector(log, every=4).state_at()  # through a snapshot
    host = state.host
    for cid, box in model.boxes.items():
        c = host.containers[cid]
        seen = {
            p: content(e, read)
            for p, e in naive_merged(host, c).items()
            if e.kind != DIR and host.lookup(c, p) == e
        }
        assert seen == model.process_view(cid), c.name
        assert {p for p, e in c.rw.items() if e.kind not in (DIR, WHITEOUT)} == box.rw, c.name
    by_seq: dict[int, list[LossRecord]] = {}
    for r in state.ledger.records:
        by_seq.setdefault(r.seq, []).append(r)
    assert set(by_seq) == set(model.expected) | set(model.volume_losses)
    for seq, records in by_seq.items():
        vol = [r for r in records if r.event == "volume-rm"]
        if seq in model.volume_losses:
            assert len(vol) == 1
            assert {f.path: _lost_value(f, read) for f in vol[0].lost} == model.volume_losses[seq]
        expected = model.expected.get(seq, [])
        main = [r for r in records if r.event not in ("volume-rm", "tmpfs")]
        tmpfs = [r for r in records if r.event == "tmpfs"]
        assert [(r.event, r.container) for r in main] == [(e.event, e.container) for e in expected]
        for r, e in zip(main, expected, strict=True):
            assert {f.path: _lost_value(f, read) for f in r.lost} == e.lost, (seq, r.event)
            assert set(_persisted(r)) == e.persisted, seq
            assert not {f.path for f in r.lost} & {p for p, _, _ in e.persisted}
        want_tmpfs = [e.tmpfs for e in expected if e.tmpfs]
        assert [{f.path: _lost_value(f, read) for f in r.lost} for r in tmpfs] == want_tmpfs, seq


def test_stop_under_discard_on_stop_loses_the_writable_layer_only(docker):
    """discard_on=stop: a stop lists each rw file, and what went to a volume or bind as persisted."""
    docker.create(
        "app:1",
        name="web",
        volumes=["vol1:/data", "/host/out:/out"],
        tmpfs=["/tmp"],
        discard_on="stop",
        start=True,
    )
    docker.write_file("web", "/data/kept", b"in the volume")
    docker.write_file("web", "/out/kept", b"on the host")
    docker.write_file("web", "/app/new.py", b"lost")
    written = docker.log.head()
    docker.write_file("web", "/etc/hosts", b"lost too", append=True)
    docker.write_file("web", "/tmp/scratch", b"gone")
    docker.stop("web")
    stop, tmpfs = _records(docker)
    assert (stop.event, stop.name, stop.policy) == ("stop", "web", "stop")
    assert _lost(stop) == [("/app/new.py", 4), ("/etc/hosts", 28)]
    assert stop.lost_bytes == 32
    assert _persisted(stop) == [
        ("/data/kept", "volume", "vol1"),
        ("/out/kept", "bind", "/host/out"),
    ]
    assert stop.note == "writable layer discarded at stop (discard_on=stop, the seed's model)"
    new_py = stop.lost[0]
    assert (new_py.written_seq, new_py.written_ts) == (written.seq, written.ts)
    assert docker.log.read_blobs(new_py.chunks) == b"lost"
    assert hashlib.sha256(b"lost").digest() in new_py.chunks
    assert (tmpfs.event, _lost(tmpfs)) == ("tmpfs", [("/tmp/scratch", 4)])
    assert tmpfs.note == "tmpfs lives in memory and is lost at every stop"


def test_discard_on_remove_loses_only_tmpfs_at_stop_and_the_rw_layer_at_rm(docker):
    """discard_on=remove: the stop record says only tmpfs is lost; rm lists the writable layer."""
    docker.create(
        "app:1", name="web", volumes=["vol1:/data"], tmpfs=["/tmp"], discard_on="remove", start=True
    )
    docker.write_file("web", "/app/new.py", b"kept at stop")
    docker.write_file("web", "/tmp/t", b"t")
    docker.write_file("web", "/data/d", b"d")
    docker.stop("web")
    stop, tmpfs = _records(docker)
    assert (stop.event, stop.policy, stop.lost) == ("stop", "remove", [])
    assert "only tmpfs is lost at stop" in stop.note
    assert _lost(tmpfs) == [("/tmp/t", 1)]
    assert reader(docker).cat("web", "/app/new.py") == b"kept at stop"
    docker.remove("web")
    rm = _records(docker)[-1]
    assert (rm.event, _lost(rm)) == ("rm", [("/app/new.py", 12)])
    assert rm.note == "writable layer removed with the container"
    assert _persisted(rm) == [("/data/d", "volume", "vol1")]


def test_rm_after_a_stop_that_discarded_has_nothing_left_to_lose(docker):
    """discard_on=stop: the rw layer went at stop, so the rm record is empty and says why."""
    docker.create("app:1", name="web", discard_on="stop", start=True)
    docker.write_file("web", "/x", b"x")
    docker.stop("web")
    docker.remove("web")
    stop, rm = _records(docker)
    assert _lost(stop) == [("/x", 1)]
    assert (rm.event, rm.lost) == ("rm", [])
    assert rm.note == "nothing left to lose: the writable layer was discarded at stop"


def test_kill_and_rm_f_record_their_losses(docker):
    """kill is a discard like stop; rm -f of a running container records the kill, then the rm."""
    docker.create("app:1", name="aa", discard_on="stop", start=True)
    docker.create("app:1", name="bb", discard_on="remove", start=True)
    docker.write_file("aa", "/a", b"aa")
    docker.write_file("bb", "/b", b"bbb")
    docker.kill("aa")
    docker.remove("bb", force=True)
    kill_a, kill_b, rm_b = _records(docker)
    assert (kill_a.event, kill_a.name, _lost(kill_a)) == ("kill", "aa", [("/a", 2)])
    assert (kill_b.event, kill_b.name, kill_b.lost) == ("kill", "bb", [])
    assert (rm_b.event, rm_b.name, _lost(rm_b)) == ("rm", "bb", [("/b", 3)])
    assert kill_b.seq + 1 == rm_b.seq


def test_restart_of_a_running_container_is_a_stop(docker):
    """docker restart stops first: under discard_on=stop the writable layer goes."""
    docker.create("app:1", name="web", discard_on="stop", start=True)
    docker.write_file("web", "/x", b"x")
    docker.restart("web")
    (stop,) = _records(docker)
    assert (stop.event, _lost(stop)) == ("stop", [("/x", 1)])


def test_a_chmod_copy_up_and_a_renamed_image_file_are_lost_with_the_layer(docker):
    """What the writable layer holds of the image's files (chmod copy, renamed file) is lost too."""
    docker.create("app:1", name="web", discard_on="stop", start=True)
    docker.chmod("web", "/srv/index.html", 0o600)
    docker.rename("web", "/app/main.py", "/app/renamed.py")
    docker.stop("web")
    (stop,) = _records(docker)
    assert _lost(stop) == [("/app/renamed.py", 15), ("/srv/index.html", 15)]


def test_volume_rm_records_the_volume_files(docker):
    """docker volume rm of a named volume lists every file it held."""
    docker.create("app:1", name="web", volumes=["vol1:/data"], discard_on="remove", start=True)
    docker.write_file("web", "/data/a", b"a")
    docker.write_file("web", "/data/sub/b", b"bb")
    docker.remove("web", force=True)
    docker.volume_remove(["vol1"])
    vol = _records(docker)[-1]
    assert (vol.event, vol.volume, vol.name, vol.container) == ("volume-rm", "vol1", "vol1", "")
    assert _lost(vol) == [("/a", 1), ("/sub/b", 2)]
    assert vol.note == "named volume"


def test_run_rm_loses_the_container_and_its_anonymous_volumes_at_stop(docker):
    """--rm: the stop removes the container and its anonymous volume; a named one stays."""
    docker.create(
        "app:1",
        name="job",
        volumes=["/scratch", "vol1:/data"],
        auto_remove=True,
        discard_on="remove",
        start=True,
    )
    docker.write_file("job", "/scratch/s", b"s")
    docker.write_file("job", "/data/d", b"d")
    docker.write_file("job", "/out", b"o")
    docker.stop("job")
    stop, rm, vol = _records(docker)
    assert [r.event for r in (stop, rm, vol)] == ["stop", "rm", "volume-rm"]
    assert stop.seq < rm.seq < vol.seq
    assert _lost(rm) == [("/out", 1)]
    assert (vol.note, _lost(vol)) == ("anonymous volume", [("/s", 1)])
    assert [v.name for v in reader(docker).volumes()] == ["vol1"]


def test_a_bind_mounted_file_persists_on_the_host(docker):
    """-v /host/hosts.txt:/etc/hosts with an existing host file: writes persist there."""
    docker.host_write("/host/hosts.txt", b"host")
    docker.create("app:1", name="web", volumes=["/host/hosts.txt:/etc/hosts"], start=True)
    docker.write_file("web", "/etc/hosts", b"changed")
    docker.stop("web")
    (stop,) = _records(docker)
    assert stop.lost == []
    assert _persisted(stop) == [("/etc/hosts", "bind", "/host/hosts.txt")]
    assert reader(docker).host_cat("/host/hosts.txt") == b"changed"


def test_a_file_hidden_by_a_nested_mount_is_not_listed_as_persisted(docker):
    """A volume file below a bind's target is not what the container sees there: not listed."""
    docker.create("app:1", name="one", volumes=["vol1:/data"], start=True)
    docker.write_file("one", "/data/sub/hidden", b"h")
    docker.create("app:1", name="two", volumes=["vol1:/data", "/host/sub:/data/sub"], start=True)
    docker.write_file("two", "/data/sub/seen", b"s")
    docker.stop("two")
    (stop,) = _records(docker)
    assert _persisted(stop) == [("/data/sub/seen", "bind", "/host/sub")]


@pytest.mark.parametrize("every", [0, 2])
def test_persisted_files_are_the_volumes_at_each_stop_though_it_changes_after(docker, every):
    """A volume is lent to the stop's record, not copied: the record still lists what the
    volume held at that stop after later writes and deletes, across snapshots too."""
    docker.create("app:1", name="web", volumes=["vol1:/data"], discard_on="stop", start=True)
    docker.write_file("web", "/data/a", b"a")
    docker.stop("web")
    docker.start("web")
    docker.write_file("web", "/data/b", b"b")
    docker.delete("web", "/data/a")
    docker.stop("web")
    docker.start("web")
    docker.write_file("web", "/data/c", b"c")
    records = Projector(docker.log, every=every).state_at().ledger.records
    first, second = (r for r in records if r.event == "stop")
    assert _persisted(first) == [("/data/a", "volume", "vol1")]
    assert _persisted(second) == [("/data/b", "volume", "vol1")]
    assert docker.state().volumes["vol1"].files.keys() == {"/b", "/c"}
