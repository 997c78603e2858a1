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

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgpack

from dockstate.core.mounts import Mount
from dockstate.core.state import (
    BlobReader,
    Container,
    Host,
    Image,
    Layer,
    LayerCache,
    LazyTree,
    Lent,
    Stored,
    Volume,
    decode_tree,
    encode_tree,
    id_prefixes,
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
VERSION: Final = 6
#: The snapshots db name of ledger segments (the host's is `asof.NAME`).
LEDGER: Final = "ledger"


def _pack(value: Any) -> bytes:
    raw: bytes = msgpack.packb(value, use_bin_type=True)
    return raw


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, use_list=False, strict_map_key=False)


#: Stores bytes in the log's blob store, returning their chunk digests (``WriteTxn.put_blob``).
BlobWriter = Callable[[bytes], list[bytes]]
#: Parts at least this big go to the blob store when a snapshot is written with one.
STORE_OVER: Final = 512
#: Removed containers are encoded in chunks of this many, oldest first: all but the
#: last chunk are the same bytes from one snapshot to the next, so stored once.
REMOVED_CHUNK: Final = 256


def _bulky(value: bytes | Stored, store: BlobWriter | None) -> bytes | list[bytes]:
    """A bulky part as a snapshot field: inline bytes, or the digests of a blob."""
    if isinstance(value, Stored):
        # not read since it was loaded: the same blob again
        return list(value.digests) if store is not None else value.load()
    if store is None or len(value) < STORE_OVER:
        return value
    return store(value)


def _tree_field(value: LazyTree, store: BlobWriter | None) -> bytes | list[bytes]:
    if isinstance(value, Lent):
        value = value.tree
    return _bulky(value if isinstance(value, bytes | Stored) else encode_tree(value), store)


def _lazy(field: bytes | Sequence[bytes], source: LayerCache) -> bytes | Stored:
    return field if isinstance(field, bytes) else Stored(tuple(field), source)


def _container(c: Container, store: BlobWriter | None = None) -> list[Any]:
    rw = _tree_field(c._rw, store)
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
        [_mount_row(m) for m in c.mounts],
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


def _uncontainer(
    row: Sequence[Any], source: LayerCache, mounts: dict[tuple[Any, ...], Mount]
) -> Container:
    return Container(
        row[0],
        row[1],
        row[2],
        row[3],
        [_unmount(m, mounts) for m in row[4]],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        _lazy(row[14], source),
        row[15],
        row[16],  # a fresh dict from msgpack: no copy
        row[17],
        row[18],
    )


#: A mount is a row of its fields in this order (a dict per mount would repeat the names).
_MOUNT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Mount))


def _mount_row(m: Mount) -> list[Any]:
    return [getattr(m, name) for name in _MOUNT_FIELDS]


def _unmount(row: tuple[Any, ...], made: dict[tuple[Any, ...], Mount]) -> Mount:
    """The mount of a row, made once per distinct row: a Mount is frozen, so the containers
    of a snapshot with the same mount (a tmpfs at /tmp) share it, and a frozen dataclass
    is slow to build."""
    m = made.get(row)
    if m is None:
        m = made[row] = Mount(**dict(zip(_MOUNT_FIELDS, row, strict=True)))
    return m


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
            "volumes": [
                [
                    v.name,
                    v.anonymous,
                    v.driver,
                    v.labels,
                    v.options,
                    v.created,
                    _tree_field(v._files, store),
                    list(v.refs),
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


def _decode(raw: bytes, read_blobs: BlobReader) -> tuple[Host, Ledger]:
    d = _unpack(raw)
    host = Host(read_blobs)
    host.seq, host.hash, host.ts = d["seq"], bytes(d["hash"]), d["ts"]
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
    mounts: dict[tuple[Any, ...], Mount] = {}
    host.containers = {row[0]: _uncontainer(row, source, mounts) for row in d["containers"]}
    host.removed_lazily(
        [_lazy(r, source) for r in d["removed"]],
        _lazy(d["removed_ids"], source),
        lambda raw: [_uncontainer(row, source, {}) for row in _unpack(raw)],
        lambda raw: list(_unpack(raw)),
        d["removed_prefixes"],
    )
    host.names = {c.name: c.id for c in host.containers.values()}
    # a long history leaves thousands of volumes (anonymous ones outlive their containers):
    # one plain loop, and msgpack's fresh dicts kept rather than copied
    volumes = host.volumes = {}
    for name, anonymous, driver, labels, options, created, files, refs in d["volumes"]:
        volumes[name] = Volume(
            name,
            anonymous,
            driver,
            labels,
            options,
            created,
            files if isinstance(files, bytes) else Stored(files, source),
            dict.fromkeys(refs),
        )
    host.host_files = decode_tree(d["host_files"])
    host.settings = dict(d["settings"])
    # map() rather than a comprehension: a big ledger has tens of thousands of records
    ledger = Ledger.from_encoded(
        list(map(bytes, d["ledger"])), _unrecord_raw, base=d["ledger_base"]
    )
    return host, ledger


def _unrecord_raw(raw: bytes) -> LossRecord:
    return _unrecord(_unpack(raw))


def record_encoder() -> Callable[[LossRecord], bytes]:
    return lambda r: _pack(_record(r))
