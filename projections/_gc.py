"""The cyclic garbage collector, paused around folds and snapshot loads.

A fold or a snapshot load makes hundreds of thousands of objects (entries,
trees, containers) and no reference cycles: refcounting frees whatever it
drops. The cyclic collector's passes over them are wasted work, and so is
the first young-generation pass after it is enabled again, which walks
everything made while it was paused (about a tenth of a ``state_at``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the collector; on leaving, count what was made as old instead of young.

    Freezing and unfreezing moves every tracked object to the oldest generation
    without examining any (the lists are spliced), so the state just built is
    left to the rare full collections. A program that froze objects itself
    keeps its frozen set: the objects are then left young, as without this.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
