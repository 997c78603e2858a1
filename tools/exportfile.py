"""Export files: a recorded stretch of a store, self-contained and verifiable on its own.

The file is a stream of msgpack records, written in one pass:

    ["header", {format, version, store_id, from, to, session, prev, created}]
    ["blob", digest, bytes]          every blob the next record references, before it
    ["seed", envelope bytes]         image registrations the stretch depends on
    ["event", envelope bytes]        the stretch itself, with its hash chain
    ["end", {events, seeds, blobs, head, digest}]

``prev`` is the chain hash before the first event, so every event's link can be
checked; ``digest`` is the sha256 of every byte before the end record, so an edit
anywhere in the file is caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final

import msgpack

from dockstate.core.errors import DockstateError, InvalidParameterError
from dockstate.core.names import chain_ids
from dockstate.core.state import decode_table
from dockstate.eventlog.blobs import digested
from dockstate.eventlog.envelope import Envelope, chain_hash, decode, encode
from dockstate.eventlog.errors import CorruptStoreError
from dockstate.eventlog.log import EventLog

FORMAT: Final = "dockstate-export"
VERSION: Final = 1
#: data fields that hold blob digests.
_BLOB_FIELDS: Final = ("chunks", "table", "config", "tar_split")


#: What `ExportFile.read_blobs` indexes; a constant, not ``tuple | list`` (a new union per call).
_SEQUENCES: Final = (tuple, list)


class ExportError(DockstateError):
    """An export file that is not one, or does not verify."""


def referenced_blobs(env: Envelope, read_blobs: Callable[[Sequence[bytes]], bytes]) -> list[bytes]:
    """The blobs an event needs: its digest fields, and the files of a layer's table."""
    out: list[bytes] = []
    for key in _BLOB_FIELDS:
        out.extend(bytes(d) for d in env.data.get(key) or ())
    if env.type == "LayerRegistered" and env.data.get("table"):
        for _path, entry in decode_table(read_blobs(list(env.data["table"]))):
            out.extend(entry.chunks)
    return out


def _image_seed(log: EventLog, first: int, last: int) -> list[Envelope]:
    """Registrations (layers, image, tags) of images used in first..last but made before it."""
    used: list[str] = []
    made: set[str] = set()
    for env in log.read(first, last):
        if env.type == "ImageRegistered":
            made.add(env.data["image_id"])
        elif env.type == "ContainerCreated":
            iid = env.data["image_id"]
            if iid not in made and iid not in used:
                used.append(iid)
    if first <= 1:
        return []
    seeds: dict[int, Envelope] = {}
    for iid in used:
        for env in log.by_subject(f"i:{iid}", 1, first - 1):
            if env.type in ("ImageRegistered", "ImageTagged"):
                seeds[env.seq] = env
            if env.type == "ImageRegistered":
                for chain in chain_ids(list(env.data["diff_ids"])):
                    for lenv in log.by_subject(f"l:{chain}", 1, first - 1):
                        if lenv.type == "LayerRegistered":
                            seeds[lenv.seq] = lenv
    return [seeds[s] for s in sorted(seeds)]


def session_range(log: EventLog, session: str) -> tuple[int, int]:
    """The first and last seq recorded in a session."""
    first = last = 0
    for env in log.read(1):
        if env.session == session:
            first = first or env.seq
            last = env.seq
    if not first:
        raise InvalidParameterError(f"no events were recorded in session {session!r}")
    return first, last


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.pack = msgpack.Packer(use_bin_type=True).pack

    def record(self, *items: Any) -> None:
        raw = self.pack(list(items))
        self.digest.update(raw)
        self.out.write(raw)


def export(
    log: EventLog,
    out_path: str | os.PathLike[str],
    *,
    start: int | None = None,
    stop: int | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    """Write events ``start..stop`` (or a session's stretch) to ``out_path``; returns the header.

    A session's stretch runs from its first event to its last, including any
    events of other sessions recorded in between, so the chain stays whole.
    """
    head = log.head().seq
    if session is not None:
        start, stop = session_range(log, session)
    first = start or 1
    last = head if stop is None else stop
    if first < 1 or last > head or first > last:
        raise InvalidParameterError(
            f"nothing to export in seq {first}..{last} (the log holds 1..{head})"
        )
    first_env = next(log.read(first, first))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "store_id": log.store_id,
        "from": first,
        "to": last,
        "session": session,
        "prev": first_env.prev,
        "created": time.time_ns(),
    }
    path = Path(out_path)
    tmp = path.with_name(path.name + ".part")
    sent: set[bytes] = set()
    counts = {"events": 0, "seeds": 0, "blobs": 0}
    with open(tmp, "wb") as fh:
        w = _Writer(fh)
        w.record("header", header)

        def blobs_for(env: Envelope) -> None:
            for digest in referenced_blobs(env, log.read_blobs):
                if digest not in sent:
                    w.record("blob", digest, log.get_blob(digest))
                    sent.add(digest)
                    counts["blobs"] += 1

        for env in _image_seed(log, first, last):
            blobs_for(env)
            w.record("seed", encode(env))
            counts["seeds"] += 1
        h = first_env.prev
        for env in log.read(first, last):
            blobs_for(env)
            raw = encode(env)
            w.record("event", raw)
            h = chain_hash(h, raw)
            counts["events"] += 1
        w.record("end", {**counts, "head": h, "digest": w.digest.digest()})
    os.replace(tmp, path)
    return header


