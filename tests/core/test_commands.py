"""DockerHost as a whole (core.commands): provenance, the write model, images, the simulated host."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.core import fs
from dockstate.core.commands import DockerHost, _check_path
from dockstate.core.errors import (
    ConflictError,
    FileSystemError,
    ImageInUseError,
    InvalidParameterError,
    NoSuchImageError,
)
from dockstate.core.names import RandomIds
from dockstate.core.state import Host
from dockstate.eventlog import InMemoryEventLog, LmdbEventLog
from tests.conftest import FakeClock
from tests.core.conftest import SESSION
from tests.core.helpers import (
    APP_IMAGE,
    DB_IMAGE,
    ImageSpec,
    d,
    f,
    fold,
    read_file,
    register_image,
    types_since,
)


class TestProvenance:
    def test_every_event_carries_the_session_and_the_command_that_made_it(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Each command's events record the host's session and the command's name and arguments."""
        steps: list[tuple[Callable[[], Any], str, dict[str, Any]]] = [
            (lambda: docker.volume_create("data"), "volume create", {"name": "data"}),
            (
                lambda: docker.create(
                    "app:1", name="web", volumes=["data:/var/lib/data"], start=True
                ),
                "run",
                {"image": "app:1", "name": "web", "volumes": ("data:/var/lib/data",)},
            ),
            (
                lambda: docker.write_file("web", "/etc/hosts", b"x", append=True),
                "append",
                {"container": "web", "path": "/etc/hosts", "size": 1},
            ),
            (lambda: docker.write_file("web", "/a/b", b"xy"), "write", {"path": "/a/b", "size": 2}),
            (lambda: docker.mkdir("web", "/m"), "mkdir", {"path": "/m", "parents": False}),
            (lambda: docker.chmod("web", "/a/b", 0o600), "chmod", {"mode": 0o600}),
            (lambda: docker.rename("web", "/a/b", "/a/c"), "mv", {"path": "/a/b", "dest": "/a/c"}),
            (lambda: docker.delete("web", "/a/c"), "rm", {"path": "/a/c", "recursive": False}),
            (lambda: docker.pause("web"), "pause", {"container": "web"}),
            (lambda: docker.unpause("web"), "unpause", {"container": "web"}),
            (lambda: docker.restart("web"), "restart", {"container": "web"}),
            (lambda: docker.kill("web", "TERM"), "kill", {"container": "web", "signal": "TERM"}),
            (lambda: docker.start("web"), "start", {"container": "web"}),
            (lambda: docker.stop("web"), "stop", {"container": "web"}),
            (
                lambda: docker.remove("web", volumes=True),
                "rm",
                {"container": "web", "force": False, "volumes": True},
            ),
            (lambda: docker.volume_remove(["data"]), "volume rm", {"names": ("data",)}),
            (lambda: docker.host_mkdir("/srv"), "host mkdir", {"path": "/srv"}),
            (
                lambda: docker.host_write("/srv/f", b"abc"),
                "host write",
                {"path": "/srv/f", "size": 3},
            ),
            (lambda: docker.set_default_discard("remove"), "config", {"discard_on": "remove"}),
            (lambda: docker.tag("app:1", "app:latest"), "image tag", {"source": "app:1"}),
            (lambda: docker.volume_prune(all_volumes=True), "volume prune", {"all": True}),
        ]
        docker.create("app:1", name="keeper", volumes=["/anon"])
        docker.remove("keeper")

        # The log returns msgpack arrays as tuples.
        for run, name, args in steps:
            head = store.head().seq
            run()
            new = list(store.read(head + 1))
            assert new, name
            for env in new:
                assert env.session == SESSION
                assert env.command is not None
                assert env.command.name == name
                assert {k: env.command.args[k] for k in args} == args, name

        assert all(e.session == SESSION and e.cmd is not None for e in store.read())

    def test_image_registration_records_its_command(self, docker: DockerHost, store: LmdbEventLog):
        """``image load`` is the default command name of registered layers and images."""
        for env in store.read(1, 4):
            assert env.command is not None
            assert env.command.name == "image load"
            assert env.session == SESSION

    def test_a_recorded_time_is_used_for_the_next_command_only(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """``next_ts`` (replay keeps recorded times) stamps one command's events, then is cleared."""
        docker.next_ts = store.head().ts + 5_000_000_000

        docker.create("app:1", name="web")
        docker.create("app:1", name="web2")

        envs = list(store.read())
        assert envs[-2].ts == docker.state().containers[docker.state().names["web"]].created
        assert envs[-2].ts - envs[-3].ts == 5_000_000_000
        assert envs[-1].ts < envs[-2].ts + 5_000_000_000


class TestWriteModel:
    def test_the_state_stays_readable_after_its_transaction(self, store: LmdbEventLog):
        """``state()`` returns a Host that can still read image layers it had not read yet."""
        docker = DockerHost(store, ids=RandomIds(random.Random(2)))
        image = register_image(docker, APP_IMAGE)
        host = docker.state()

        lower = host.layer_cache.flattened(host.images[image].top_chain, host.layers)

        assert "/app/main.py" in lower

    def test_two_hosts_on_one_store_see_each_others_commands(self, store: LmdbEventLog):
        """A DockerHost validates against the head, including what another host appended."""
        one = DockerHost(store, ids=RandomIds(random.Random(1)), session="one")
        two = DockerHost(store, ids=RandomIds(random.Random(2)), session="two")
        register_image(one, APP_IMAGE)
        one.state()

        cid = two.create("app:1", name="web", start=True)

        assert one.stop("web") == cid
        assert two.state().containers[cid].state == "exited"
        assert {e.session for e in store.read()} == {"one", "two"}

    def test_a_refused_command_leaves_the_model_as_the_log(self, docker: DockerHost):
        """After a refusal the next command still sees exactly the log's state."""
        docker.create("app:1", name="web", start=True)
        with pytest.raises(FileSystemError):
            docker.mkdir("web", "/x/y")

        docker.mkdir("web", "/x")

        _assert_same(docker.state(), fold(docker.log))

    def test_works_on_the_in_memory_log(self):
        """DockerHost needs only the EventLog interface."""
        docker = DockerHost(InMemoryEventLog(clock=FakeClock()), ids=RandomIds(random.Random(1)))
        register_image(docker, APP_IMAGE)

        docker.create("app:1", name="web", start=True)
        docker.write_file("web", "/etc/hosts", b"x")

        assert read_file(docker, "web", "/etc/hosts") == b"x"


def _assert_same(a: Host, b: Host) -> None:
    assert a.seq == b.seq
    assert a.containers == b.containers
    assert a.volumes == b.volumes


class TestImages:
    def test_a_shared_base_layer_already_exists(self, docker: DockerHost, store: LmdbEventLog):
        """Registering an image whose base layer is known stores only its new layer."""
        spec = ImageSpec(
            layers=[APP_IMAGE.layers[0], [d("/extra"), f("/extra/x", "x")]], tags=["child:1"]
        )
        head = store.head().seq

        image_id = register_image(docker, spec)

        assert types_since(store, head) == ["LayerRegistered", "ImageRegistered", "ImageTagged"]
        host = docker.state()
        assert host.images[image_id].tags == ["child:1"]
        assert host.layers[host.images[image_id].chain_ids[0]].images == 2

    def test_registering_the_same_image_again_records_nothing(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Loading an image that is already there only reports ``Already exists``."""
        head = store.head()

        register_image(docker, APP_IMAGE)

        assert store.head() == head

    def test_an_image_in_use_by_a_running_container_cannot_be_removed(self, docker: DockerHost):
        """``rmi`` of the image of a running container is refused, even forced."""
        cid = docker.create("app:1", name="web", start=True)
        image_id = docker.state().tags["app:1"]

        with pytest.raises(ImageInUseError) as info:
            docker.remove_image("app:1", force=True)

        assert str(info.value) == (
            f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - image is being "
            f"used by running container {cid[:12]}"
        )

    def test_an_image_of_a_stopped_container_needs_force(self, docker: DockerHost):
        """``rmi`` by tag of an image a stopped container uses must be forced."""
        cid = docker.create("app:1", name="web")
        image_id = docker.state().tags["app:1"]

        with pytest.raises(ConflictError) as info:
            docker.remove_image("app:1")

        assert str(info.value) == (
            'conflict: unable to remove repository reference "app:1" (must force) - container '
            f"{cid[:12]} is using its referenced image {image_id[7:19]}"
        )

    def test_removing_an_unused_image_untags_and_deletes_it(self, docker: DockerHost):
        """``rmi`` reports Untagged and Deleted lines, and the image and its own layers go."""
        host = docker.state()
        image_id = host.tags["db:1"]
        chain = host.images[image_id].chain_ids[-1]

        lines = docker.remove_image("db:1")

        assert lines == [("Untagged", "db:1"), ("Deleted", image_id), ("Deleted", chain)]
        host = docker.state()
        assert image_id not in host.images
        assert chain not in host.layers
        with pytest.raises(NoSuchImageError):
            docker.create("db:1")

    def test_a_second_tag_is_only_untagged(self, docker: DockerHost):
        """With two tags, ``rmi`` of one only removes that tag."""
        docker.tag("db:1", "db:latest")

        assert docker.remove_image("db:latest") == [("Untagged", "db:latest")]
        assert docker.state().images[docker.state().tags["db:1"]].tags == ["db:1"]


class TestSimulatedHost:
    def test_host_mkdir_needs_parents_unless_asked(self, docker: DockerHost):
        """``mkdir`` on the host follows the same rules as in a container."""
        with pytest.raises(FileSystemError, match=r"^mkdir /a/b: No such file or directory$"):
            docker.host_mkdir("/a/b")

        docker.host_mkdir("/a/b", parents=True)

        assert set(docker.state().host_files) == {"/a", "/a/b"}

    def test_a_host_write_is_seen_through_a_bind(self, docker: DockerHost):
        """Writing on the host side shows in the container at once."""
        docker.create("app:1", name="web", volumes=["/srv/www:/www"], start=True)

        docker.host_write("/srv/www/index.html", b"v1")
        docker.host_write("/srv/www/index.html", b"+v2", append=True)

        assert read_file(docker, "web", "/www/index.html") == b"v1+v2"


def test_the_db_image_declares_its_volume(docker: DockerHost):
    """The test image's config carries ``config.Volumes`` and the registered image its VOLUMEs."""
    host = docker.state()
    image = host.images[host.tags["db:1"]]

    assert image.volumes == tuple(DB_IMAGE.volumes)


@given(
    st.lists(st.sampled_from(["", ".", "..", "...", "a", ".a", "a.", "b c", "é"]), max_size=6),
    st.sampled_from(["", "/", "//"]),
    st.sampled_from(["", "/", "/.", "/.."]),
)
def test_a_command_path_is_normalised_as_fs_normalize_does(parts: list[str], lead: str, tail: str):
    """The shortcut for paths already in normal form gives what `fs.normalize` gives, or
    refuses what it refuses, with the same message."""
    path = lead + "/".join(parts) + tail
    try:
        expected: str | tuple[type, str] = fs.normalize(path)
    except fs.PathError as exc:
        expected = (InvalidParameterError, str(exc))
    try:
        got: str | tuple[type, str] = _check_path("write", path)
    except InvalidParameterError as exc:
        got = (InvalidParameterError, str(exc))
    assert got == expected
