"""Where a store lives and how the programs open it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dockstate.eventlog import LmdbEventLog


def default_store_path() -> Path:
    """``$DOCKSTATE_STORE``, else ``~/.local/share/dockstate``."""
    env = os.environ.get("DOCKSTATE_STORE")
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "dockstate"


def open_store(
    path: str | os.PathLike[str] | None = None, *, readonly: bool = False
) -> LmdbEventLog:
    """Open (creating on first use) the store at ``path`` or the default place."""
    return LmdbEventLog(path or default_store_path(), clock=time.time_ns, readonly=readonly)
