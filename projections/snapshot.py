"""Snapshot codec: a `Host` and its `Ledger` as bytes, and back.

Snapshots make ``state_at`` cheap: load the newest one at or below the
target, fold the rest. Loading must be quick even after a million events, so
a snapshot holds little more than the rows of the host: the bulky parts (each
writable layer, volume contents, removed containers) go to the log's blob
store when it is written with one (``encode(..., store=)``), and everything
bulky is decoded on first use; the loss records are in ledger segments
(`encode_segment`), each holding the records since the previous snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import msgpack
import msgspec

from dockstate.core.mounts import VOLUME, Mount
from dockstate.core.state import (
    BlobReader,
    Container,
    Host,
    Image,
    Layer,
    LayerCache,
    LazyTree,
    Lent,
    Pending,
    Stored,
    Volume,
    decode_tree,
    encode_tree,
    id_prefixes,
    tree_of,
)
from dockstate.projections import _gc
from dockstate.projections.ledger import Ledger, LossRecord, LostFile, Persisted

#: Bump when the encoding or the fold changes: old snapshots are then ignored.
#: 2: tmpfs trees are encoded one by one (version 1 wrote maps that could not be read back).
#: 4: the ledger in segments (see `encode_segment`); bulky parts in the blob store,
#: removed containers decoded when used (3 was a development format).
#: 5: a tree is the array of its paths and that of its entries (see `encode_tree`), a
#: mount the array of its fields.
#: 6: the removed ids' `id_prefixes`, sorted (``removed_prefixes``).
#: 7: containers and volumes are arrays of their fields (refs a map, mounts maps of the
#: fields that differ from the defaults), decoded by msgspec.
#: 8: the trees of running containers and of the volumes they mount are inline (see
#: `INLINE_LIVE_UNDER`).
VERSION: Final = 8
#: The snapshots db name of ledger segments (the host's is `asof.NAME`).
LEDGER: Final = "ledger"


def _pack(value: Any) -> bytes:
    raw: bytes = msgpack.packb(value, use_bin_type=True)
    return raw


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, use_list=False, strict_map_key=False)


#: The parts of a snapshot `_Snapshot` leaves raw, unpacked by msgpack (tuples for arrays).
_RAW_PARTS: Final = (
    "layers",
    "images",
    "tags",
    "removed",
    "removed_ids",
    "settings",
    "ledger",
)
#: Stores bytes in the log's blob store, returning their chunk digests (``WriteTxn.put_blob``).
BlobWriter = Callable[[bytes], list[bytes]]
#: Parts at least this big go to the blob store when a snapshot is written with one.
STORE_OVER: Final = 512
#: The writable layer of a running container, and the files of a volume one mounts, are
#: kept in the snapshot itself when smaller than this, wherever they were: they are what
#: the events after the snapshot touch first. Read from the blob store, each costs a
#: lookup at a random place of the store (the blobs are keyed by digest), which on a
#: store not all in the page cache is a disk read. Idle ones stay in the blob store,
#: written once however many snapshots share them.
INLINE_LIVE_UNDER: Final = 64 * 1024
#: Removed containers are encoded in chunks of this many, oldest first: all but the
#: last chunk are the same bytes from one snapshot to the next, so stored once.
REMOVED_CHUNK: Final = 256


def _bulky(
    value: bytes | Stored, store: BlobWriter | None, *, live: bool = False
) -> bytes | list[bytes]:
    """A bulky part as a snapshot field: inline bytes, or the digests of a blob.

    A ``live`` part (see `INLINE_LIVE_UNDER`) is inline unless it is big.
    """
    if isinstance(value, Stored):
        if store is not None and not live:
            return list(value.digests)  # not read since it was loaded: the same blob again
        value = value.load()
    if store is None or len(value) < STORE_OVER or (live and len(value) < INLINE_LIVE_UNDER):
        return value
    return store(value)


def _tree_field(
    value: LazyTree, store: BlobWriter | None, *, live: bool = False
) -> bytes | list[bytes]:
    if isinstance(value, Pending) and not value.ops:
        value = value.base
    if isinstance(value, Lent):
        value = value.tree
    encoded = value if isinstance(value, bytes | Stored) else encode_tree(tree_of(value))
    return _bulky(encoded, store, live=live)


def _lazy(field: bytes | Sequence[bytes], source: LayerCache) -> bytes | Stored:
    return field if isinstance(field, bytes) else Stored(tuple(field), source)


def _container(c: Container, store: BlobWriter | None = None) -> list[Any]:
    """A container as the array of its fields, in `Container`'s order (see `_containers`)."""
    rw = _tree_field(c._rw, store, live=c.running)
    # each tmpfs tree encoded on its own, as `Container.tmpfs` decodes it
    tmpfs = (
        c._tmpfs
        if isinstance(c._tmpfs, bytes)
        else _pack({target: encode_tree(tree) for target, tree in c._tmpfs.items()})
    )
    return [
        c.id,
        c.name,
        c.image_id,
        c.image_ref,
        [_mount_map(m) for m in c.mounts],
        c.discard_on,
        c.auto_remove,
        c.command,
        c.created,
        c.state,
        c.started_at,
        c.finished_at,
        c.exit_code,
        c.restart_count,
        rw,
        tmpfs,
        c.copy_ups,
        c.rw_generation,
        c.removed_at,
    ]


