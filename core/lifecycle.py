"""The container lifecycle, declared once as a `transitions` state machine.

The table below is the single definition. Live commands and replayed events
both consult it, but not by firing the Machine: a ``trigger`` call costs about
8 us, and replay validates millions of events. Instead the table is compiled
once, *from the built Machine's own events*, into a ``{(state, trigger): dest}``
dict (`next_state`), so what the Machine allows and what the hot path allows
cannot drift apart.

States are Docker's (``docker inspect`` ``State.Status``) plus ``removed``, the
state after ``docker rm``, which Docker does not report because the container
is gone. ``restarting`` and ``removing`` are transient in Docker; commands here
are atomic, so a container is never observed in them.
"""

from __future__ import annotations

import enum
from typing import Final

from transitions import Machine


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    REMOVED = "removed"
    DEAD = "dead"


class Trigger(enum.StrEnum):
    """What happened to a container, named as Docker's event actions."""

    START = "start"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    STOP = "stop"
    KILL = "kill"
    DIE = "die"
    RESTART = "restart"
    DESTROY = "destroy"
    FAIL_REMOVAL = "fail_removal"


# The Machine is given plain strings: it treats Enum states by *name*, and the
# table must speak the values that events and ``docker inspect`` use.
C, R, P, X, D, DEAD = (s.value for s in State)

#: The lifecycle. Sources are the states an event may happen in.
TRANSITIONS: Final[list[dict[str, object]]] = [
    {"trigger": Trigger.START.value, "source": [C, X], "dest": R},
    {"trigger": Trigger.PAUSE.value, "source": R, "dest": P},
    {"trigger": Trigger.UNPAUSE.value, "source": P, "dest": R},
    # stop and kill of a paused container are allowed: Docker unpauses it so it can exit.
    {"trigger": Trigger.STOP.value, "source": [R, P], "dest": X},
    {"trigger": Trigger.KILL.value, "source": [R, P], "dest": X},
    # the process ended on its own (recorded from a real engine, or simulated).
    {"trigger": Trigger.DIE.value, "source": [R, P], "dest": X},
    {"trigger": Trigger.RESTART.value, "source": [C, X], "dest": R},
    # rm -f kills first, so a removal always starts from a stopped container.
    {"trigger": Trigger.DESTROY.value, "source": [C, X, DEAD], "dest": D},
    {"trigger": Trigger.FAIL_REMOVAL.value, "source": [C, X], "dest": DEAD},
]

#: The Machine itself: built once, no callbacks (they would run on every replay),
#: no auto transitions (``to_<state>`` would bypass the table).
MACHINE: Final = Machine(
    states=[s.value for s in State],
    transitions=TRANSITIONS,
    initial=C,
    auto_transitions=False,
    send_event=False,
)


def _compile(machine: Machine) -> dict[tuple[str, str], State]:
    table: dict[tuple[str, str], State] = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                table[(source, trigger)] = State(str(transition.dest))
    return table


#: ``(state, trigger) -> dest``, read off the Machine.
TABLE: Final = _compile(MACHINE)


def next_state(state: str, trigger: str) -> State | None:
    """The state after ``trigger`` in ``state``, or None if the lifecycle forbids it."""
    return TABLE.get((state, trigger))


def allowed(state: str, trigger: str) -> bool:
    """Ask the Machine itself (slow path, for tests and error messages)."""
    return bool(MACHINE.get_transitions(trigger, source=state))
