"""Fixtures for the projection tests: a simulated host with the test images registered."""

from __future__ import annotations

import pytest

from dockstate.core.commands import DockerHost
from dockstate.eventlog import EventLog
from dockstate.projections.query import Reader
from tests.projections.helpers import new_host


@pytest.fixture
def docker() -> DockerHost:
    """A DockerHost on an in-memory log with ``app:1``, ``deep:1`` and ``db:1`` registered."""
    return new_host()


@pytest.fixture
def docker_on(log: EventLog) -> DockerHost:
    """The same host on each log backend in turn (memory, then LMDB in ``tmp_path``)."""
    return new_host(log)


def reader(docker: DockerHost, every: int = 0) -> Reader:
    """A fresh reader of the host's log (no snapshots unless ``every``)."""
    return Reader(docker.log, snapshot_every=every)
