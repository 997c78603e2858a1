"""Pausing the cyclic collector around a fold (projections._gc)."""

from __future__ import annotations

import gc

from dockstate.projections import _gc


def test_the_collector_is_paused_inside_and_enabled_again_after():
    """Inside, the collector is off; after, it is on again and nothing stays frozen."""
    assert gc.isenabled()
    with _gc.paused():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert len(made) == 1000


def test_a_collector_disabled_before_stays_disabled():
    """A caller that turned the collector off keeps it off."""
    gc.disable()
    try:
        with _gc.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_a_caller_froze_stay_frozen():
    """The freeze-and-unfreeze on leaving is skipped when the program froze objects itself."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _gc.paused():
            [[i] for i in range(100)]
        # frozen objects that die meanwhile leave the count (another test's, on this
        # worker): it may drop, but neither empties (an unfreeze) nor grows (a freeze)
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
