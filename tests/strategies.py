"""Hypothesis strategies that build valid command sequences for a simulated Docker host.

A sequence is a list of `Step`s: container commands addressed by name, and file
writes inside running containers. `Model` is an independent, deliberately small
statement of what Docker does with each step (the command x state matrix of
docker-semantics.md 5.3 and which files a process sees afterwards); the
strategies only draw steps the model accepts, and tests compare the simulator
against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hypothesis import strategies as st

from dockstate.core.commands import DockerHost

#: The few container names sequences use, so that commands meet the same containers.
NAMES = ("alpha", "beta", "gamma")

#: Container commands, as the CLI spells them.
VERBS = ("start", "stop", "kill", "pause", "unpause", "restart", "rm", "rm -f")

#: The named volume a container may mount at /data.
VOLUME = "shared"
VOLUME_TARGET = "/data"

#: Files of the ``app:1`` image (tests/core/helpers.py APP_IMAGE) that steps touch.
LOWER_FILES = frozenset({"/app/main.py", "/etc/hosts", "/srv/index.html"})

#: Paths file steps use: image files, a new file under an image dir, one under /data.
PATHS = (*sorted(LOWER_FILES), "/var/log/app.log", "/data/db.txt")

CREATED, RUNNING, PAUSED, EXITED, REMOVED = "created", "running", "paused", "exited", "removed"

#: ``(state, verb) -> state after`` for every command Docker accepts (no-ops included);
#: a missing pair is a refusal.
TRANSITIONS: dict[tuple[str, str], str] = {
    (CREATED, "start"): RUNNING,
    (CREATED, "stop"): CREATED,
    (CREATED, "restart"): RUNNING,
    (CREATED, "rm"): REMOVED,
    (CREATED, "rm -f"): REMOVED,
    (RUNNING, "start"): RUNNING,
    (RUNNING, "stop"): EXITED,
    (RUNNING, "kill"): EXITED,
    (RUNNING, "pause"): PAUSED,
    (RUNNING, "restart"): RUNNING,
    (RUNNING, "rm -f"): REMOVED,
    (PAUSED, "stop"): EXITED,
    (PAUSED, "kill"): EXITED,
    (PAUSED, "unpause"): RUNNING,
    (PAUSED, "restart"): RUNNING,
    (PAUSED, "rm -f"): REMOVED,
    (EXITED, "start"): RUNNING,
    (EXITED, "stop"): EXITED,
    (EXITED, "restart"): RUNNING,
    (EXITED, "rm"): REMOVED,
    (EXITED, "rm -f"): REMOVED,
}


@dataclasses.dataclass(frozen=True)
class Step:
    """One command: ``create`` / a container verb / ``write`` / ``append`` / ``delete``."""

    verb: str
    name: str
    path: str = ""
    data: bytes = b""
    start: bool = False
    discard_on: str = "stop"
    volume: bool = False


@dataclasses.dataclass
class Box:
    """What the model knows of one live container."""

    state: str
    discard_on: str
    volume: bool
    #: paths written in the writable layer (new files and copied-up image files).
    written: set[str] = dataclasses.field(default_factory=set)
    #: image files deleted (whited out) in the writable layer.
    deleted: set[str] = dataclasses.field(default_factory=set)

    def discard(self) -> None:
        self.written.clear()
        self.deleted.clear()


@dataclasses.dataclass
class Model:
    """Docker's expected behaviour for `Step`s, independent of the code under test."""

    boxes: dict[str, Box] = dataclasses.field(default_factory=dict)
    volume_files: set[str] = dataclasses.field(default_factory=set)

    def accepts(self, step: Step) -> bool:
        box = self.boxes.get(step.name)
        if step.verb == "create":
            return box is None
        if box is None:
            return False  # "No such container"
        if step.verb in ("write", "append"):
            return box.state == RUNNING
        if step.verb == "delete":
            return box.state == RUNNING and self.exists(step.name, step.path)
        return (box.state, step.verb) in TRANSITIONS

    def in_volume(self, name: str, path: str) -> bool:
        return self.boxes[name].volume and path.startswith(VOLUME_TARGET + "/")

    def exists(self, name: str, path: str) -> bool:
        """A process in container ``name`` sees a file at ``path``."""
        box = self.boxes[name]
        if self.in_volume(name, path):
            return path in self.volume_files
        return path in box.written or (path in LOWER_FILES and path not in box.deleted)

    def apply(self, step: Step) -> None:
        """Update the model for an accepted step."""
        if step.verb == "create":
            self.boxes[step.name] = Box(
                RUNNING if step.start else CREATED, step.discard_on, step.volume
            )
            return
        box = self.boxes[step.name]
        if step.verb in ("write", "append", "delete"):
            if self.in_volume(step.name, step.path):
                if step.verb == "delete":
                    self.volume_files.discard(step.path)
                else:
                    self.volume_files.add(step.path)
            elif step.verb == "delete":
                box.written.discard(step.path)
                if step.path in LOWER_FILES:
                    box.deleted.add(step.path)
            else:
                box.written.add(step.path)
                box.deleted.discard(step.path)
            return
        before = box.state
        after = TRANSITIONS[(before, step.verb)]
        was_running = before in (RUNNING, PAUSED)
        stopped = was_running and step.verb in ("stop", "kill", "restart", "rm -f")
        if after == REMOVED:
            del self.boxes[step.name]
            return
        if stopped and box.discard_on == "stop":
            box.discard()
        box.state = after


