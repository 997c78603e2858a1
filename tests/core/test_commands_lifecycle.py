"""Container commands against the lifecycle: Docker's command x state matrix (docker-semantics.md 5.3)."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from dockstate.core.commands import STOP_EXIT_CODE, DockerHost, parse_signal
from dockstate.core.errors import (
    ConflictError,
    ContainerNotPausedError,
    ContainerNotRunningError,
    ContainerPausedError,
    ContainerRunningError,
    DockstateError,
    InvalidParameterError,
    NoSuchContainerError,
)
from dockstate.core.lifecycle import State
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog
from tests import strategies as strat
from tests.conftest import FakeClock
from tests.core.helpers import APP_IMAGE, fingerprint, fold, register_image, types_since

# -- the matrix ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Becomes:
    """The command succeeds: the container ends in ``state``, having recorded ``events``."""

    state: str
    events: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class NoOp:
    """The command succeeds and changes nothing (Docker answers 304)."""


@dataclasses.dataclass(frozen=True)
class Refused:
    """The command is refused with Docker's ``message`` ({id}: full id, {ref}: what was typed)."""

    error: type[DockstateError]
    message: str


NOT_RUNNING = Refused(ContainerNotRunningError, "container {id} is not running")
NOT_PAUSED = Refused(ContainerNotPausedError, "Container {id} is not paused")
GONE = Refused(NoSuchContainerError, "No such container: {ref}")
RM_RUNNING = Refused(
    ContainerRunningError,
    'cannot remove container "{ref}": container is running: stop the container before '
    "removing or force remove",
)
RM_PAUSED = Refused(
    ContainerRunningError,
    'cannot remove container "{ref}": container is paused and must be unpaused first',
)

STARTED = Becomes("running", ("ContainerStarted",))
RESTARTED = Becomes("running", ("ContainerRestarted",))
STOPPED_RESTARTED = Becomes("running", ("ContainerStopped", "ContainerRestarted"))
REMOVED = Becomes("removed", ("ContainerRemoved",))
KILLED_REMOVED = Becomes("removed", ("ContainerKilled", "ContainerRemoved"))

#: Every lifecycle state x every container command, with Docker's answer (>= 28 wording).
MATRIX: dict[str, dict[str, Becomes | NoOp | Refused]] = {
    "created": {
        "start": STARTED,
        "stop": NoOp(),
        "kill": NOT_RUNNING,
        "pause": NOT_RUNNING,
        "unpause": NOT_PAUSED,
        "restart": RESTARTED,
        "rm": REMOVED,
        "rm -f": REMOVED,
    },
    "running": {
        "start": NoOp(),
        "stop": Becomes("exited", ("ContainerStopped",)),
        "kill": Becomes("exited", ("ContainerKilled",)),
        "pause": Becomes("paused", ("ContainerPaused",)),
        "unpause": NOT_PAUSED,
        "restart": STOPPED_RESTARTED,
        "rm": RM_RUNNING,
        "rm -f": KILLED_REMOVED,
    },
    "paused": {
        "start": Refused(
            ContainerPausedError, "cannot start a paused container, try unpause instead"
        ),
        # Docker unpauses a paused container so that it can exit.
        "stop": Becomes("exited", ("ContainerStopped",)),
        "kill": Becomes("exited", ("ContainerKilled",)),
        "pause": Refused(ConflictError, "container {id} is already paused"),
        "unpause": Becomes("running", ("ContainerUnpaused",)),
        "restart": STOPPED_RESTARTED,
        "rm": RM_PAUSED,
        "rm -f": KILLED_REMOVED,
    },
    "exited": {
        "start": STARTED,
        "stop": NoOp(),
        "kill": NOT_RUNNING,
        "pause": NOT_RUNNING,
        "unpause": NOT_PAUSED,
        "restart": RESTARTED,
        "rm": REMOVED,
        "rm -f": REMOVED,
    },
    "removed": dict.fromkeys(strat.VERBS, GONE),
}

CASES = [(state, verb, outcome) for state, row in MATRIX.items() for verb, outcome in row.items()]

REF = "box"


def into_state(docker: DockerHost, state: str) -> str:
    """Create container ``box`` and bring it to ``state``; return its id."""
    cid = docker.create("app:1", name=REF, start=state in ("running", "paused", "exited"))
    if state == "paused":
        docker.pause(REF)
    elif state == "exited":
        docker.stop(REF)
    elif state == "removed":
        docker.remove(REF)
    return cid


