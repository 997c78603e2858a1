"""The merged view of a container, ``docker diff`` and ``docker system df``."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.errors import FileSystemError
from dockstate.core.fs import DIR, FILE, WHITEOUT, Entry
from dockstate.core.state import Container, Host
from dockstate.projections import views
from dockstate.projections.asof import Projector
from tests.projections.conftest import reader
from tests.projections.helpers import naive_diff, naive_merged, new_host, play, probe_paths

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEPS = 25


def _c(docker: DockerHost, name: str) -> tuple[Host, Container]:
    host = Projector(docker.log, every=0).state_at().host
    return host, host.containers[host.names[name]]


def _names(host: Host, c: Container, path: str) -> list[str]:
    return [i.name for i in views.merged_ls(host, c, path)]


def _cat(docker: DockerHost, name: str, path: str) -> bytes:
    return reader(docker).cat(name, path)


# -- properties -------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_merged_view_equals_stacking_layers_rw_and_mounts(data):
    """Every path of every container is what layers, writable layer and mounts stack to."""
    docker = new_host()
    play(data, docker, STEPS)
    # through a snapshot, so that lazily decoded trees are what is read
    Projector(docker.log, every=3).state_at()
    host = Projector(docker.log, every=3).state_at().host
    for c in host.containers.values():
        ref = naive_merged(host, c)
        for path in sorted(probe_paths(host, c) | set(ref)):
            assert host.lookup(c, path) == ref.get(path), (c.name, path)
        for path, entry in ref.items():
            if entry.kind == DIR:
                listed = [(i.name, i.entry) for i in views.merged_ls(host, c, path)]
                prefix = path.rstrip("/") + "/"
                expected = sorted(
                    (p[len(prefix) :], e)
                    for p, e in ref.items()
                    if p.startswith(prefix) and "/" not in p[len(prefix) :] and p != "/"
                )
                assert listed == expected, (c.name, path)


@PROPERTY
@given(data=st.data())
def test_docker_diff_is_the_tree_comparison_of_image_and_rootfs(data):
    """docker diff lists what comparing the image with the container's root filesystem finds."""
    docker = new_host()
    play(data, docker, STEPS)
    host = Projector(docker.log, every=0).state_at().host
    for c in [*host.containers.values(), *host.removed.values()]:
        got = views.container_diff(host, c)
        assert set(got) == naive_diff(host, c), c.name
        assert [p for _, p in got] == sorted(p for _, p in got)


# -- whiteouts and opaque dirs ------------------------------------------------------------


def test_a_file_deleted_in_an_image_layer_is_invisible(docker):
    """app:1's upper layer whites out /etc/motd: the container sees no motd, diff shows nothing."""
    docker.create("app:1", name="web", start=True)
    host, c = _c(docker, "web")
    assert host.lookup(c, "/etc/motd") is None
    assert _names(host, c, "/etc") == ["hosts"]
    assert views.container_diff(host, c) == []


def test_deleting_a_lower_file_leaves_a_whiteout_that_hides_it(docker):
    """rm of an image file hides it from this container only; docker diff says D under a C parent."""
    docker.create("app:1", name="web", start=True)
    docker.create("app:1", name="other", start=True)
    docker.delete("web", "/app/main.py")
    host, c = _c(docker, "web")
    assert c.rw["/app/main.py"].kind == WHITEOUT
    assert host.lookup(c, "/app/main.py") is None
    assert _names(host, c, "/app") == ["lib"]
    assert views.container_diff(host, c) == [("C", "/app"), ("D", "/app/main.py")]
    _, other = _c(docker, "other")
    assert host.lookup(other, "/app/main.py") is not None
    with pytest.raises(FileSystemError, match="No such file or directory"):
        _cat(docker, "web", "/app/main.py")


def test_deleting_a_lower_dir_is_one_d_for_the_topmost_path(docker):
    """rm -r of an image dir: one whiteout, one D; nothing below it is listed."""
    docker.create("app:1", name="web", start=True)
    docker.delete("web", "/app/lib", recursive=True)
    host, c = _c(docker, "web")
    assert host.lookup(c, "/app/lib/util.py") is None
    assert views.container_diff(host, c) == [("C", "/app"), ("D", "/app/lib")]


