"""The envelope codec: what is stored for an event and how it reads back."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.eventlog import (
    ENVELOPE_VERSION,
    GENESIS_HASH,
    Command,
    CorruptStoreError,
    Envelope,
    chain_hash,
    decode,
    encode,
)
from dockstate.eventlog.envelope import Facts, decode_facts, decode_facts_batch, session_of

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(-9, 9), inner, max_size=3)
    ),
    max_leaves=10,
)
_envelopes = st.builds(
    Envelope,
    v=st.just(ENVELOPE_VERSION),
    seq=st.integers(1, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    type=st.text(),
    session=st.text(max_size=10),
    cmd=st.none()
    | st.tuples(
        st.text(max_size=8), st.dictionaries(st.text(max_size=5), _values), st.integers(0, 99)
    ),
    prev=st.binary(min_size=32, max_size=32),
    data=st.dictionaries(st.text(max_size=8), _values, max_size=5),
    subjects=st.lists(st.text(min_size=1, max_size=10), max_size=3).map(tuple),
)


@given(_envelopes)
def test_an_envelope_decodes_to_itself(env: Envelope):
    """Any envelope of msgpack values survives encoding and decoding unchanged."""
    raw = encode(env)

    assert decode(raw) == env
    assert encode(decode(raw)) == raw


def test_an_envelope_is_stored_as_an_array_in_field_order():
    """The stored form is a msgpack array of the fields in declaration order, bytes kept as bin."""
    env = Envelope(
        ENVELOPE_VERSION,
        7,
        123,
        "ContainerStarted",
        "s",
        None,
        GENESIS_HASH,
        {"b": b"\x00"},
        ("c1",),
    )

    stored: Any = msgpack.unpackb(encode(env), raw=False)

    assert stored == [
        ENVELOPE_VERSION,
        7,
        123,
        "ContainerStarted",
        "s",
        None,
        bytes(32),
        {"b": b"\x00"},
        ["c1"],
    ]
    assert list(Envelope._fields) == [
        "v",
        "seq",
        "ts",
        "type",
        "session",
        "cmd",
        "prev",
        "data",
        "subjects",
    ]


def test_lists_come_back_as_tuples_and_bytes_as_bytes():
    """Decoded payloads use tuples for arrays and keep bytes distinct from text."""
    env = Envelope(1, 1, 1, "T", "", None, GENESIS_HASH, {"l": [1, [2]], "b": b"x", "s": "x"}, ())

    back = decode(encode(env))

    assert back.data == {"l": (1, (2,)), "b": b"x", "s": "x"}
    assert isinstance(back.data["b"], bytes)


def test_the_command_of_an_event_is_named():
    """``command`` gives the producing command's name and arguments, or None."""
    env = Envelope(1, 1, 1, "T", "", ("run", {"image": "alpine"}), GENESIS_HASH, {}, ())

    assert env.command == Command("run", {"image": "alpine"})
    assert env._replace(cmd=None).command is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x93\x01\x02\x03",  # an array of three, not nine
        b"\x2a",  # a bare integer
        b"\x99\x01\x01\x01\xa1T\xa0\xc0\xc4",  # cut short inside prev
        b"\x99\x01\x01\x01\xa1T\xa0\xc0\xc4\x00\x80\x90\x00",  # one byte too many
    ],
)
def test_bytes_that_are_no_envelope_raise_corrupt_store_error(raw: bytes):
    """Decoding anything but an envelope raises `CorruptStoreError`, never a msgpack error,
    and a fact decoder reads the next good envelope right after one it refused."""
    with pytest.raises(CorruptStoreError, match="cannot decode event"):
        decode(raw)
    with pytest.raises(CorruptStoreError, match="cannot decode event"):
        decode_facts(raw)
    with pytest.raises(CorruptStoreError, match="cannot decode event"):
        session_of(raw)
    good = Envelope(1, 7, 9, "T", "s", ("write", {"a": 1}, 0), bytes(32), {"k": (1, 2)}, ("c1",))
    assert _read(decode_facts(encode(good))) == _read(good)
    assert session_of(encode(good)) == "s"


