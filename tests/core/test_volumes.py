"""Volumes and binds: create, rm, prune, how containers get them, population (docker-semantics.md 6, 7)."""

from __future__ import annotations

import re

import pytest

from dockstate.core.commands import ANONYMOUS_LABEL, DockerHost
from dockstate.core.errors import (
    BindSourceMissingError,
    ConflictError,
    InvalidMountError,
    InvalidVolumeNameError,
    NoSuchVolumeError,
    VolumeInUseError,
)
from dockstate.core.state import Container, Host
from dockstate.eventlog import LmdbEventLog
from tests.core.helpers import fingerprint, fold, read_file, types_since

HEX64 = re.compile(r"^[0-9a-f]{64}$")
INVALID_CHARS = (
    'create {name}: "{name}" includes invalid characters for a local volume name, only '
    '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
    "use absolute path"
)
TOO_SHORT = (
    "create {name}: volume name is too short, names should be at least two alphanumeric characters"
)


def container(docker: DockerHost, name: str) -> tuple[Host, Container]:
    host = docker.state()
    (c,) = [c for c in host.containers.values() if c.name == name]
    return host, c


def anonymous(host: Host) -> set[str]:
    return {n for n, v in host.volumes.items() if v.anonymous}


class TestVolumeCreate:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("x", TOO_SHORT),
            ("_", TOO_SHORT),
            ("my vol", INVALID_CHARS),
            ("-lead", INVALID_CHARS),
            ("a/b", INVALID_CHARS),
            ("data:ro", INVALID_CHARS),
        ],
    )
    def test_a_bad_name_is_refused_with_dockers_message(
        self, docker: DockerHost, store: LmdbEventLog, name: str, message: str
    ):
        """Volume names follow ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``; a 1-char name is "too short"."""
        head = store.head()

        with pytest.raises(InvalidVolumeNameError) as info:
            docker.volume_create(name)

        assert str(info.value) == message.format(name=name)
        assert store.head() == head

    @pytest.mark.parametrize("name", ["ab", "my-vol", "my_vol.2", "0data", "A9"])
    def test_a_valid_name_is_created(self, docker: DockerHost, store: LmdbEventLog, name: str):
        """A valid name records one VolumeCreated with the local driver."""
        head = store.head().seq

        assert docker.volume_create(name) == name

        (event,) = list(store.read(head + 1))
        assert (event.type, event.data["name"], event.data["driver"]) == (
            "VolumeCreated",
            name,
            "local",
        )
        vol = docker.state().volumes[name]
        assert vol.mountpoint == f"/var/lib/docker/volumes/{name}/_data"
        assert not vol.anonymous

    def test_a_named_volume_source_of_v_follows_the_same_rule(self, docker: DockerHost):
        """``-v x:/data`` is refused as ``volume create x`` is."""
        with pytest.raises(InvalidVolumeNameError, match=re.escape(TOO_SHORT.format(name="x"))):
            docker.create("app:1", volumes=["x:/data"])

    def test_creating_an_existing_name_is_a_no_op(self, docker: DockerHost, store: LmdbEventLog):
        """``volume create`` of a name that exists returns it and records nothing."""
        docker.volume_create("data", labels={"a": "1"})
        head = store.head()

        assert docker.volume_create("data") == "data"

        assert store.head() == head
        assert docker.state().volumes["data"].labels == {"a": "1"}

    def test_the_same_name_on_another_driver_is_a_conflict(self, docker: DockerHost):
        """A name is unique across drivers."""
        docker.volume_create("data")

        with pytest.raises(ConflictError) as info:
            docker.volume_create("data", driver="nfs")

        assert str(info.value) == (
            "create data: volume name must be unique: driver 'local' already has volume 'data'"
        )

    def test_without_a_name_a_volume_gets_a_64_hex_name(self, docker: DockerHost):
        """``docker volume create`` with no name makes a random 64-hex name."""
        name = docker.volume_create()

        assert HEX64.match(name)
        assert name in docker.state().volumes