def test_an_opaque_dir_in_an_image_layer_hides_the_lower_layers_children(docker):
    """deep:1 makes /etc opaque: the base's /etc/hosts is gone, its own /etc/hostname is there."""
    docker.create("deep:1", name="deep", start=True)
    host, c = _c(docker, "deep")
    assert _names(host, c, "/etc") == ["hostname"]
    assert host.lookup(c, "/etc/hosts") is None
    assert host.lookup(c, "/var/log") is None  # a whited-out directory
    assert _names(host, c, "/var") == []
    assert _cat(docker, "deep", "/etc/hostname") == b"deep-host\n"


def test_a_dir_deleted_and_re_created_hides_the_lower_children(docker):
    """rm -r then mkdir makes an opaque dir: the image's files below it stay hidden."""
    docker.create("app:1", name="web", start=True)
    docker.delete("web", "/app", recursive=True)
    docker.mkdir("web", "/app")
    docker.write_file("web", "/app/lib/new.py", b"new")
    host, c = _c(docker, "web")
    assert c.rw["/app"].opaque
    assert _names(host, c, "/app") == ["lib"]
    assert _names(host, c, "/app/lib") == ["new.py"]
    assert host.lookup(c, "/app/main.py") is None
    assert host.lookup(c, "/app/lib/util.py") is None
    assert views.container_diff(host, c) == [
        ("C", "/app"),
        ("C", "/app/lib"),
        ("A", "/app/lib/new.py"),
        ("D", "/app/lib/util.py"),
        ("D", "/app/main.py"),
    ]


def test_writing_below_a_deleted_dir_re_creates_it_opaque(docker):
    """A write under a deleted image dir makes the dir again, opaque: only the new file is in it."""
    docker.create("app:1", name="web", start=True)
    docker.delete("web", "/srv", recursive=True)
    docker.write_file("web", "/srv/new.html", b"<p>")
    host, c = _c(docker, "web")
    assert c.rw["/srv"].opaque
    assert _names(host, c, "/srv") == ["new.html"]
    assert views.container_diff(host, c) == [
        ("C", "/srv"),
        ("D", "/srv/index.html"),
        ("A", "/srv/new.html"),
    ]


# -- copy-up ---------------------------------------------------------------------------


def test_first_modification_of_a_lower_file_copies_it_up_whole(docker):
    """Write, append and chmod of image files count their whole size once; new files none."""
    docker.create("app:1", name="web", start=True)
    docker.write_file("web", "/etc/hosts", b"x")  # 20 bytes in the image
    docker.write_file("web", "/etc/hosts", b"yy")  # already copied up: not counted again
    docker.write_file("web", "/app/main.py", b" # more", append=True)
    docker.chmod("web", "/srv/index.html", 0o600)
    docker.write_file("web", "/new.txt", b"brand new")
    _, c = _c(docker, "web")
    assert c.copy_ups == {"/etc/hosts": 20, "/app/main.py": 15, "/srv/index.html": 15}
    assert _cat(docker, "web", "/app/main.py") == b"print('hello')\n # more"
    assert c.rw["/srv/index.html"].mode == 0o600
    assert _cat(docker, "web", "/srv/index.html") == b"<h1>image</h1>\n"
    assert _cat(docker, "web", "/etc/hosts") == b"yy"


def test_copy_ups_are_forgotten_with_the_writable_layer(docker):
    """discard_on=stop: a stop discards the writable layer, its copy-ups and its changes."""
    docker.create("app:1", name="web", start=True, discard_on="stop")
    docker.write_file("web", "/etc/hosts", b"x")
    docker.stop("web")
    _, c = _c(docker, "web")
    assert (c.copy_ups, c.rw, c.rw_generation) == ({}, {}, 2)
    assert _cat(docker, "web", "/etc/hosts") == b"127.0.0.1 localhost\n"


# -- volumes and binds --------------------------------------------------------------------


def test_an_empty_volume_over_image_content_is_populated_at_create(docker):
    """db:1's VOLUME /var/lib/db becomes an anonymous volume holding a copy of schema.sql."""
    docker.create("db:1", name="db", start=True)
    host, c = _c(docker, "db")
    (m,) = c.mounts
    vol = host.volumes[m.source]
    assert vol.anonymous
    assert sorted(vol.files) == ["/schema.sql"]
    assert views.where(host, c, "/var/lib/db/schema.sql") == f"volume:{m.source}"
    assert _cat(docker, "db", "/var/lib/db/schema.sql") == b"CREATE TABLE t (x int);\n"


