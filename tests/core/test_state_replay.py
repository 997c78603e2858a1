"""The host fold (core.state): replay equals the live write model, prefixes give past states, bad logs are caught."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core import events as ev
from dockstate.core.commands import DockerHost
from dockstate.core.fs import FILE, Entry, dir_entry
from dockstate.core.names import RandomIds
from dockstate.core.state import (
    _HANDLERS,
    Host,
    InconsistentLogError,
    _has_prefix,
    _id_prefix,
    decode_table,
    decode_tree,
    encode_table,
    encode_tree,
    id_prefixes,
)
from dockstate.eventlog import EventLog, InMemoryEventLog, LmdbEventLog, NewEvent
from tests import strategies as strat
from tests.conftest import FakeClock
from tests.core.helpers import APP_IMAGE, fold, register_image

REPLAY_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def summary(host: Host) -> dict[str, Any]:
    """Everything a Host holds, in comparable form."""
    return {
        "seq": host.seq,
        "ts": host.ts,
        "layers": host.layers,
        "images": host.images,
        "tags": host.tags,
        "containers": host.containers,
        "removed": host.removed,
        "names": host.names,
        "volumes": host.volumes,
        "host_files": host.host_files,
        "settings": host.settings,
    }


def snapshot(host: Host) -> dict[str, Any]:
    """A deep copy of `summary`, taken before the live model moves on."""
    import copy

    return copy.deepcopy(summary(host))


@contextmanager
def lmdb_host(seed: int = 11) -> Iterator[DockerHost]:
    with tempfile.TemporaryDirectory() as tmp:
        log = LmdbEventLog(tmp, clock=FakeClock(), durable=False)
        try:
            docker = DockerHost(log, ids=RandomIds(random.Random(seed)), session="replay")
            register_image(docker, APP_IMAGE)
            yield docker
        finally:
            log.close()


@given(steps=strat.command_sequences())
@REPLAY_SETTINGS
def test_replaying_the_log_gives_the_live_state(steps):
    """Folding the whole log into a fresh Host equals the write model the commands built step by step."""
    with lmdb_host() as docker:
        strat.run_steps(docker, steps)

        assert summary(fold(docker.log)) == summary(docker.state())


@given(steps=strat.command_sequences(max_steps=15))
@REPLAY_SETTINGS
def test_folding_a_prefix_gives_the_state_at_that_time(steps):
    """Time travel: the fold of events 1..n equals the live state right after the command that ended at n."""
    with lmdb_host() as docker:
        past = []
        for step in steps:
            strat.run_step(docker, step)
            past.append((docker.log.head().seq, snapshot(docker.state())))

        for seq, then in past:
            assert summary(fold(docker.log, seq)) == then


@given(steps=strat.command_sequences(max_steps=15))
@REPLAY_SETTINGS
def test_folding_one_event_at_a_time_equals_folding_all(steps):
    """``apply`` per event and ``apply_all`` over the log build the same state."""
    with lmdb_host() as docker:
        strat.run_steps(docker, steps)
        one = Host(docker.log.read_blobs)
        for env in docker.log.read():
            one.apply(env)

        assert summary(one) == summary(fold(docker.log))


def test_the_fold_handles_every_event_type():
    """Every registered event tag has a fold handler: no fact is silently ignored."""
    assert set(ev.EVENT_TYPES) == set(_HANDLERS)


def test_events_of_unknown_types_are_skipped():
    """A tag the fold does not know (a newer writer's) only advances the seq."""
    log = InMemoryEventLog(clock=FakeClock())
    log.append([NewEvent("SomethingNew", {"x": 1}, ("x:1",))])
    host = fold(log)

    assert (host.seq, host.containers, host.volumes) == (1, {}, {})


def test_a_layer_table_round_trips():
    """A layer's entries survive the msgpack table encoding."""
    entries = [("/a", dir_entry()), ("/a/f", Entry(FILE, 0o600, 3, (b"x" * 32,), 0, 5))]

    decoded = decode_table(encode_table(entries))
    assert decoded == entries
    assert all(type(entry) is Entry for _, entry in decoded)


def test_a_layer_table_of_another_shape_is_still_read():
    """A row whose fields have other types than `encode_table` writes (an int for a bool)
    is read the slower way, to the same entries; bytes that are no table are refused."""
    rows = [
        ["/a", "d", 0o755, 0, [], 0, 0, 0, 0, "", 1],
        ["/a/f", FILE, 0o644, 1, [b"x"], 0, 0, 0, 0, "", 0],
    ]
    decoded = decode_table(msgpack.packb(rows, use_bin_type=True))
    assert decoded == [
        ("/a", Entry("d", 0o755, 0, (), 0, 0, 0, 0, "", 1)),
        ("/a/f", Entry(FILE, 0o644, 1, (b"x",), 0, 0, 0, 0, "", 0)),
    ]
    assert all(type(entry) is Entry for _, entry in decoded)
    with pytest.raises(ValueError, match=r"."):
        decode_table(b"\xc1")


def test_a_tree_round_trips_with_its_order_and_entry_type():
    """A snapshot's tree encoding gives back equal entries, of type Entry, in the same order."""
    tree = {
        "/a": dir_entry(3, 4, opaque=True),
        "/a/f": Entry(FILE, 0o600, 3, (b"x" * 32, b"y" * 32), 7, 5, 1, 2),
        "/a/l": Entry("l", 0o777, target="/a/f"),
    }
    back = decode_tree(encode_tree(tree))

    assert list(back.items()) == list(tree.items())
    assert all(type(e) is Entry for e in back.values())
    assert back["/a/l"].target == "/a/f"
    assert decode_tree(encode_tree({})) == {}


def _append(log: EventLog, event: ev.Event) -> int:
    (env,) = log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
    return env.seq


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (ev.ContainerStarted(container="f" * 64), "no container ffffffffffff to act on"),
        (ev.VolumeRemoved(name="ghost"), "removal of missing volume ghost"),
        (
            ev.ImageRegistered(
                image_id="sha256:" + "e" * 64,
                config=(),
                diff_ids=("sha256:" + "d" * 64,),
                chain_id=None,
            ),
            "needs missing layer",
        ),
        (
            ev.ContainerCreated(
                container="c" * 64, name="x1", image_id="sha256:" + "9" * 64, image_ref="nope"
            ),
            "of missing image",
        ),
        (ev.ImageTagged(image_id="sha256:" + "8" * 64, ref="a:1"), "tag a:1 of missing image"),
    ],
)
def test_an_event_about_something_never_created_is_an_inconsistent_log(
    event: ev.Event, message: str
):
    """Replay refuses a log that acts on objects it never created, naming the seq."""
    log = InMemoryEventLog(clock=FakeClock())
    seq = _append(log, event)

    with pytest.raises(InconsistentLogError) as info:
        fold(log)

    assert info.value.seq == seq
    assert message in str(info.value)
    assert str(info.value).startswith(f"event {seq}: ")


def test_a_container_created_twice_is_an_inconsistent_log(store: LmdbEventLog):
    """The same container id in two ContainerCreated events cannot be a real history."""
    docker = DockerHost(store, ids=RandomIds(random.Random(4)))
    register_image(docker, APP_IMAGE)
    cid = docker.create("app:1", name="web")
    created = next(e for e in store.read() if e.type == "ContainerCreated")
    (dup,) = store.append(
        [NewEvent(created.type, {**created.data, "name": "web2"}, created.subjects)]
    )

    with pytest.raises(InconsistentLogError, match=f"container {cid[:12]} created twice"):
        fold(store)
    assert dup.seq == store.head().seq


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text(min_size=0, max_size=12)),
    probe=st.text(min_size=0, max_size=12),
)
def test_id_prefixes_find_every_id_and_miss_only_what_is_absent(ids, probe):
    """`was_removed`'s prefilter: no false negative, and a miss means no id has that prefix."""
    prefixes = id_prefixes(ids)
    for i in ids:
        assert _has_prefix(prefixes, _id_prefix(i))
    shared = any(_id_prefix(i) == _id_prefix(probe) for i in ids)
    assert _has_prefix(prefixes, _id_prefix(probe)) == shared
