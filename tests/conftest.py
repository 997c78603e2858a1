"""Shared fixtures and Hypothesis settings profiles for the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from dockstate.eventlog import EventLog, InMemoryEventLog, LmdbEventLog

# "dev" keeps the local run quick; "ci" drops the deadline, which a loaded CI
# machine with fsync-ing stores cannot promise. Select with HYPOTHESIS_PROFILE.
settings.register_profile("dev", max_examples=50, deadline=2000)
settings.register_profile("ci", max_examples=50, deadline=None, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: 2023-11-14T22:13:20Z in ns: a plausible recording time, far from 0.
EPOCH = 1_700_000_000_000_000_000


class FakeClock:
    """A deterministic clock: each reading is ``step`` ns after the previous one.

    ``set`` moves it anywhere, backwards included, to show what the log does
    with a clock it cannot trust.
    """

    def __init__(self, start: int = EPOCH, step: int = 1_000) -> None:
        self.now = start
        self.step = step
        self.readings = 0

    def __call__(self) -> int:
        now = self.now
        self.now += self.step
        self.readings += 1
        return now

    def set(self, ns: int) -> None:
        self.now = ns


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock for one test."""
    return FakeClock()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store directory that does not exist yet."""
    return tmp_path / "store"


@pytest.fixture(params=["memory", "lmdb"])
def log(request: pytest.FixtureRequest, store_path: Path, clock: FakeClock) -> Iterator[EventLog]:
    """Each `EventLog` backend in turn, empty, reading the test's fake clock."""
    backend: EventLog
    if request.param == "memory":
        backend = InMemoryEventLog(clock=clock)
    else:
        backend = LmdbEventLog(store_path, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def lmdb_log(store_path: Path, clock: FakeClock) -> Iterator[LmdbEventLog]:
    """An empty LMDB store in ``tmp_path``, for what only the LMDB backend has."""
    backend = LmdbEventLog(store_path, clock=clock)
    yield backend
    backend.close()