def test_a_volume_is_populated_once_and_later_containers_see_its_data(docker):
    """A named volume over /srv gets the image's index.html once; a change survives the container."""
    docker.create("app:1", name="one", volumes=["site:/srv"], start=True)
    docker.write_file("one", "/srv/index.html", b"changed")
    docker.remove("one", force=True)
    docker.create("app:1", name="two", volumes=["site:/srv"], start=True)
    assert _cat(docker, "two", "/srv/index.html") == b"changed"
    types = [e.type for e in docker.log.read()]
    assert types.count("VolumePopulated") == 1


def test_nocopy_leaves_the_volume_empty_and_hides_the_image_content(docker):
    """-v site:/srv:nocopy: the volume stays empty and the image's /srv is not visible."""
    docker.create("app:1", name="web", volumes=["site:/srv:nocopy"], start=True)
    host, c = _c(docker, "web")
    assert host.volumes["site"].files == {}
    assert _names(host, c, "/srv") == []
    assert host.lookup(c, "/srv/index.html") is None


def test_a_bind_mount_hides_image_content_and_writes_to_the_host(docker):
    """A bind over /app/lib shows the host dir; writes land on the host, not in the writable layer."""
    docker.host_mkdir("/host/lib", parents=True)
    docker.host_write("/host/lib/hl.py", b"host")
    docker.create("app:1", name="web", volumes=["/host/lib:/app/lib"], start=True)
    docker.write_file("web", "/app/lib/x.py", b"x")
    host, c = _c(docker, "web")
    assert _names(host, c, "/app/lib") == ["hl.py", "x.py"]
    assert host.lookup(c, "/app/lib/util.py") is None
    assert sorted(host.host_files) == ["/host", "/host/lib", "/host/lib/hl.py", "/host/lib/x.py"]
    assert c.rw == {}
    assert views.where(host, c, "/app/lib/x.py") == "bind:/host/lib"
    assert views.container_diff(host, c) == []


def test_nested_mounts_the_longest_target_wins(docker):
    """A volume at /data, a bind at /data/sub and a tmpfs at /data/sub/cache each serve their paths."""
    docker.create(
        "app:1",
        name="web",
        volumes=["vol1:/data", "/host/sub:/data/sub"],
        tmpfs=["/data/sub/cache"],
        start=True,
    )
    docker.write_file("web", "/data/a", b"a")
    docker.write_file("web", "/data/sub/b", b"b")
    docker.write_file("web", "/data/sub/cache/c", b"c")
    host, c = _c(docker, "web")
    assert sorted(host.volumes["vol1"].files) == ["/a"]
    assert sorted(host.host_files) == ["/host", "/host/sub", "/host/sub/b"]
    assert sorted(c.tmpfs["/data/sub/cache"]) == ["/c"]
    assert _names(host, c, "/data") == ["a", "sub"]
    assert _names(host, c, "/data/sub") == ["b", "cache"]
    assert [views.where(host, c, p) for p in ("/data/a", "/data/sub/b", "/data/sub/cache/c")] == [
        "volume:vol1",
        "bind:/host/sub",
        "tmpfs",
    ]


def test_mount_points_the_image_lacks_appear_with_their_parents(docker):
    """A tmpfs at /run/deep/tmp: /run and /run/deep are directories a process can list."""
    docker.create("app:1", name="web", tmpfs=["/run/deep/tmp"], start=True)
    host, c = _c(docker, "web")
    assert "run" in _names(host, c, "/")
    assert _names(host, c, "/run") == ["deep"]
    assert _names(host, c, "/run/deep") == ["tmp"]
    assert host.lookup(c, "/run").kind == DIR


def test_a_read_only_mount_refuses_writes_and_records_nothing(docker):
    """vol1 mounted read-only refuses a write (EROFS); another container writes it read-write."""
    docker.create("app:1", name="writer", volumes=["vol1:/data"], start=True)
    docker.create("app:1", name="reader", volumes=["vol1:/mnt/ro:ro"], start=True)
    head = docker.log.head().seq
    with pytest.raises(FileSystemError, match="Read-only file system"):
        docker.write_file("reader", "/mnt/ro/x", b"x")
    with pytest.raises(FileSystemError, match="Read-only file system"):
        docker.mkdir("reader", "/mnt/ro/d")
    assert docker.log.head().seq == head
    docker.write_file("writer", "/data/x", b"shared")
    assert _cat(docker, "reader", "/mnt/ro/x") == b"shared"


