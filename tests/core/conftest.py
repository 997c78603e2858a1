"""Fixtures for the domain tests: a DockerHost over a real LMDB store with registered images."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockstate.core.commands import DockerHost
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog
from tests.conftest import FakeClock
from tests.core.helpers import APP_IMAGE, DB_IMAGE, register_image

#: The session every test host records on its events.
SESSION = "test-session"


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[LmdbEventLog]:
    """An empty LMDB store in ``tmp_path``.

    Not durable: fsync-ing every commit would only slow the suite; it does not
    change what a transaction commits or refuses.
    """
    log = LmdbEventLog(tmp_path / "store", clock=clock, durable=False)
    yield log
    log.close()


@pytest.fixture
def docker(store: LmdbEventLog) -> DockerHost:
    """A DockerHost with the ``app:1`` and ``db:1`` images registered, ids from a seeded random."""
    host = DockerHost(store, ids=RandomIds(random.Random(1234)), session=SESSION)
    register_image(host, APP_IMAGE)
    register_image(host, DB_IMAGE)
    return host
