"""dockstate's storage layer: the append-only, hash-chained event log.

It knows nothing of Docker: envelopes carry an opaque type tag and payload.
"""

from dockstate.eventlog._lmdb import FORMAT_VERSION, LmdbEventLog, LmdbWriteTxn
from dockstate.eventlog.blobs import CHUNK_SIZE, content_digest
from dockstate.eventlog.envelope import (
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    Envelope,
    Facts,
    NewEvent,
    chain_hash,
    decode,
    encode,
)
from dockstate.eventlog.errors import (
    ConflictError,
    CorruptStoreError,
    DockstateError,
    EmptySubjectError,
    InvalidParameterError,
    NotFoundError,
    StorageError,
    StoreFormatError,
)
from dockstate.eventlog.log import Clock, EventLog, Head, Snapshot, VerifyReport, WriteTxn
from dockstate.eventlog.memory import InMemoryEventLog, InMemoryWriteTxn

__all__ = [
    "CHUNK_SIZE",
    "ENVELOPE_VERSION",
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "Clock",
    "Command",
    "ConflictError",
    "CorruptStoreError",
    "DockstateError",
    "EmptySubjectError",
    "Envelope",
    "EventLog",
    "Facts",
    "Head",
    "InMemoryEventLog",
    "InMemoryWriteTxn",
    "InvalidParameterError",
    "LmdbEventLog",
    "LmdbWriteTxn",
    "NewEvent",
    "NotFoundError",
    "Snapshot",
    "StorageError",
    "StoreFormatError",
    "VerifyReport",
    "WriteTxn",
    "chain_hash",
    "content_digest",
    "decode",
    "encode",
]
