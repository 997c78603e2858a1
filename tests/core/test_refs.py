"""Resolving references (core.refs): a container by name, full id or unique id prefix; images by tag or id."""

from __future__ import annotations

import itertools

import pytest

from dockstate.core.commands import DockerHost
from dockstate.core.errors import AmbiguousReferenceError, NoSuchContainerError, NoSuchImageError
from dockstate.core.refs import find_container, find_image, find_volume
from dockstate.eventlog import LmdbEventLog
from tests.core.helpers import APP_IMAGE, register_image

PREFIX = "abcdef"


class PrefixIds:
    """Ids that all start with ``abcdef``: what a prefix collision looks like."""

    def __init__(self) -> None:
        self._n = itertools.count(1)
        self._names = itertools.count(1)

    def new_id(self) -> str:
        return f"{PREFIX}{next(self._n):02x}".ljust(64, "0")

    def new_name(self) -> str:
        return f"box_{next(self._names)}"


@pytest.fixture
def colliding(store: LmdbEventLog) -> DockerHost:
    """A host whose container ids share the prefix ``abcdef``."""
    docker = DockerHost(store, ids=PrefixIds(), session="refs")
    register_image(docker, APP_IMAGE)
    return docker


class TestFindContainer:
    def test_a_container_is_found_by_name_slash_name_full_id_and_unique_prefix(
        self, docker: DockerHost
    ):
        """Every way Docker accepts to name a container reaches the same one."""
        cid = docker.create("app:1", name="web")
        docker.create("app:1", name="other")
        host = docker.state()

        for ref in ("web", "/web", cid, cid[:12], cid[:4]):
            assert find_container(host, ref).id == cid, ref

    def test_commands_accept_every_kind_of_reference(self, docker: DockerHost):
        """``start``/``stop`` by prefix or name act on the container and return its full id."""
        cid = docker.create("app:1", name="web")

        assert docker.start(cid[:8]) == cid
        assert docker.stop("/web") == cid
        assert docker.state().containers[cid].state == "exited"

    def test_an_ambiguous_prefix_is_refused(self, colliding: DockerHost, store: LmdbEventLog):
        """A prefix two containers share names neither; the command is refused and records nothing."""
        first = colliding.create("app:1")
        second = colliding.create("app:1")
        head = store.head()

        with pytest.raises(AmbiguousReferenceError) as info:
            colliding.start(PREFIX)

        assert info.value.ref == PREFIX
        assert info.value.matches == [first, second]
        assert str(info.value) == f"multiple IDs found with provided prefix: {PREFIX}"
        assert store.head() == head

    def test_a_longer_prefix_that_is_unique_resolves(self, colliding: DockerHost):
        """Adding characters until one container matches makes the reference good."""
        colliding.create("app:1")
        second = colliding.create("app:1")

        assert colliding.start(second[:8]) == second
        assert colliding.state().containers[second].state == "running"

    def test_a_name_wins_over_an_id_prefix(self, colliding: DockerHost):
        """Docker tries the full id, then the name, then a prefix: a name that looks like hex wins."""
        prefixed = colliding.create("app:1")
        named = colliding.create("app:1", name=f"{PREFIX}00")
        host = colliding.state()

        assert find_container(host, f"{PREFIX}00").id == named
        assert find_container(host, prefixed).id == prefixed

    def test_a_removed_container_is_not_found_by_any_reference(self, docker: DockerHost):
        """After ``rm`` neither the name, the id nor a prefix finds the container."""
        cid = docker.create("app:1", name="web")
        docker.remove("web")
        host = docker.state()

        for ref in ("web", cid, cid[:12]):
            with pytest.raises(NoSuchContainerError) as info:
                find_container(host, ref)
            assert str(info.value) == f"No such container: {ref}"

    @pytest.mark.parametrize("ref", ["", "nope", "0123"])
    def test_an_unknown_reference_is_no_such_container(self, docker: DockerHost, ref: str):
        """Anything that matches nothing is Docker's 404."""
        docker.create("app:1", name="web")

        with pytest.raises(NoSuchContainerError, match=f"^No such container: {ref}$"):
            find_container(docker.state(), ref)


class TestFindImage:
    def test_an_image_is_found_by_tag_id_and_prefix(self, docker: DockerHost):
        """``app:1``, the full ``sha256:`` id, the bare hex id and a prefix reach the same image."""
        host = docker.state()
        image_id = host.tags["app:1"]
        hexid = image_id.removeprefix("sha256:")

        for ref in ("app:1", image_id, hexid, hexid[:12], "sha256:" + hexid[:12]):
            assert find_image(host, ref).id == image_id, ref

    def test_a_missing_tag_is_reported_in_its_normal_form(self, docker: DockerHost):
        """``docker run nope`` looks for ``nope:latest``."""
        with pytest.raises(NoSuchImageError, match=r"^No such image: nope:latest$"):
            docker.create("nope")

    def test_a_missing_volume_is_reported_with_the_operation(self, docker: DockerHost):
        """``find_volume`` says what it was doing, as Docker's volume errors do."""
        with pytest.raises(Exception, match=r"^inspect gone: no such volume$"):
            find_volume(docker.state(), "gone", op="inspect")
