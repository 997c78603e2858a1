"""Read models folded from the event log: the host as of any seq, audit, views."""

from dockstate.projections.asof import Projector, State
from dockstate.projections.ledger import Ledger, LossRecord, LostFile, Persisted
from dockstate.projections.query import Reader

__all__ = ["Ledger", "LossRecord", "LostFile", "Persisted", "Projector", "Reader", "State"]
