"""The lifecycle table (core.lifecycle) and its use when a log is replayed."""

from __future__ import annotations

import random

import pytest

from dockstate.core import lifecycle
from dockstate.core.commands import DockerHost
from dockstate.core.errors import LifecycleViolation
from dockstate.core.events import CONTAINER_TRIGGERS, ContainerPaused, ContainerStarted
from dockstate.core.lifecycle import MACHINE, TABLE, State, Trigger, allowed, next_state
from dockstate.core.names import RandomIds
from dockstate.core.state import Host
from dockstate.eventlog import EventLog, InMemoryEventLog, NewEvent
from tests.conftest import FakeClock
from tests.core.helpers import APP_IMAGE, register_image

PAIRS = [(s.value, t.value) for s in State for t in Trigger]


def test_the_table_is_what_the_machine_says_for_every_state_and_trigger():
    """``TABLE`` holds exactly the (state, trigger) pairs the Machine allows, with its dest."""
    for state, trigger in PAIRS:
        transitions = MACHINE.get_transitions(trigger, source=state)
        if transitions:
            assert len(transitions) == 1, (state, trigger)
            assert TABLE[(state, trigger)] == State(transitions[0].dest), (state, trigger)
        else:
            assert (state, trigger) not in TABLE, (state, trigger)
    assert set(TABLE) <= set(PAIRS)


@pytest.mark.parametrize(("state", "trigger"), PAIRS)
def test_the_fast_path_and_the_machine_agree(state: str, trigger: str):
    """``next_state`` (the replay path) allows a trigger exactly when ``allowed`` (the Machine) does."""
    assert (next_state(state, trigger) is not None) == allowed(state, trigger)


def test_the_machine_has_no_auto_transitions_or_callbacks():
    """No ``to_<state>`` triggers bypass the table, so its events are exactly the declared triggers."""
    assert set(MACHINE.events) == {t.value for t in Trigger}


@pytest.mark.parametrize(
    ("state", "trigger", "dest"),
    [
        ("created", "start", "running"),
        ("exited", "start", "running"),
        ("running", "pause", "paused"),
        ("paused", "unpause", "running"),
        ("running", "stop", "exited"),
        ("paused", "stop", "exited"),
        ("paused", "kill", "exited"),
        ("running", "die", "exited"),
        ("exited", "restart", "running"),
        ("created", "destroy", "removed"),
        ("exited", "destroy", "removed"),
        ("dead", "destroy", "removed"),
        ("exited", "fail_removal", "dead"),
    ],
)
def test_docker_lifecycle_moves(state: str, trigger: str, dest: str):
    """The moves Docker makes are in the table."""
    assert next_state(state, trigger) == State(dest)


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        ("running", "destroy"),  # rm -f records a kill first
        ("paused", "destroy"),
        ("running", "start"),  # a no-op is not recorded
        ("paused", "start"),
        ("paused", "pause"),
        ("exited", "pause"),
        ("created", "unpause"),
        ("exited", "stop"),
        ("created", "kill"),
        ("removed", "start"),
        ("removed", "destroy"),
        ("dead", "start"),
    ],
)
def test_impossible_moves_are_not_in_the_table(state: str, trigger: str):
    """Moves Docker cannot make are absent: replay would flag them."""
    assert next_state(state, trigger) is None


def test_every_container_event_maps_to_a_lifecycle_trigger():
    """Each container event tag names a trigger of the Machine."""
    assert set(CONTAINER_TRIGGERS.values()) <= {t.value for t in Trigger}


def _exited_container() -> tuple[EventLog, str]:
    log = InMemoryEventLog(clock=FakeClock())
    docker = DockerHost(log, ids=RandomIds(random.Random(5)), session="s")
    register_image(docker, APP_IMAGE)
    cid = docker.create("app:1", name="web", start=True)
    docker.stop("web")
    return log, cid


def test_replaying_a_log_that_breaks_the_lifecycle_names_the_bad_seq():
    """A raw ContainerPaused for an exited container makes replay raise LifecycleViolation at that seq."""
    log, cid = _exited_container()
    event = ContainerPaused(container=cid)
    (bad,) = log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
    host = Host(log.read_blobs)

    with pytest.raises(LifecycleViolation) as info:
        host.apply_all(log.read())

    err = info.value
    assert (err.seq, err.container_id, err.event, err.state) == (
        bad.seq,
        cid,
        "ContainerPaused",
        "exited",
    )
    assert str(err) == (
        f"event {bad.seq} (ContainerPaused) is not possible for container {cid[:12]} in state exited"
    )


def test_a_host_whose_log_breaks_the_lifecycle_refuses_to_build_its_model():
    """A DockerHost over a log with an impossible event raises LifecycleViolation instead of acting on it."""
    log, cid = _exited_container()
    event = ContainerStarted(container=cid)
    log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
    event = ContainerStarted(container=cid)
    (bad,) = log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
    fresh = DockerHost(log, ids=RandomIds(random.Random(6)))

    with pytest.raises(LifecycleViolation) as info:
        fresh.state()

    assert info.value.seq == bad.seq


def test_the_triggers_are_dockers_event_actions():
    """Triggers are spelled as ``docker events`` actions."""
    assert {t.value for t in lifecycle.Trigger} >= {
        "start",
        "pause",
        "unpause",
        "stop",
        "kill",
        "die",
        "restart",
        "destroy",
    }
