"""The event envelope and its msgpack codec.

An envelope is stored as a msgpack *array* in field order rather than a map:
it is about a third smaller and decodes faster, and the field order is part of
the log format (`FORMAT_VERSION`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgpack
import msgspec

from dockstate.eventlog.errors import CorruptStoreError

#: Version of the envelope layout, stored in every envelope as ``v``.
ENVELOPE_VERSION: Final = 1

#: The hash that precedes event 1 in the chain.
GENESIS_HASH: Final = bytes(32)


class Command(NamedTuple):
    """The user command that produced an event: enough to re-execute it."""

    name: str
    args: Mapping[str, Any]


class Envelope(NamedTuple):
    """One stored event.

    Attributes:
        v: envelope layout version.
        seq: position in the log, dense from 1.
        ts: recorded wall-clock time in ns since the epoch, strictly increasing per store.
        type: the event's stable type tag (``"ContainerStarted"``); the log never interprets it.
        session: the recording session the event belongs to ("" when none).
        cmd: ``(name, args, index)``: the command that produced it and this event's
            position among that command's events (0 begins a command), or None;
            see `command`.
        prev: hash of the previous envelope (`GENESIS_HASH` for seq 1).
        data: the event's payload, plain msgpack-able values.
        subjects: ids of the objects the event is about, for the by-subject index.
    """

    v: int
    seq: int
    ts: int
    type: str
    session: str
    cmd: tuple[str, Mapping[str, Any], int] | None
    prev: bytes
    data: Mapping[str, Any]
    subjects: tuple[str, ...]

    @property
    def command(self) -> Command | None:
        """The producing command with named fields (decoded lazily: scans skip it)."""
        return None if self.cmd is None else Command(self.cmd[0], self.cmd[1])

    @property
    def begins_command(self) -> bool:
        """This is the first event of the command that produced it."""
        return self.cmd is None or self.cmd[2] == 0


class NewEvent(NamedTuple):
    """An event a caller asks the log to append; the log assigns seq, ts and prev.

    ``ts`` may be given (import and replay keep recorded times); it is still made
    strictly increasing.
    """

    type: str
    data: Mapping[str, Any]
    subjects: Sequence[str] = ()
    ts: int | None = None


#: Packs an envelope (a tuple, so a msgpack array in field order); `encode` is the documented name.
pack_envelope: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpackb = msgpack.unpackb
_new = tuple.__new__
_FIELDS: Final = len(Envelope._fields)


def encode(env: Envelope) -> bytes:
    """Encode an envelope to its stored bytes."""
    # An Envelope is a tuple, which msgpack writes as an array in field order.
    return pack_envelope(env)


def decode(raw: bytes) -> Envelope:
    """Decode stored bytes to an envelope.

    Raises:
        CorruptStoreError: the bytes are not an envelope this version reads.
    """
    try:
        fields = _unpackb(raw, raw=False, use_list=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptStoreError(f"cannot decode event: {exc}") from exc
    # What Envelope._make does, without its Python-level call: every read decodes.
    if type(fields) is not tuple or len(fields) != _FIELDS:
        raise CorruptStoreError(f"cannot decode event: not an envelope of {_FIELDS} fields")
    return _new(Envelope, fields)


#: The shapes of ``data`` the fold's decoder builds in C (msgspec): every value a scalar,
#: a map of scalars, or a tuple of bytes (blob digests) and maps of scalars (mounts).
#: That is all but a few events of a busy host; the rest (an image's config: arrays of
#: arrays) fail this type and are decoded by msgpack. Either way the values are what
#: `decode` gives: tuples for arrays, bytes for bin, str for str.
_Scalar = str | int | bool | float | None
_FactData = dict[str, _Scalar | tuple[bytes | dict[str, _Scalar], ...] | dict[str, _Scalar]]


class Facts(NamedTuple):
    """What a fold reads of a stored event: `Envelope`'s fields, ``v, seq, ts, type`` and
    ``data`` decoded, ``session``, ``cmd``, ``prev`` and ``subjects`` left as undecoded
    `msgspec.Raw` (a fold never reads them, and the command's args alone are about a
    fifth of an envelope). msgspec builds it in C from the declared field types.
    """

    v: int
    seq: int
    ts: int
    type: str
    session: msgspec.Raw
    cmd: msgspec.Raw
    prev: msgspec.Raw
    data: _FactData
    subjects: msgspec.Raw


_decode_facts_typed = msgspec.msgpack.Decoder(Facts).decode
_SKIPPED: Final = msgspec.Raw()


def decode_facts(raw: bytes) -> Facts:
    """The `Facts` of stored bytes: what a fold needs of an envelope.

    msgspec decoding into the declared type is about 2.4x faster than msgpack's
    generic unpacking (no per-object Python-level dispatch, map keys cached) and
    skips the fields a fold does not read; an envelope whose data has another shape,
    or whose fields have another type, is decoded by `decode`, which also says why
    bytes that are no envelope are refused.

    Raises:
        CorruptStoreError: the bytes are not an envelope this version reads.
    """
    try:
        return _decode_facts_typed(raw)
    except msgspec.ValidationError:
        v, seq, ts, etype, _, _, _, data, _ = decode(raw)  # another shape; raises if corrupt
    except msgspec.DecodeError:
        decode(raw)  # raises CorruptStoreError with msgpack's reason
        raise CorruptStoreError("cannot decode event: malformed msgpack") from None
    skipped = _SKIPPED
    return _new(Facts, (v, seq, ts, etype, skipped, skipped, skipped, data, skipped))


def decode_facts_batch(raws: Sequence[bytes]) -> list[Facts]:
    """`decode_facts` of each of ``raws``: in one pass in C when every envelope has the
    declared shape (no Python-level call per event), one by one when one has not.

    Raises:
        CorruptStoreError: one of the byte strings is not an envelope this version reads.
    """
    try:
        return list(map(_decode_facts_typed, raws))
    except msgspec.DecodeError:  # ValidationError too: another shape somewhere, or corrupt
        return list(map(decode_facts, raws))


class _Heading(msgspec.Struct, array_like=True):
    """An envelope's first fields, up to ``session``; msgspec skips the rest unread."""

    v: int
    seq: int
    ts: int
    type: str
    session: str


_decode_heading = msgspec.msgpack.Decoder(_Heading).decode


def session_of(raw: bytes) -> str:
    """The session an envelope was recorded in, without decoding the rest of it.

    Raises:
        CorruptStoreError: the bytes are not an envelope this version reads.
    """
    # msgspec reads the first five fields and skips the rest unchecked, so first see that
    # the bytes are the array of an envelope's nine fields (a msgpack fixarray of 9)
    if raw[:1] == _NINE_FIELDS:
        try:
            return _decode_heading(raw).session
        except msgspec.DecodeError:
            pass
    return decode(raw).session  # another shape, or corrupt: `decode` says which


#: The first byte of every envelope: a msgpack array of `Envelope`'s nine fields.
_NINE_FIELDS: Final = bytes([0x90 | _FIELDS])


def chain_hash(prev: bytes, raw: bytes) -> bytes:
    """h(n) = sha256(h(n-1) || bytes(n))."""
    return hashlib.sha256(prev + raw).digest()