def test_mv_onto_a_non_empty_dir_in_a_volume_is_refused(docker):
    """rename(2) onto a directory that has entries fails (ENOTEMPTY), inside a volume too."""
    docker.create("app:1", name="web", volumes=["vol1:/data"], start=True)
    docker.write_file("web", "/data/a/x", b"x")
    docker.write_file("web", "/data/b/y", b"y")
    head = docker.log.head().seq
    with pytest.raises(FileSystemError, match="Directory not empty"):
        docker.rename("web", "/data/a", "/data/b")
    assert docker.log.head().seq == head


def test_a_read_only_bind_refuses_writes(docker):
    """--mount type=bind,readonly: the host path can be read but not written through it."""
    docker.host_write("/etc-host/conf", b"c")
    docker.create(
        "app:1",
        name="web",
        mounts=["type=bind,source=/etc-host,target=/conf,readonly"],
        start=True,
    )
    with pytest.raises(FileSystemError, match="Read-only file system"):
        docker.delete("web", "/conf/conf")
    assert _cat(docker, "web", "/conf/conf") == b"c"


def test_a_symlink_is_followed_when_reading(docker):
    """/bin/sh -> busybox (a relative target): cat reads busybox."""
    docker.create("app:1", name="web", start=True)
    assert _cat(docker, "web", "/bin/sh") == b"\x7fELF busybox"


# -- docker diff ------------------------------------------------------------------------------


def test_diff_of_added_changed_and_deleted_paths(docker):
    """A new dir and its files are A, a changed image file is C, parents of changes are C."""
    docker.create("app:1", name="web", start=True)
    docker.write_file("web", "/opt/tool/bin/run", b"#!")
    docker.write_file("web", "/var/log/app.log", b"log")
    docker.write_file("web", "/etc/hosts", b"::1 localhost\n")
    docker.delete("web", "/srv/index.html")
    host, c = _c(docker, "web")
    assert views.container_diff(host, c) == [
        ("C", "/etc"),
        ("C", "/etc/hosts"),
        ("A", "/opt"),
        ("A", "/opt/tool"),
        ("A", "/opt/tool/bin"),
        ("A", "/opt/tool/bin/run"),
        ("C", "/srv"),
        ("D", "/srv/index.html"),
        ("C", "/var"),
        ("C", "/var/log"),
        ("A", "/var/log/app.log"),
    ]


def test_diff_ignores_a_dir_chmod_to_the_same_mode_and_shows_a_new_mode(docker):
    """Directories compare by mode and owner only: same mode, nothing; a new mode, C."""
    docker.create("app:1", name="web", start=True)
    docker.chmod("web", "/srv", 0o755)
    host, c = _c(docker, "web")
    assert views.container_diff(host, c) == []
    docker.chmod("web", "/srv", 0o700)
    host, c = _c(docker, "web")
    assert views.container_diff(host, c) == [("C", "/srv")]


def test_diff_does_not_list_changes_in_volumes_binds_or_tmpfs(docker):
    """Only the writable layer is compared: a volume, a bind or a tmpfs write is not a change."""
    docker.create(
        "app:1", name="web", volumes=["vol1:/data", "/host/x:/x"], tmpfs=["/tmp"], start=True
    )
    for path in ("/data/a", "/x/b", "/tmp/c"):
        docker.write_file("web", path, b"z")
    host, c = _c(docker, "web")
    assert views.container_diff(host, c) == []


def test_diff_of_a_renamed_file_and_a_file_replacing_a_dir(docker):
    """mv of an image file is D of the old path and A of the new one; a file over a dir is C."""
    docker.create("app:1", name="web", start=True)
    docker.rename("web", "/app/main.py", "/app/app.py")
    docker.delete("web", "/var/lib/data", recursive=True)
    docker.write_file("web", "/var/lib/data", b"now a file")
    host, c = _c(docker, "web")
    assert views.container_diff(host, c) == [
        ("C", "/app"),
        ("A", "/app/app.py"),
        ("D", "/app/main.py"),
        ("C", "/var"),
        ("C", "/var/lib"),
        ("C", "/var/lib/data"),
    ]