_decode_containers = msgspec.msgpack.Decoder(list[Container]).decode


def _containers(found: list[Container], source: LayerCache) -> list[Container]:
    """Containers msgspec decoded (in C) from `_container` arrays, their writable layers
    in the blob store pointed at it."""
    for c in found:
        if type(c._rw) is not bytes:
            c._rw = Stored(tuple(c._rw), source)
    return found


#: Mount fields and their defaults: a snapshot stores a mount as the map of the fields
#: that differ from them (msgspec fills in the rest when it builds the Mount).
_MOUNT_DEFAULTS: Final = {
    f.name: f.default for f in msgspec.structs.fields(Mount) if f.default is not msgspec.NODEFAULT
}
_MOUNT_FIELDS: Final = Mount.__struct_fields__


def _mount_map(m: Mount) -> dict[str, Any]:
    values = ((name, getattr(m, name)) for name in _MOUNT_FIELDS)
    return {
        name: value
        for name, value in values
        if name not in _MOUNT_DEFAULTS or value != _MOUNT_DEFAULTS[name]
    }


def _record(r: LossRecord) -> list[Any]:
    return [
        r.event,
        r.seq,
        r.ts,
        r.container,
        r.name,
        r.policy,
        [[f.path, f.size, f.chunks, f.written_seq, f.written_ts, f.kind] for f in r.lost],
        [[p.path, p.type, p.source, p.size] for p in r.persisted],
        r.volume,
        r.note,
    ]


def _unrecord(row: Sequence[Any]) -> LossRecord:
    return LossRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        [LostFile(*f) for f in row[6]],
        [Persisted(*p) for p in row[7]],
        row[8],
        row[9],
    )


def encode(host: Host, ledger: Ledger, store: BlobWriter | None = None) -> bytes:
    """The state as snapshot bytes.

    With ``store`` (a write transaction's ``put_blob``), the bulky parts (writable
    layers, volume contents, removed containers) go to the log's blob store and
    the snapshot keeps their digests: a part unchanged since the last snapshot
    is stored once, and loading a snapshot reads only the parts it uses.
    """
    removed = [_bulky(raw, store) for raw in host._removed_encoded]
    mounted = {
        m.source
        for c in host.containers.values()
        if c.running
        for m in c.mounts
        if m.type == VOLUME
    }
    rows = [_container(c, store) for c in host._removed.values()]
    for i in range(0, len(rows), REMOVED_CHUNK):
        removed.append(_bulky(_pack(rows[i : i + REMOVED_CHUNK]), store))
    ids = host._removed_ids
    if isinstance(ids, dict) or host._removed:
        every_id = [*host.removed_ids(), *host._removed]
        ids_field = _bulky(_pack(every_id), store)
        prefixes = id_prefixes(every_id)
    else:
        ids_field = _bulky(ids, store)  # unchanged since it was loaded
        loaded = host._removed_prefixes
        prefixes = loaded if loaded is not None else id_prefixes(host.removed_ids())
    return _pack(
        {
            "seq": host.seq,
            "hash": host.hash,
            "ts": host.ts,
            "layers": [
                [
                    layer.chain_id,
                    layer.diff_id,
                    layer.parent,
                    layer.size,
                    layer.table,
                    layer.entries,
                    layer.images,
                    layer.registered_seq,
                ]
                for layer in host.layers.values()
            ],
            "images": [
                [
                    i.id,
                    i.config,
                    i.diff_ids,
                    i.chain_ids,
                    i.volumes,
                    i.created,
                    i.size,
                    i.tags,
                    i.registered_ts,
                ]
                for i in host.images.values()
            ],
            "tags": host.tags,
            "containers": [_container(c, store) for c in host.containers.values()],
            # chunks a snapshot left encoded pass through; then those removed since
            "removed": removed,
            "removed_ids": ids_field,
            "removed_prefixes": prefixes,
            # in `Volume`'s field order: `_Snapshot` decodes these arrays into Volumes
            "volumes": [
                [
                    v.name,
                    v.anonymous,
                    v.driver,
                    v.labels,
                    v.options,
                    v.created,
                    _tree_field(v._files, store, live=v.name in mounted),
                    v.refs,
                ]
                for v in host.volumes.values()
            ],
            "host_files": encode_tree(host.host_files),
            "settings": host.settings,
            # records up to the base are in ledger segments; those after it (all of
            # them for a ledger never segmented) are kept here
            "ledger_base": ledger.base,
            "ledger": ledger.own_encoded(_record, decode=_unrecord_raw),
        }
    )


