"""Commands racing from several processes on one LMDB store: the single writer lets only one win."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dockstate.core.commands import DockerHost
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog
from tests.core._race import race
from tests.core.helpers import APP_IMAGE, fold, register_image

pytestmark = pytest.mark.slow

RACERS = 4


def prepare(path: Path, *, container: str | None = None) -> str | None:
    """A store with ``app:1`` (and optionally a created container); closed before the race."""
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        docker = DockerHost(log, ids=RandomIds(random.Random(99)), session="setup")
        register_image(docker, APP_IMAGE)
        return docker.create("app:1", name=container) if container else None
    finally:
        log.close()


def run_race(path: Path, verb: str, arg: str) -> list[tuple[int, str, str]]:
    """Start RACERS spawned processes that run ``verb arg`` at once; collect what each got."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS)
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(target=race, args=(str(path), i, verb, arg, barrier, results))
        for i in range(RACERS)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * RACERS
    return sorted(outcomes)


def events(path: Path) -> tuple[Counter[str], list[Any]]:
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        envs = list(log.read())
        assert log.verify().ok
        fold(log)  # the raced log is still a possible history
        return Counter(e.type for e in envs), envs
    finally:
        log.close()


def test_racing_rm_of_one_container_lets_exactly_one_win(tmp_path: Path):
    """Four processes ``rm`` the same container: one removes it, the others find no such container."""
    store = tmp_path / "store"
    cid = prepare(store, container="victim")

    outcomes = run_race(store, "rm", "victim")

    wins = [o for o in outcomes if o[1] == "ok"]
    losses = [o for o in outcomes if o[1] != "ok"]
    assert [w[2] for w in wins] == [cid]
    assert {(kind, msg) for _, kind, msg in losses} == {
        ("NoSuchContainerError", "No such container: victim")
    }
    counts, _ = events(store)
    assert counts["ContainerRemoved"] == 1


def test_racing_create_with_one_name_lets_exactly_one_win(tmp_path: Path):
    """Four processes create a container named ``same``: one does, the others meet the name conflict."""
    store = tmp_path / "store"
    prepare(store)

    outcomes = run_race(store, "create", "same")

    wins = [o for o in outcomes if o[1] == "ok"]
    assert len(wins) == 1
    winner = wins[0][2]
    conflict = (
        f'Conflict. The container name "/same" is already in use by container "{winner}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert {(kind, msg) for _, kind, msg in outcomes if kind != "ok"} == {
        ("NameInUseError", conflict)
    }
    counts, envs = events(store)
    assert counts["ContainerCreated"] == 1
    assert [e.data["container"] for e in envs if e.type == "ContainerCreated"] == [winner]


def test_racing_start_of_one_container_starts_it_once(tmp_path: Path):
    """Four processes start the same created container: all succeed, one ContainerStarted is recorded."""
    store = tmp_path / "store"
    cid = prepare(store, container="web")

    outcomes = run_race(store, "start", "web")

    assert [(kind, value) for _, kind, value in outcomes] == [("ok", cid)] * RACERS
    counts, _ = events(store)
    assert counts["ContainerStarted"] == 1


def test_racing_volume_create_of_one_name_creates_it_once(tmp_path: Path):
    """Four processes create volume ``data``: all succeed, one VolumeCreated is recorded."""
    store = tmp_path / "store"
    prepare(store)

    outcomes = run_race(store, "volume create", "data")

    assert [(kind, value) for _, kind, value in outcomes] == [("ok", "data")] * RACERS
    counts, envs = events(store)
    assert counts["VolumeCreated"] == 1
    (created,) = [e for e in envs if e.type == "VolumeCreated"]
    assert created.session.startswith("racer-")