def test_diff_of_a_stopped_container_depends_on_the_policy(docker):
    """discard_on=remove keeps the changes for docker diff after stop; discard_on=stop does not."""
    docker.create("app:1", name="keep", start=True, discard_on="remove")
    docker.create("app:1", name="drop", start=True, discard_on="stop")
    for name in ("keep", "drop"):
        docker.write_file(name, "/new", b"n")
        docker.stop(name)
    r = reader(docker)
    assert r.diff("keep") == [("A", "/new")]
    assert r.diff("drop") == []


# -- system df --------------------------------------------------------------------------------


def _image(docker: DockerHost, name: str, layers: list[tuple[str, int]]) -> str:
    """Register an image whose layers (by diff_id seed and size) hold one small file each."""
    specs = []
    for seed, size in layers:
        diff_id = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
        chunks = tuple(docker.log.write(lambda tx, s=seed: tx.put_blob(s.encode())))
        specs.append((diff_id, [(f"/{seed}", Entry(FILE, 0o644, len(seed), chunks))], size))
    config = json.dumps({"rootfs": {"diff_ids": [s[0] for s in specs]}, "n": name}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    docker.register_image(config=config, image_id=image_id, layers=specs, tags=[name])
    return image_id


def test_disk_usage_of_images_sharing_a_base_layer():
    """Per image: SIZE = its layers, SHARED = layers another image has too, UNIQUE = the rest."""
    docker = new_host()
    df0 = views.disk_usage(_c_host(docker))
    base = _image(docker, "base:1", [("base", 1000)])
    web = _image(docker, "web:1", [("base", 1000), ("web", 300)])
    api = _image(docker, "api:1", [("base", 1000), ("api", 50)])
    lone = _image(docker, "lone:1", [("lone", 7)])
    docker.create("web:1", name="web", start=True)
    docker.create("web:1", name="web2")
    docker.create("lone:1", name="lone")
    df = views.disk_usage(_c_host(docker))
    usage = {i.image_id: i for i in df.images}
    assert (usage[base].size, usage[base].shared_size, usage[base].unique_size) == (1000, 1000, 0)
    assert (usage[web].size, usage[web].shared_size, usage[web].unique_size) == (1300, 1000, 300)
    assert (usage[api].size, usage[api].shared_size, usage[api].unique_size) == (1050, 1000, 50)
    assert (usage[lone].size, usage[lone].shared_size, usage[lone].unique_size) == (7, 0, 7)
    assert (usage[web].containers, usage[api].containers, usage[lone].containers) == (2, 0, 1)
    # distinct layers, each counted once
    assert df.images_size == df0.images_size + 1000 + 300 + 50 + 7
    assert df.images_active == 2
    # Docker <= 28: SIZE - sum(SIZE - SHARED) over images in use
    assert df.images_reclaimable == df.images_size - (300 + 7)


def _c_host(docker: DockerHost) -> Host:
    return Projector(docker.log, every=0).state_at().host


def test_disk_usage_of_containers_and_volumes(docker):
    """Containers: SizeRw, active = running or paused; volumes: size, links, unused reclaimable."""
    docker.create("app:1", name="run", volumes=["vol1:/data"], start=True)
    docker.create("app:1", name="paused", start=True)
    docker.create("app:1", name="stopped", start=True, discard_on="remove")
    docker.volume_create("idle")
    docker.write_file("run", "/a", b"12345")
    docker.write_file("run", "/etc/hosts", b"123")  # a copy-up counts its new size
    docker.write_file("run", "/data/v", b"1234567")
    docker.write_file("paused", "/b", b"12")
    docker.write_file("stopped", "/c", b"1234")
    docker.pause("paused")
    docker.stop("stopped")
    df = reader(docker).df()
    sizes = {c.name: s for c, s in df.containers}
    assert sizes == {"run": 8, "paused": 2, "stopped": 4}
    assert (df.containers_size, df.containers_active, df.containers_reclaimable) == (14, 2, 4)
    vols = {v.name: (s, len(v.refs)) for v, s in df.volumes}
    assert vols == {"vol1": (7, 1), "idle": (0, 0)}
    assert (df.volumes_size, df.volumes_active, df.volumes_reclaimable) == (7, 1, 0)
    docker.remove("run", force=True)
    df = reader(docker).df()
    assert (df.volumes_active, df.volumes_reclaimable) == (0, 7)
