"""Worker processes for the concurrency tests: each opens its own store handle and DockerHost.

Kept in a module of its own so that ``spawn``-ed children can import it.
"""

from __future__ import annotations

import random
import time
from multiprocessing.synchronize import Barrier
from queue import Queue
from typing import Any

from dockstate.core.commands import DockerHost
from dockstate.core.errors import DockstateError
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog


def race(  # noqa: PLR0917 - multiprocessing passes a target its args positionally
    store: str, worker: int, verb: str, arg: str, barrier: Barrier, results: Queue[Any]
) -> None:
    """Wait for every racer, run one command, report ``(worker, "ok", value)`` or the refusal."""
    log = LmdbEventLog(store, clock=time.time_ns)
    try:
        docker = DockerHost(log, ids=RandomIds(random.Random(worker)), session=f"racer-{worker}")
        docker.state()  # bring the write model up to date before the race starts
        barrier.wait(timeout=60)
        try:
            if verb == "rm":
                value = docker.remove(arg)
            elif verb == "create":
                value = docker.create("app:1", name=arg)
            elif verb == "start":
                value = docker.start(arg)
            elif verb == "volume create":
                value = docker.volume_create(arg)
            else:
                raise ValueError(verb)
            results.put((worker, "ok", value))
        except DockstateError as exc:
            results.put((worker, type(exc).__name__, str(exc)))
    finally:
        log.close()