def run_verb(docker: DockerHost, verb: str, ref: str) -> str:
    if verb == "rm":
        return docker.remove(ref)
    if verb == "rm -f":
        return docker.remove(ref, force=True)
    command: Callable[[str], str] = getattr(docker, verb)
    return command(ref)


def state_of(docker: DockerHost, cid: str) -> str:
    host = docker.state()
    if cid in host.removed:
        assert cid not in host.containers
        return "removed"
    return host.containers[cid].state


def test_the_matrix_covers_every_state_and_command():
    """The table below lists every lifecycle state a user can meet and every container command."""
    assert set(MATRIX) == {"created", "running", "paused", "exited", "removed"}
    assert all(set(row) == set(strat.VERBS) for row in MATRIX.values())
    assert {s.value for s in State} - set(MATRIX) == {"dead"}


@pytest.mark.parametrize(("state", "verb", "outcome"), CASES, ids=[f"{s}-{v}" for s, v, _ in CASES])
def test_a_container_command_gives_dockers_answer_in_every_state(
    docker: DockerHost, store: LmdbEventLog, state: str, verb: str, outcome: object
):
    """Each command in each state gives the resulting state, or Docker's exact refusal and no change."""
    cid = into_state(docker, state)
    before = fingerprint(store)
    head = store.head()

    if isinstance(outcome, Refused):
        with pytest.raises(outcome.error) as info:
            run_verb(docker, verb, REF)
        assert str(info.value) == outcome.message.format(id=cid, ref=REF)
        assert fingerprint(store) == before
        assert store.head() == head
        assert state_of(docker, cid) == state
    elif isinstance(outcome, NoOp):
        assert run_verb(docker, verb, REF) == cid
        assert fingerprint(store) == before
        assert state_of(docker, cid) == state
    else:
        assert isinstance(outcome, Becomes)
        assert run_verb(docker, verb, REF) == cid
        assert tuple(types_since(store, head.seq)) == outcome.events
        assert state_of(docker, cid) == outcome.state
        assert fold(store).containers.get(cid, fold(store).removed.get(cid)).state == outcome.state


def test_a_refused_command_appends_nothing_even_after_writing_blobs(
    docker: DockerHost, store: LmdbEventLog
):
    """A write refused after its bytes went into the blob store leaves no blob behind."""
    docker.create("app:1", name=REF, volumes=["ro-vol:/ro:ro"], start=True)
    before = fingerprint(store)

    with pytest.raises(DockstateError, match="Read-only file system"):
        docker.write_file(REF, "/ro/new.bin", b"never stored " * 100)

    assert fingerprint(store) == before


def test_rm_of_a_running_container_quotes_the_reference_as_given(docker: DockerHost):
    """Docker >= 28 names the container in rm's refusal exactly as the user typed it."""
    cid = docker.create("app:1", name=REF, start=True)

    with pytest.raises(ContainerRunningError) as info:
        docker.remove(cid[:10])

    assert str(info.value) == (
        f'cannot remove container "{cid[:10]}": container is running: stop the container '
        "before removing or force remove"
    )


def test_stop_records_sigterm_exit_code_and_kill_the_signal_it_sent(
    docker: DockerHost, store: LmdbEventLog
):
    """``stop`` exits with 143 (SIGTERM); ``kill`` with 128 + the signal sent."""
    docker.create("app:1", name="ca", start=True)
    docker.create("app:1", name="cb", start=True)
    docker.create("app:1", name="cc", start=True)

    docker.stop("ca")
    docker.kill("cb")
    docker.kill("cc", "HUP")

    host = docker.state()
    codes = {c.name: c.exit_code for c in host.containers.values()}
    assert codes == {"ca": STOP_EXIT_CODE, "cb": 137, "cc": 129}
    assert STOP_EXIT_CODE == 143
    killed = [e.data for e in store.read() if e.type == "ContainerKilled"]
    assert [k["signal"] for k in killed] == ["SIGKILL", "SIGHUP"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("KILL", ("SIGKILL", 9)),
        ("SIGTERM", ("SIGTERM", 15)),
        ("9", ("SIGKILL", 9)),
        (1, ("SIGHUP", 1)),
    ],
)
def test_a_signal_is_accepted_by_name_with_or_without_sig_or_by_number(given, expected):
    """``KILL``, ``SIGKILL`` and ``9`` all name SIGKILL."""
    assert parse_signal(given) == expected


@pytest.mark.parametrize("bad", ["SIGNOPE", "999", "", "-1"])
def test_an_unknown_signal_is_refused(docker: DockerHost, store: LmdbEventLog, bad: str):
    """``kill --signal`` with an unknown signal is refused before anything is recorded."""
    docker.create("app:1", name=REF, start=True)
    head = store.head()

    with pytest.raises(InvalidParameterError, match=r"^Invalid signal: "):
        docker.kill(REF, bad)

    assert store.head() == head