def encode_segment(ledger: Ledger) -> bytes:
    """The ledger's records after its base, and the base: one link of the segment chain.

    A snapshot at seq S is written with the segment at S, holding the records
    of (base, S]; the ledger is then rebased on S. Reading the records back
    walks the chain from S down to 0, so a snapshot stays the size of the
    host however long the history of losses grows.
    """
    return _pack(
        {"prev": ledger.base, "records": ledger.own_encoded(_record, decode=_unrecord_raw)}
    )


def decode_segment(raw: bytes) -> tuple[int, list[bytes]]:
    """The previous segment's seq and the encoded records of a segment."""
    d = _unpack(raw)
    return int(d["prev"]), list(map(bytes, d["records"]))


def decode_record(raw: bytes) -> LossRecord:
    return _unrecord(_unpack(raw))


def decode(raw: bytes, read_blobs: BlobReader) -> tuple[Host, Ledger]:
    """A state from snapshot bytes; ``read_blobs`` serves the layer tables."""
    # A big snapshot makes hundreds of thousands of objects at once and none of them is
    # garbage: the cyclic collector's passes over them while decoding are wasted (~20%).
    with _gc.paused():
        return _decode(raw, read_blobs)


class _Snapshot(msgspec.Struct):
    """A snapshot's map, as msgspec reads it: containers and volumes built in C, the
    other parts (small, or decoded when first used) left raw for `_decode`."""

    seq: int
    hash: bytes
    ts: int
    layers: msgspec.Raw
    images: msgspec.Raw
    tags: msgspec.Raw
    containers: list[Container]
    removed: msgspec.Raw
    removed_ids: msgspec.Raw
    removed_prefixes: bytes
    volumes: list[Volume]
    host_files: bytes
    settings: msgspec.Raw
    ledger_base: int
    ledger: msgspec.Raw


_decode_snapshot = msgspec.msgpack.Decoder(_Snapshot).decode


def _decode(raw: bytes, read_blobs: BlobReader) -> tuple[Host, Ledger]:
    snap = _decode_snapshot(raw)
    d = {name: _unpack(getattr(snap, name)) for name in _RAW_PARTS}
    host = Host(read_blobs)
    host.seq, host.hash, host.ts = snap.seq, snap.hash, snap.ts
    host.layers = {
        row[0]: Layer(row[0], row[1], row[2], row[3], tuple(row[4]), row[5], row[6], row[7])
        for row in d["layers"]
    }
    host.images = {
        row[0]: Image(
            row[0],
            tuple(row[1]),
            tuple(row[2]),
            tuple(row[3]),
            tuple(row[4]),
            row[5],
            row[6],
            list(row[7]),
            row[8],
        )
        for row in d["images"]
    }
    host.tags = dict(d["tags"])
    source = host.layer_cache
    host.containers = {c.id: c for c in _containers(snap.containers, source)}
    host.removed_lazily(
        [_lazy(r, source) for r in d["removed"]],
        _lazy(d["removed_ids"], source),
        lambda raw: _containers(_decode_containers(raw), source),
        lambda raw: list(_unpack(raw)),
        snap.removed_prefixes,
    )
    host.names = {c.name: c.id for c in host.containers.values()}
    # thousands of volumes, built by msgspec: only those whose files are in the blob
    # store need a Python-level step
    for vol in snap.volumes:
        if type(vol._files) is not bytes:
            vol._files = Stored(tuple(vol._files), source)
    host.volumes = {vol.name: vol for vol in snap.volumes}
    host.host_files = decode_tree(snap.host_files)
    host.settings = dict(d["settings"])
    # map() rather than a comprehension: a big ledger has tens of thousands of records
    ledger = Ledger.from_encoded(
        list(map(bytes, d["ledger"])), _unrecord_raw, base=snap.ledger_base
    )
    return host, ledger


def _unrecord_raw(raw: bytes) -> LossRecord:
    return _unrecord(_unpack(raw))


def record_encoder() -> Callable[[LossRecord], bytes]:
    return lambda r: _pack(_record(r))