class TestVolumeRemove:
    @pytest.mark.parametrize("stopped", [False, True])
    def test_a_volume_used_by_a_container_cannot_be_removed(
        self, docker: DockerHost, store: LmdbEventLog, stopped: bool
    ):
        """A running or stopped (not removed) container keeps its volume in use."""
        first = docker.create("app:1", name="one", volumes=["data:/data"], start=True)
        second = docker.create("app:1", name="two", volumes=["data:/data"])
        if stopped:
            docker.stop("one")
        before = fingerprint(store)

        with pytest.raises(VolumeInUseError) as info:
            docker.volume_remove(["data"])

        assert str(info.value) == f"remove data: volume is in use - [{first}, {second}]"
        assert fingerprint(store) == before

    def test_a_volume_is_free_once_its_containers_are_removed(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """``rm`` of the container releases the reference; then the volume can go."""
        docker.create("app:1", name="one", volumes=["data:/data"], start=True)
        docker.remove("one", force=True)
        head = store.head().seq

        assert docker.volume_remove(["data"]) == ["data"]

        assert types_since(store, head) == ["VolumeRemoved"]
        assert "data" not in docker.state().volumes

    def test_a_missing_volume_cannot_be_removed(self, docker: DockerHost, store: LmdbEventLog):
        """``volume rm`` of an unknown name says ``get NAME: no such volume`` and removes nothing."""
        docker.volume_create("keep")
        head = store.head()

        with pytest.raises(NoSuchVolumeError) as info:
            docker.volume_remove(["keep", "nope"])

        assert str(info.value) == "get nope: no such volume"
        assert store.head() == head
        assert "keep" in docker.state().volumes

    def test_force_ignores_missing_volumes(self, docker: DockerHost):
        """``volume rm -f`` skips names that do not exist and removes the rest."""
        docker.volume_create("real")

        assert docker.volume_remove(["nope", "real", "real"], force=True) == ["real"]

    def test_force_does_not_remove_a_volume_in_use(self, docker: DockerHost):
        """``-f`` is about missing volumes, not references."""
        docker.create("app:1", name="one", volumes=["data:/data"])

        with pytest.raises(VolumeInUseError):
            docker.volume_remove(["data"], force=True)


class TestVolumePrune:
    def test_prune_removes_only_unused_anonymous_volumes(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """By default prune keeps named volumes and volumes a container (even stopped) uses."""
        docker.volume_create("named")
        docker.create("app:1", name="gone", volumes=["/scratch"], start=True)
        docker.write_file("gone", "/scratch/f", b"12345")
        (loose,) = anonymous(docker.state())
        docker.remove("gone", force=True)
        docker.create("app:1", name="kept", volumes=["/scratch"], start=True)
        docker.stop("kept")
        (used,) = anonymous(docker.state()) - {loose}

        names, reclaimed = docker.volume_prune()

        assert (names, reclaimed) == ([loose], 5)
        assert set(docker.state().volumes) == {"named", used}

    def test_prune_all_also_removes_unused_named_volumes(self, docker: DockerHost):
        """``prune -a`` takes unused named volumes too, but never used ones."""
        docker.volume_create("unused")
        docker.create("app:1", name="user", volumes=["used:/data"])

        names, _ = docker.volume_prune(all_volumes=True)

        assert names == ["unused"]
        assert set(docker.state().volumes) == {"used"}

    def test_prune_skips_volumes_with_driver_options(self, docker: DockerHost):
        """Volumes created with ``-o`` options are not prune candidates."""
        docker.volume_create("tuned", options={"type": "tmpfs", "device": "tmpfs"})
        docker.volume_create("plain")

        names, _ = docker.volume_prune(all_volumes=True)

        assert names == ["plain"]
        assert "tuned" in docker.state().volumes

    def test_prune_with_nothing_to_remove_records_nothing(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """An empty prune appends no event."""
        docker.volume_create("named")
        head = store.head()

        assert docker.volume_prune() == ([], 0)
        assert store.head() == head


class TestHowContainersGetVolumes:
    def test_v_name_creates_a_missing_named_volume(self, docker: DockerHost, store: LmdbEventLog):
        """``-v name:/path`` creates the named volume at container create if it is missing."""
        head = store.head().seq

        cid = docker.create("app:1", volumes=["data:/data"])

        assert types_since(store, head) == ["VolumeCreated", "ContainerCreated"]
        host = docker.state()
        vol = host.volumes["data"]
        assert (vol.anonymous, vol.labels, list(vol.refs)) == (False, {}, [cid])

    def test_v_name_reuses_an_existing_volume(self, docker: DockerHost, store: LmdbEventLog):
        """An existing named volume is mounted as it is, not created again."""
        docker.volume_create("data")
        head = store.head().seq

        docker.create("app:1", volumes=["data:/data"])

        assert types_since(store, head) == ["ContainerCreated"]

    @pytest.mark.parametrize(
        "how",
        [{"volumes": ["/scratch"]}, {"mounts": ["type=volume,target=/scratch"]}],
        ids=["-v /path", "--mount without source"],
    )
    def test_a_volume_without_a_source_is_anonymous(self, docker: DockerHost, how):
        """A volume mount with no source gets a fresh 64-hex volume labelled anonymous."""
        cid = docker.create("app:1", **how)

        host = docker.state()
        (name,) = anonymous(host)
        assert HEX64.match(name)
        assert host.volumes[name].labels == {ANONYMOUS_LABEL: ""}
        (mount,) = host.containers[cid].mounts
        assert (mount.source, mount.target, mount.anonymous) == (name, "/scratch", True)

    def test_each_container_gets_its_own_anonymous_volume(self, docker: DockerHost):
        """Anonymous volumes are never shared by accident."""
        docker.create("app:1", volumes=["/scratch"])
        docker.create("app:1", volumes=["/scratch"])

        assert len(anonymous(docker.state())) == 2

    def test_an_image_volume_becomes_an_anonymous_volume(self, docker: DockerHost):
        """An image ``VOLUME`` is mounted as a fresh anonymous volume."""
        cid = docker.create("db:1", name="db")

        host = docker.state()
        (name,) = anonymous(host)
        assert HEX64.match(name)
        assert host.volumes[name].labels == {ANONYMOUS_LABEL: ""}
        assert [m.target for m in host.containers[cid].mounts] == ["/var/lib/db"]

    def test_an_image_volume_gives_way_to_a_mount_at_its_target(self, docker: DockerHost):
        """Something mounted at the image VOLUME's path replaces the anonymous volume."""
        cid = docker.create("db:1", name="db", volumes=["dbdata:/var/lib/db"])

        host = docker.state()
        assert anonymous(host) == set()
        assert [(m.source, m.target) for m in host.containers[cid].mounts] == [
            ("dbdata", "/var/lib/db")
        ]

    def test_a_volume_cannot_be_mounted_over_an_image_file(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """A volume target that is a file in the image is refused."""
        head = store.head()

        with pytest.raises(InvalidMountError) as info:
            docker.create("app:1", volumes=["data:/etc/hosts"])

        assert str(info.value) == "cannot mount volume over existing file, file exists /etc/hosts"
        assert store.head() == head


class TestPopulation:
    def test_a_new_volume_over_image_content_is_populated_at_create(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """An empty volume mounted where the image has files gets a copy of them, once, at create."""
        head = store.head().seq

        cid = docker.create("app:1", name="web", volumes=["data:/var/lib/data"], start=True)

        assert types_since(store, head) == [
            "VolumeCreated",
            "ContainerCreated",
            "VolumePopulated",
            "ContainerStarted",
        ]
        populated = next(e for e in store.read(head + 1) if e.type == "VolumePopulated")
        assert dict(populated.data) == {"name": "data", "container": cid, "target": "/var/lib/data"}
        assert set(docker.state().volumes["data"].files) == {"/seed.txt"}
        assert read_file(docker, "web", "/var/lib/data/seed.txt") == b"seed data\n"

    def test_an_existing_empty_volume_is_populated(self, docker: DockerHost):
        """A volume created empty beforehand is populated too."""
        docker.volume_create("data")

        docker.create("app:1", volumes=["data:/var/lib/data"])

        assert set(docker.state().volumes["data"].files) == {"/seed.txt"}

    def test_an_image_volume_is_populated_with_the_images_content(self, docker: DockerHost):
        """The db image's VOLUME gets the schema file the image ships there."""
        docker.create("db:1", name="db", start=True)

        (name,) = anonymous(docker.state())
        assert set(docker.state().volumes[name].files) == {"/schema.sql"}
        assert read_file(docker, "db", "/var/lib/db/schema.sql") == b"CREATE TABLE t (x int);\n"

    @pytest.mark.parametrize(
        "how",
        [
            {"volumes": ["data:/var/lib/data:nocopy"]},
            {"mounts": ["type=volume,source=data,target=/var/lib/data,volume-nocopy"]},
            {"mounts": ["type=volume,source=data,target=/var/lib/data,volume-nocopy=true"]},
        ],
        ids=["-v nocopy", "--mount volume-nocopy", "--mount volume-nocopy=true"],
    )
    def test_nocopy_leaves_the_volume_empty(self, docker: DockerHost, store: LmdbEventLog, how):
        """With nocopy the empty volume stays empty and hides the image content."""
        head = store.head().seq

        docker.create("app:1", name="web", start=True, **how)

        assert "VolumePopulated" not in types_since(store, head)
        assert docker.state().volumes["data"].files == {}
        assert read_file(docker, "web", "/var/lib/data/seed.txt") is None

    def test_a_volume_with_content_is_not_populated(self, docker: DockerHost, store: LmdbEventLog):
        """A volume that already has an entry just hides the image content."""
        docker.create("app:1", name="writer", volumes=["data:/mnt"], start=True)
        docker.write_file("writer", "/mnt/mine.txt", b"mine")
        head = store.head().seq

        docker.create("app:1", name="web", volumes=["data:/var/lib/data"], start=True)

        assert "VolumePopulated" not in types_since(store, head)
        assert set(docker.state().volumes["data"].files) == {"/mine.txt"}
        assert read_file(docker, "web", "/var/lib/data/seed.txt") is None
        assert read_file(docker, "web", "/var/lib/data/mine.txt") == b"mine"

    def test_a_volume_over_a_missing_image_path_is_not_populated(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Nothing to copy where the image has nothing."""
        head = store.head().seq

        docker.create("app:1", volumes=["data:/nothing/here"])

        assert "VolumePopulated" not in types_since(store, head)

    def test_population_happens_only_at_create(self, docker: DockerHost, store: LmdbEventLog):
        """A populated volume emptied later is not filled again at start."""
        docker.create("app:1", name="web", volumes=["data:/var/lib/data"], start=True)
        docker.delete("web", "/var/lib/data/seed.txt")
        docker.stop("web")
        head = store.head().seq

        docker.start("web")

        assert types_since(store, head) == ["ContainerStarted"]
        assert docker.state().volumes["data"].files == {}

    def test_population_replays_to_the_same_files(self, docker: DockerHost, store: LmdbEventLog):
        """A VolumePopulated event folds to the same volume contents on replay."""
        docker.create("app:1", volumes=["data:/var/lib/data"])

        assert fold(store).volumes["data"].files == docker.state().volumes["data"].files


class TestBindMounts:
    def test_a_bind_hides_the_image_content_below_it(self, docker: DockerHost):
        """Image files under a bind target are obscured, never copied to the host."""
        docker.create("app:1", name="web", volumes=["/host/www:/srv"], start=True)

        host, c = container(docker, "web")
        assert host.lookup(c, "/srv/index.html") is None
        assert host.lookup(c, "/srv") is not None
        assert set(host.host_files) == {"/host", "/host/www"}  # nothing copied to the host

    def test_v_bind_creates_a_missing_host_directory(self, docker: DockerHost, store: LmdbEventLog):
        """``-v /host/path:/ctr`` makes the missing host directory (and its parents)."""
        head = store.head().seq

        docker.create("app:1", volumes=["/host/www:/srv"])

        assert types_since(store, head) == ["HostDirCreated", "HostDirCreated", "ContainerCreated"]
        assert {p: e.kind for p, e in docker.state().host_files.items()} == {
            "/host": "d",
            "/host/www": "d",
        }

    def test_mount_bind_with_a_missing_source_is_refused(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """``--mount type=bind`` does not create its source: Docker's error, and nothing recorded."""
        before = fingerprint(store)

        with pytest.raises(BindSourceMissingError) as info:
            docker.create("app:1", name="web", mounts=["type=bind,source=/nope,target=/srv"])

        assert str(info.value) == (
            'invalid mount config for type "bind": bind source path does not exist: /nope'
        )
        assert fingerprint(store) == before

    def test_mount_bind_create_src_creates_the_source(self, docker: DockerHost):
        """``bind-create-src`` asks for the missing source to be created."""
        docker.create("app:1", mounts=["type=bind,source=/made,target=/srv,bind-create-src"])

        assert "/made" in docker.state().host_files

    def test_a_bind_shows_the_hosts_files(self, docker: DockerHost):
        """Files already on the host are what the container sees at the target."""
        docker.host_write("/host/conf/app.ini", b"[app]\n")

        docker.create(
            "app:1", name="web", mounts=["type=bind,src=/host/conf,dst=/etc/app"], start=True
        )

        assert read_file(docker, "web", "/etc/app/app.ini") == b"[app]\n"


class TestRemovalWithTheContainer:
    def test_rm_keeps_all_volumes(self, docker: DockerHost):
        """Plain ``rm`` leaves named and anonymous volumes alone."""
        docker.create("app:1", name="web", volumes=["named:/n", "/anon"])
        (anon,) = anonymous(docker.state())

        docker.remove("web")

        assert set(docker.state().volumes) == {"named", anon}
        assert all(not v.refs for v in docker.state().volumes.values())

    def test_rm_v_removes_anonymous_volumes_only(self, docker: DockerHost, store: LmdbEventLog):
        """``rm -v`` removes the container's anonymous volumes, and keeps named ones."""
        docker.create("db:1", name="db", volumes=["named:/n", "/anon"])
        head = store.head().seq

        docker.remove("db", volumes=True)

        assert types_since(store, head) == ["ContainerRemoved", "VolumeRemoved", "VolumeRemoved"]
        assert set(docker.state().volumes) == {"named"}

    def test_rm_v_keeps_an_anonymous_volume_another_container_uses(self, docker: DockerHost):
        """Docker ignores "volume in use" at ``rm -v``: a shared anonymous volume survives."""
        docker.create("app:1", name="first", volumes=["/anon"])
        (anon,) = anonymous(docker.state())
        second = docker.create("app:1", name="second", volumes=[f"{anon}:/shared"])

        docker.remove("first", volumes=True)

        vol = docker.state().volumes[anon]
        assert list(vol.refs) == [second]

    @pytest.mark.parametrize("how", ["stop", "kill"])
    def test_auto_remove_removes_the_container_and_its_anonymous_volumes_when_it_stops(
        self, docker: DockerHost, store: LmdbEventLog, how: str
    ):
        """``--rm``: when the container exits it is removed, with its anonymous volumes only."""
        cid = docker.create(
            "db:1", name="tmp", auto_remove=True, volumes=["named:/n", "/anon"], start=True
        )
        head = store.head().seq

        getattr(docker, how)("tmp")

        stopped = "ContainerStopped" if how == "stop" else "ContainerKilled"
        assert types_since(store, head) == [
            stopped,
            "ContainerRemoved",
            "VolumeRemoved",
            "VolumeRemoved",
        ]
        host = docker.state()
        assert cid in host.removed
        assert "tmp" not in host.names
        assert set(host.volumes) == {"named"}
        assert fold(store).volumes.keys() == {"named"}

    def test_auto_remove_does_not_act_on_restart(self, docker: DockerHost):
        """A restart is not an exit: the ``--rm`` container stays."""
        cid = docker.create("app:1", name="tmp", auto_remove=True, start=True)

        docker.restart("tmp")

        assert docker.state().containers[cid].state == "running"

    def test_auto_remove_frees_the_name(self, docker: DockerHost):
        """Once a ``--rm`` container is gone its name can be used again."""
        docker.create("app:1", name="tmp", auto_remove=True, start=True)
        docker.stop("tmp")

        docker.create("app:1", name="tmp")