def test_restart_counts_restarts(docker: DockerHost):
    """Every ``restart`` of a container adds one to its restart count."""
    cid = docker.create("app:1", name=REF, start=True)

    docker.restart(REF)
    docker.stop(REF)
    docker.restart(REF)

    c = docker.state().containers[cid]
    assert (c.state, c.restart_count) == ("running", 2)


def test_run_creates_and_starts_in_one_command(docker: DockerHost, store: LmdbEventLog):
    """``docker run`` is one command: the container is created and started, both recorded under ``run``."""
    head = store.head().seq

    cid = docker.create("app:1", name=REF, start=True)

    new = list(store.read(head + 1))
    assert [e.type for e in new] == ["ContainerCreated", "ContainerStarted"]
    assert {e.cmd[0] for e in new if e.cmd} == {"run"}
    assert docker.state().containers[cid].state == "running"


# -- random command sequences ------------------------------------------------------------


@given(steps=strat.command_sequences())
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_every_sequence_docker_accepts_is_accepted_and_ends_where_docker_would(steps):
    """A host runs any valid command sequence and ends with the model's states and files."""
    with tempfile.TemporaryDirectory() as tmp:
        log = LmdbEventLog(tmp, clock=FakeClock(), durable=False)
        try:
            docker = DockerHost(log, ids=RandomIds(random.Random(7)), session="hyp")
            register_image(docker, APP_IMAGE)
            strat.run_steps(docker, steps)
            model = strat.model_of(steps)
            host = docker.state()
            live = {c.name: c for c in host.containers.values()}
            assert {n: c.state for n, c in live.items()} == {
                n: b.state for n, b in model.boxes.items()
            }
            for name, c in live.items():
                for path in strat.PATHS:
                    seen = host.lookup(c, path)
                    assert (seen is not None) == model.exists(name, path), (name, path)
        finally:
            log.close()


class ContainerCommands(RuleBasedStateMachine):
    """Random container commands on a few containers, accepted or refused as Docker would."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.log = LmdbEventLog(self.tmp.name, clock=FakeClock(), durable=False)
        self.docker = DockerHost(self.log, ids=RandomIds(random.Random(3)), session="stateful")
        register_image(self.docker, APP_IMAGE)
        self.model = strat.Model()

    def teardown(self) -> None:
        self.log.close()
        self.tmp.cleanup()

    def _run(self, step: strat.Step) -> None:
        accepted = self.model.accepts(step)
        head = self.log.head()
        refusal: DockstateError | None = None
        try:
            strat.run_step(self.docker, step)
        except DockstateError as exc:
            refusal = exc
        if refusal is not None:
            assert not accepted, f"{step} refused: {refusal}"
            assert self.log.head() == head, "a refused command appended"
            return
        assert accepted, f"{step} was accepted"
        self.model.apply(step)

    @rule(step=strat.names.flatmap(strat.creates))
    def create(self, step: strat.Step) -> None:
        self._run(step)

    @rule(name=strat.names, verb=strat.verbs)
    def container_command(self, name: str, verb: str) -> None:
        self._run(strat.Step(verb=verb, name=name))

    @precondition(lambda self: bool(self.model.boxes))
    @rule(
        name=strat.names,
        verb=st.sampled_from(("write", "append", "delete")),
        path=strat.paths,
        data=strat.contents,
    )
    def file_command(self, name: str, verb: str, path: str, data: bytes) -> None:
        self._run(strat.Step(verb=verb, name=name, path=path, data=data))

    @invariant()
    def replay_gives_the_live_states(self) -> None:
        live = self.docker.state()
        replayed = fold(self.log)
        assert {k: c.state for k, c in replayed.containers.items()} == {
            k: c.state for k, c in live.containers.items()
        }
        assert set(replayed.removed) == set(live.removed)
        assert {c.name: c.state for c in live.containers.values()} == {
            n: b.state for n, b in self.model.boxes.items()
        }

    @invariant()
    def no_container_leaves_the_lifecycle(self) -> None:
        host = self.docker.state()
        assert {c.state for c in host.containers.values()} <= {
            "created",
            "running",
            "paused",
            "exited",
        }
        assert {c.state for c in host.removed.values()} <= {"removed"}

    @invariant()
    def the_log_verifies(self) -> None:
        assert self.log.verify().ok


ContainerCommands.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestContainerCommandsStateful = ContainerCommands.TestCase