@pytest.mark.parametrize("fields", [5, 6, 8, 10])
def test_the_session_of_an_array_of_other_length_is_refused(fields: int):
    """`session_of` reads five fields and skips the rest, yet refuses an array that is not
    an envelope's nine, as `decode` does."""
    row = [1, 5, 100, "T", "sess", None, bytes(32), {}, [], 7][:fields]
    with pytest.raises(CorruptStoreError, match="cannot decode event"):
        session_of(msgpack.packb(row, use_bin_type=True))


def _typed(value: Any) -> Any:
    """A value with the type of every part spelled out: ``==`` alone takes 1 for True,
    1.0 for 1 and never tells a tuple from a list that a fold might be handed."""
    if isinstance(value, tuple | list):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    return (type(value).__name__, value)


def _read(env: Envelope | Facts) -> tuple[Any, ...]:
    """What a fold reads of an event."""
    return (env.v, env.seq, env.ts, env.type, env.data)


@given(_envelopes)
def test_facts_of_any_envelope_are_what_a_fold_needs(env: Envelope):
    """v, seq, ts, type and data come back as `decode` gives them, types and all; the rest
    is left undecoded."""
    facts = decode_facts(encode(env))

    assert _typed(_read(facts)) == _typed(_read(decode(encode(env))))
    assert {type(f) for f in (facts.session, facts.cmd, facts.prev, facts.subjects)} == {
        msgspec.Raw
    }


@pytest.mark.parametrize(
    "data",
    [
        # the common shapes, built by msgspec from the declared type
        {"container": "c" * 64, "path": "/a", "size": 3, "mode": 420, "chunks": (b"d" * 32,)},
        {"flag": True, "off": False, "n": 1, "x": 1.5, "none": None, "labels": {"a": "b"}},
        {"chunks": (), "empty": {}, "neg": -(2**63), "big": 2**64 - 1},
        # other shapes, decoded by msgpack: arrays of maps, of arrays, of str; bytes; int keys
        {"mounts": ({"type": "volume", "rw": True},), "tmpfs": ()},
        {"config": (("Cmd", ("sh", "-c")),), "volumes": ("/data",)},
        {"digest": b"\x00" * 32},
        {"ports": {80: "tcp"}},
    ],
)
def test_facts_keep_the_types_of_every_shape_of_data(data: dict[str, Any]):
    """Whichever decoder reads an envelope's data (msgspec for the common shapes, msgpack
    for the rest), arrays come back as tuples, bools as bools, ints as ints."""
    env = Envelope(1, 5, 6, "FileWritten", "s", ("write", {"a": 1}, 0), bytes(32), data, ("c",))

    facts = decode_facts(encode(env))

    assert _typed(_read(facts)) == _typed(_read(env))


def test_chain_hash_is_sha256_of_the_previous_hash_then_the_stored_bytes():
    """h(n) = sha256(h(n-1) || bytes(n)), starting from 32 zero bytes."""
    raw = b"stored envelope bytes"

    assert bytes(32) == GENESIS_HASH
    assert chain_hash(GENESIS_HASH, raw) == hashlib.sha256(bytes(32) + raw).digest()
    assert chain_hash(b"\x01" * 32, raw) != chain_hash(GENESIS_HASH, raw)


def test_a_batch_of_facts_is_what_decoding_each_gives():
    """`decode_facts_batch` decodes a batch in one pass, or one by one when an envelope has
    another shape; bytes that are no envelope are refused as by `decode_facts`."""
    plain = [
        Envelope(1, i, i, "FileWritten", "", None, bytes(32), {"path": f"/f{i}"}, ())
        for i in range(1, 4)
    ]
    nested = Envelope(1, 4, 4, "ImageRegistered", "", None, bytes(32), {"c": ((1, 2),)}, ())
    raws = [encode(e) for e in plain]

    assert _typed([_read(f) for f in decode_facts_batch(raws)]) == _typed([_read(e) for e in plain])
    mixed = [*raws, encode(nested)]
    assert _typed([_read(f) for f in decode_facts_batch(mixed)]) == _typed(
        [_read(e) for e in (*plain, nested)]
    )
    with pytest.raises(CorruptStoreError, match="cannot decode event"):
        decode_facts_batch([*raws, b"\xc1"])
