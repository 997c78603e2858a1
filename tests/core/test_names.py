"""Ids and names (core.names): container ids and names as Docker forms them, chain ids, image refs."""

from __future__ import annotations

import hashlib
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.errors import InvalidContainerNameError, NameInUseError
from dockstate.core.names import (
    NAME_PATTERN,
    RandomIds,
    RecordedIds,
    chain_ids,
    is_full_id,
    normalize_image_ref,
)
from dockstate.eventlog import LmdbEventLog
from tests.core.helpers import fingerprint, fold

HEX64 = re.compile(r"^[0-9a-f]{64}$")
GENERATED_NAME = re.compile(r"^[a-z]+_[a-z]+$")


class TestContainerIds:
    def test_a_container_id_is_64_hex_and_recorded_at_create(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """``create`` returns a 64-hex id, the one its ContainerCreated event records."""
        cid = docker.create("app:1", name="web")

        assert HEX64.match(cid)
        created = [e for e in store.read() if e.type == "ContainerCreated"]
        assert [e.data["container"] for e in created] == [cid]

    def test_replay_reuses_the_recorded_ids(self, docker: DockerHost, store: LmdbEventLog):
        """Folding the log twice gives the same container ids, anonymous volume names and names."""
        docker.create("app:1", name="web", volumes=["/anon"], start=True)
        docker.create("db:1")
        docker.create("app:1")

        first, second = fold(store), fold(store)
        live = docker.state()

        assert set(first.containers) == set(second.containers) == set(live.containers)
        assert set(first.volumes) == set(second.volumes) == set(live.volumes)
        assert first.names == second.names == live.names

    def test_seeded_ids_are_reproducible(self):
        """The same seed gives the same ids and names: ids come in, they are not drawn by the domain."""
        a, b = RandomIds(random.Random(9)), RandomIds(random.Random(9))

        assert [a.new_id() for _ in range(3)] == [b.new_id() for _ in range(3)]
        assert [a.new_name() for _ in range(3)] == [b.new_name() for _ in range(3)]

    @given(st.integers(0, 2**32))
    def test_generated_names_are_adjective_surname_and_never_boring_wozniak(self, seed: int):
        """Names look like Docker's generated ones, and Steve Wozniak is not boring."""
        ids = RandomIds(random.Random(seed))
        for _ in range(20):
            name = ids.new_name()
            assert GENERATED_NAME.match(name)
            assert NAME_PATTERN.match(name)
            assert name != "boring_wozniak"
            assert is_full_id(ids.new_id())

    def test_recorded_ids_come_back_in_order_then_from_the_fallback(self):
        """RecordedIds hands out the recorded ids and names first."""
        ids = RecordedIds(["a" * 64], ["first_name"], RandomIds(random.Random(1)))

        assert ids.new_id() == "a" * 64
        assert ids.new_name() == "first_name"
        assert HEX64.match(ids.new_id())


class TestContainerNames:
    def test_a_container_without_a_name_gets_a_generated_one(self, docker: DockerHost):
        """``create`` without ``--name`` records a generated ``adjective_surname`` name."""
        cid = docker.create("app:1")

        name = docker.state().containers[cid].name
        assert GENERATED_NAME.match(name)
        assert docker.state().names[name] == cid

    @pytest.mark.parametrize("stop", [False, True])
    def test_a_name_in_use_is_refused(self, docker: DockerHost, store: LmdbEventLog, stop: bool):
        """A second container cannot take the name of a live (running or stopped) one."""
        owner = docker.create("app:1", name="web", start=True)
        if stop:
            docker.stop("web")
        before = fingerprint(store)

        with pytest.raises(NameInUseError) as info:
            docker.create("app:1", name="web")

        assert str(info.value) == (
            f'Conflict. The container name "/web" is already in use by container "{owner}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        )
        assert fingerprint(store) == before

    def test_a_leading_slash_names_the_same_container(self, docker: DockerHost):
        """``/web`` is Docker's internal spelling of ``web``."""
        cid = docker.create("app:1", name="/web")

        assert docker.state().containers[cid].name == "web"
        with pytest.raises(NameInUseError):
            docker.create("app:1", name="web")

    def test_a_removed_containers_name_can_be_reused(self, docker: DockerHost):
        """After ``rm`` the name is free; the new container gets a new id."""
        old = docker.create("app:1", name="web")
        docker.remove("web")

        new = docker.create("app:1", name="web")

        host = docker.state()
        assert new != old
        assert host.names == {"web": new}
        assert host.removed[old].name == "web"

    @pytest.mark.parametrize("bad", ["x", "-web", "web app", "web/1", "_web", "wéb"])
    def test_an_invalid_name_is_refused(self, docker: DockerHost, store: LmdbEventLog, bad: str):
        """Container names follow ``[a-zA-Z0-9][a-zA-Z0-9_.-]+`` with Docker's message."""
        head = store.head()

        with pytest.raises(InvalidContainerNameError) as info:
            docker.create("app:1", name=bad)

        assert str(info.value) == (
            f"Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
        assert store.head() == head

    @pytest.mark.parametrize("good", ["web", "a1", "My.App_2-b", "0abc"])
    def test_a_valid_name_is_accepted(self, docker: DockerHost, good: str):
        """Letters, digits and ``_.-`` after an alphanumeric first character."""
        cid = docker.create("app:1", name=good)

        assert docker.state().names[good] == cid


class TestChainIds:
    def test_the_first_chain_id_is_the_first_diff_id(self):
        """ChainID(L0) = DiffID(L0)."""
        assert chain_ids(["sha256:" + "a" * 64]) == ["sha256:" + "a" * 64]

    def test_a_chain_id_hashes_the_parent_chain_and_the_diff_id(self):
        """ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)), on the prefixed strings."""
        a, b, c = ("sha256:" + ch * 64 for ch in "abc")
        ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
        abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()

        assert chain_ids([a, b, c]) == [a, ab, abc]

    @given(st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), min_size=2, max_size=5))
    def test_chain_ids_are_deterministic_and_order_sensitive(self, hexes: list[str]):
        """The same stack gives the same ids; a different order gives a different top id."""
        diff_ids = ["sha256:" + h for h in hexes]

        assert chain_ids(diff_ids) == chain_ids(list(diff_ids))
        swapped = [diff_ids[1], diff_ids[0], *diff_ids[2:]]
        if diff_ids[0] != diff_ids[1]:
            assert chain_ids(swapped)[-1] != chain_ids(diff_ids)[-1]

    def test_no_layers_no_chain(self):
        """An image without layers has no chain id."""
        assert chain_ids([]) == []


@pytest.mark.parametrize(
    ("ref", "normal"),
    [
        ("alpine", "alpine:latest"),
        ("alpine:3.20", "alpine:3.20"),
        ("docker.io/library/alpine", "alpine:latest"),
        ("docker.io/me/app:1", "me/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
    ],
)
def test_image_references_are_normalised_as_docker_shows_them(ref: str, normal: str):
    """A tagless reference means ``:latest``; Docker Hub's library prefix is dropped."""
    assert normalize_image_ref(ref) == normal