def run_step(docker: DockerHost, step: Step) -> str:
    """Run one step against a host (which refuses what Docker refuses)."""
    verb, name = step.verb, step.name
    if verb == "create":
        return docker.create(
            "app:1",
            name=name,
            start=step.start,
            discard_on=step.discard_on,
            volumes=[f"{VOLUME}:{VOLUME_TARGET}"] if step.volume else [],
        )
    if verb in ("write", "append"):
        return docker.write_file(name, step.path, step.data, append=verb == "append")
    if verb == "delete":
        return docker.delete(name, step.path)
    if verb == "rm":
        return docker.remove(name)
    if verb == "rm -f":
        return docker.remove(name, force=True)
    return str(getattr(docker, verb)(name))


def run_steps(docker: DockerHost, steps: Iterable[Step]) -> list[int]:
    """Run steps that must all be accepted; return the head seq after each one."""
    heads = []
    for step in steps:
        run_step(docker, step)
        heads.append(docker.log.head().seq)
    return heads


names = st.sampled_from(NAMES)
verbs = st.sampled_from(VERBS)
paths = st.sampled_from(PATHS)
contents = st.binary(min_size=0, max_size=64)


def creates(name: str) -> st.SearchStrategy[Step]:
    return st.builds(
        Step,
        verb=st.just("create"),
        name=st.just(name),
        start=st.booleans(),
        discard_on=st.sampled_from(("stop", "remove")),
        volume=st.booleans(),
    )


def writes(name: str) -> st.SearchStrategy[Step]:
    return st.builds(
        Step,
        verb=st.sampled_from(("write", "append")),
        name=st.just(name),
        path=paths,
        data=contents,
    )


def any_step() -> st.SearchStrategy[Step]:
    """A step that may or may not be accepted (the host refuses what Docker refuses)."""
    return names.flatmap(
        lambda n: st.one_of(
            creates(n),
            st.builds(Step, verb=verbs, name=st.just(n)),
            st.builds(
                Step,
                verb=st.sampled_from(("write", "append", "delete")),
                name=st.just(n),
                path=paths,
                data=contents,
            ),
        )
    )


def accepted_steps(model: Model) -> st.SearchStrategy[Step]:
    """A step the model accepts in its current state."""
    options: list[st.SearchStrategy[Step]] = []
    for name in NAMES:
        box = model.boxes.get(name)
        if box is None:
            options.append(creates(name))
            continue
        ok = [v for v in VERBS if (box.state, v) in TRANSITIONS]
        options.append(st.builds(Step, verb=st.sampled_from(ok), name=st.just(name)))
        if box.state == RUNNING:
            options.append(writes(name))
            existing = [p for p in PATHS if model.exists(name, p)]
            if existing:
                options.append(
                    st.builds(
                        Step,
                        verb=st.just("delete"),
                        name=st.just(name),
                        path=st.sampled_from(existing),
                    )
                )
    return st.one_of(options)


@st.composite
def command_sequences(draw: st.DrawFn, max_steps: int = 25) -> list[Step]:
    """A sequence of steps Docker accepts, one after another, on the ``app:1`` image."""
    model = Model()
    steps: list[Step] = []
    for _ in range(draw(st.integers(0, max_steps))):
        step = draw(accepted_steps(model))
        model.apply(step)
        steps.append(step)
    return steps


def model_of(steps: Iterable[Step]) -> Model:
    """The model after an accepted sequence."""
    model = Model()
    for step in steps:
        assert model.accepts(step), step
        model.apply(step)
    return model