@dataclasses.dataclass(slots=True)
class ExportFile:
    """An export file, read back and verified."""

    header: dict[str, Any]
    seeds: list[Envelope]
    events: list[Envelope]
    blobs: dict[bytes, bytes]
    head: bytes

    def read_blobs(self, digests: Iterable[bytes]) -> bytes:
        try:
            if isinstance(digests, _SEQUENCES) and len(digests) == 1:
                return self.blobs[bytes(digests[0])]  # most files are one chunk
            return b"".join(self.blobs[bytes(d)] for d in digests)
        except KeyError as exc:
            raise ExportError(f"blob {exc.args[0].hex()} is missing from the export") from None


def read(path: str | os.PathLike[str]) -> ExportFile:
    """Read and verify an export file.

    Raises:
        ExportError: not an export file, or the first problem found: a blob whose
            bytes do not match its digest, a broken link between events, a missing
            blob, a truncated file, or a file digest that does not match.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"open {p}: no such file")
    data = p.read_bytes()
    unpacker = msgpack.Unpacker(
        raw=False, use_list=True, strict_map_key=False, max_buffer_size=max(len(data), 1 << 20)
    )
    unpacker.feed(data)
    digest = hashlib.sha256()
    pos = 0
    header: dict[str, Any] | None = None
    seeds: list[Envelope] = []
    events: list[Envelope] = []
    blobs: dict[bytes, bytes] = {}
    h = b""
    end: dict[str, Any] | None = None
    try:
        for item in unpacker:
            start, pos = pos, unpacker.tell()
            if not isinstance(item, list) or not item:
                raise ExportError(f"{p}: not a dockstate export (bad record at byte {start})")
            kind = item[0]
            if kind == "end":
                if digest.digest() != item[1].get("digest"):
                    raise ExportError(f"{p}: the file was altered: its digest does not match")
                if pos != len(data):
                    # the digest covers the bytes before the end record only
                    raise ExportError(f"{p}: unexpected data after the end record")
                end = item[1]
                break
            digest.update(data[start:pos])
            if kind == "header":
                header = item[1]
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise ExportError(f"{p}: not a dockstate export")
                if int(header.get("version", 0)) > VERSION:
                    raise ExportError(
                        f"{p}: written by a newer dockstate (export version {header['version']}); "
                        f"this one reads version {VERSION}"
                    )
                h = bytes(header["prev"])
            elif header is None:
                raise ExportError(f"{p}: not a dockstate export (no header)")
            elif kind == "blob":
                d = bytes(item[1])
                # checked once here; a replay that writes the blob again does not hash it again
                content = digested(bytes(item[2]), d)
                if content is None:
                    raise ExportError(f"{p}: blob {d.hex()} does not match its digest")
                blobs[d] = content
            elif kind in ("seed", "event"):
                raw = bytes(item[1])
                env = decode(raw)
                if kind == "event":
                    if env.prev != h:
                        raise ExportError(
                            f"{p}: event {env.seq} does not link to the event before it"
                        )
                    h = chain_hash(h, raw)
                    events.append(env)
                else:
                    seeds.append(env)
                missing = [d for d in _direct_blobs(env) if d not in blobs]
                if missing:
                    raise ExportError(
                        f"{p}: event {env.seq} needs blob {missing[0].hex()}, which is missing"
                    )
            else:
                raise ExportError(f"{p}: unknown record {kind!r}")
    except (
        ValueError,
        msgpack.UnpackException,
        CorruptStoreError,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        raise ExportError(f"{p}: truncated or corrupt export ({exc})") from exc
    if header is None or end is None:
        raise ExportError(f"{p}: truncated export (no end record)")
    if end.get("events") != len(events) or bytes(end.get("head", b"")) != h:
        raise ExportError(f"{p}: the end record does not match the events")
    return ExportFile(header, seeds, events, blobs, h)


def _direct_blobs(env: Envelope) -> list[bytes]:
    return [bytes(d) for key in _BLOB_FIELDS for d in env.data.get(key) or ()]
