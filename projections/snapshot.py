"""Snapshot codec: a `Host` and its `Ledger` as bytes, and back.

Snapshots make ``state_at`` cheap: load the newest one at or below the
target, fold the rest. Decoding must be quick even for a host of ten thousand
containers, so the bulky parts (each writable layer, tmpfs, volume contents,
loss records) stay encoded inside the snapshot and are decoded on first use.
"""

from __future__ import annotations

import gc
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
    Volume,
    decode_tree,
    encode_tree,
)
from dockstate.projections.ledger import Ledger, LossRecord, LostFile, Persisted

#: Bump when the encoding or the fold changes: old snapshots are then ignored.
#: 2: tmpfs trees are encoded one by one (version 1 wrote maps that could not be read back).
VERSION: Final = 2


def _pack(value: Any) -> bytes:
    raw: bytes = msgpack.packb(value, use_bin_type=True)
    return raw


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, use_list=False, strict_map_key=False)


def _container(c: Container) -> list[Any]:
    rw = c._rw if isinstance(c._rw, bytes) else encode_tree(c._rw)
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
        [m.to_data() for m in c.mounts],
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


def _uncontainer(row: Sequence[Any]) -> Container:
    return Container(
        row[0],
        row[1],
        row[2],
        row[3],
        [Mount.from_data(m) for m in row[4]],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        bytes(row[14]),
        bytes(row[15]),
        dict(row[16]),
        row[17],
        row[18],
    )


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


def encode(host: Host, ledger: Ledger) -> bytes:
    """The state as snapshot bytes."""
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
            "containers": [_container(c) for c in host.containers.values()],
            "removed": [_container(c) for c in host.removed.values()],
            "volumes": [
                [
                    v.name,
                    v.anonymous,
                    v.driver,
                    v.labels,
                    v.options,
                    v.created,
                    v._files if isinstance(v._files, bytes) else encode_tree(v._files),
                    list(v.refs),
                ]
                for v in host.volumes.values()
            ],
            "host_files": encode_tree(host.host_files),
            "settings": host.settings,
            "ledger": ledger.encoded_records(_record),
        }
    )


def decode(raw: bytes, read_blobs: BlobReader) -> tuple[Host, Ledger]:
    """A state from snapshot bytes; ``read_blobs`` serves the layer tables."""
    # A big snapshot makes hundreds of thousands of objects at once and none of them is
    # garbage: the cyclic collector's passes over them while decoding are wasted (~20%).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode(raw, read_blobs)
    finally:
        if enabled:
            gc.enable()


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
    host.containers = {row[0]: _uncontainer(row) for row in d["containers"]}
    host.removed = {row[0]: _uncontainer(row) for row in d["removed"]}
    host.names = {c.name: c.id for c in host.containers.values()}
    host.volumes = {
        row[0]: Volume(
            row[0],
            row[1],
            row[2],
            dict(row[3]),
            dict(row[4]),
            row[5],
            bytes(row[6]),
            dict.fromkeys(row[7]),
        )
        for row in d["volumes"]
    }
    host.host_files = decode_tree(d["host_files"])
    host.settings = dict(d["settings"])
    # map() rather than a comprehension: a big ledger has tens of thousands of records
    ledger = Ledger.from_encoded(list(map(bytes, d["ledger"])), _unrecord_raw)
    return host, ledger


def _unrecord_raw(raw: bytes) -> LossRecord:
    return _unrecord(_unpack(raw))


def record_encoder() -> Callable[[LossRecord], bytes]:
    return lambda r: _pack(_record(r))
