"""The state of a simulated Docker host, and the fold that builds it from events.

`Host.apply` folds one envelope. The same fold serves the write model (the
state a command is validated against, read inside its write transaction) and
every projection, so a log replays to exactly the state its commands saw.
Container events are checked against the lifecycle table on the way: a log
that breaks it raises `LifecycleViolation` naming the seq.

The fold is dispatched on the envelope's type tag over its plain ``data``
dict, and mutates the state in place: a million-event rebuild cannot afford
a copy or an object per event. Whoever needs a past state folds a prefix (or
loads a snapshot) into a `Host` of its own.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgpack
import msgspec

from dockstate.core import fs
from dockstate.core.errors import DockstateError, LifecycleViolation
from dockstate.core.events import CONTAINER_TRIGGERS
from dockstate.core.fs import DIR, FILE, WHITEOUT, Entry, Tree, ancestry, ancestry_of
from dockstate.core.lifecycle import TABLE, State
from dockstate.core.mounts import BIND, VOLUME, Mount
from dockstate.core.names import chain_ids
from dockstate.eventlog.envelope import GENESIS_HASH, Envelope, Facts

#: Reads the content made of these blob digests.
BlobReader = Callable[[Sequence[bytes]], bytes]

#: Builds an Entry from a tuple of all its fields in C: the namedtuple's own
#: constructor is a Python function, and a fold makes an entry per file event.
_entry = functools.partial(tuple.__new__, Entry)


class InconsistentLogError(DockstateError):
    """A recorded event refers to something the log never created."""

    def __init__(self, seq: int, message: str) -> None:
        self.seq = seq
        super().__init__(f"event {seq}: {message}")


@dataclasses.dataclass(slots=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    table: tuple[bytes, ...]
    entries: int
    #: how many images reference this layer in their chain.
    images: int = 0
    registered_seq: int = 0


@dataclasses.dataclass(slots=True)
class Image:
    id: str
    config: tuple[bytes, ...]
    diff_ids: tuple[str, ...]
    chain_ids: tuple[str, ...]
    volumes: tuple[str, ...]
    created: str
    size: int
    tags: list[str]
    registered_ts: int = 0

    @property
    def top_chain(self) -> str | None:
        return self.chain_ids[-1] if self.chain_ids else None


class Stored:
    """Bytes a snapshot left in the blob store, read when first needed.

    They are read through the host's current blob reader (``source``), which a
    write model points at each new transaction.
    """

    __slots__ = ("digests", "source")

    def __init__(self, digests: tuple[bytes, ...], source: LayerCache) -> None:
        self.digests, self.source = digests, source

    def load(self) -> bytes:
        return self.source.read(self.digests)


class Lent:
    """A tree its owner handed to a reader that keeps it as it is (a loss record).

    The owner copies it before its next use, instead of the reader copying it
    when it is handed over: a volume is lent at every stop of a container that
    mounts it, and most are not used again before the next snapshot.
    """

    __slots__ = ("tree",)

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def __eq__(self, other: object) -> bool:
        # the tree it holds, for comparisons of whole states
        return self.tree == (other.tree if isinstance(other, Lent) else other)

    __hash__ = None  # type: ignore[assignment]


#: A change of a file in a flat tree, as `_apply` makes it and `Pending` keeps it:
#: (_WRITE, key, entry, None, seq, ts), (_APPEND, key, size, chunks, seq, ts) or
#: (_DELETE, key, None, None, seq, ts).
_Op = tuple[int, str, Any, Any, int, int]
_WRITE, _APPEND, _DELETE = 0, 1, 2


class Pending:
    """A volume's files as a snapshot left them (encoded, in the blob store) or as lent,
    not read since, and the files written, appended to or deleted in them since, in order.

    Writing a file into a volume needs only what is at its path and above, but reading
    the tree a snapshot left means decoding all of it, and reading one from the blob store
    a lookup at a random place of the store: a fold writes into hundreds of volumes that
    nothing reads before the state is asked for (the containers made after a snapshot
    mostly mount volumes it left idle). So the writes wait here, and are made on the
    tree, in order, the first time it is read (`tree_of`). Only writes that cannot fail
    wait: an event a log should not hold is still refused at its seq.
    """

    __slots__ = ("base", "ops")

    def __init__(self, base: bytes | Stored | Lent, ops: list[_Op]) -> None:
        self.base, self.ops = base, ops

    def tree(self) -> Tree:
        """The files with the writes made: a new tree (the base is left as it is)."""
        tree = tree_of(self.base)
        for op in self.ops:
            _apply(tree, op)
        return tree

    def __eq__(self, other: object) -> bool:
        # the tree it stands for, for comparisons of whole states
        return self.tree() == (other.tree() if isinstance(other, Pending) else other)

    __hash__ = None  # type: ignore[assignment]


#: How many writes a volume keeps waiting (`Pending`) before it makes its tree after all:
#: each stop of a container that mounts it lends the ledger a copy of the queue, and a
#: long history must not make that copy, or the writes played when it is read, grow
#: without bound (a tree does not: the same paths are written over and over).
PENDING_MAX = 256


#: A tree as held: decoded, encoded, encoded in the blob store, lent, or with writes pending.
LazyTree = Tree | bytes | Stored | Lent | Pending


def tree_of(value: LazyTree) -> Tree:
    """The tree itself, decoded (or copied, when lent; or made, when writes wait) if need be."""
    if isinstance(value, dict):
        return value
    if isinstance(value, Lent):
        return dict(value.tree)
    if isinstance(value, Pending):
        return value.tree()
    return decode_tree(value if isinstance(value, bytes) else value.load())


#: The states `Container.running` means, as the plain strings a container keeps (an
#: enum member read through its class costs a Python-level lookup, at every command).
_LIVE: frozenset[str] = frozenset({State.RUNNING.value, State.PAUSED.value})


class Container(msgspec.Struct, array_like=True):
    """A container as the fold keeps it.

    A msgspec Struct (slots, compared field by field, like a dataclass) so that a
    snapshot, which stores each container as the array of its fields (mounts as maps),
    is decoded straight into Container objects in C.
    """

    id: str
    name: str
    image_id: str
    image_ref: str
    mounts: list[Mount]
    discard_on: str
    auto_remove: bool
    command: str
    created: int
    state: str = State.CREATED.value
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    restart_count: int = 0
    #: the writable layer (overlay2's upper dir): may hold whiteouts and opaque dirs.
    #: Kept encoded until first use when the container comes from a snapshot: a
    #: `LazyTree`, declared Any so that msgspec reads a snapshot's digests as they are.
    _rw: Any = msgspec.field(default_factory=dict)
    #: tmpfs contents by mount target (encoded, like ``_rw``, until used).
    _tmpfs: dict[str, Tree] | bytes = msgspec.field(default_factory=dict)
    #: bytes copied up from lower layers, by path, since the writable layer was made.
    copy_ups: dict[str, int] = msgspec.field(default_factory=dict)
    #: how many writable layers this container has had (a discard at stop makes a new one).
    rw_generation: int = 1
    removed_at: int = 0

    @property
    def rw(self) -> Tree:
        rw: LazyTree = self._rw
        if isinstance(rw, dict):
            return rw
        self._rw = tree = tree_of(rw)
        return tree

    @rw.setter
    def rw(self, tree: Tree) -> None:
        self._rw = tree

    @property
    def tmpfs(self) -> dict[str, Tree]:
        if isinstance(self._tmpfs, bytes):
            raw = msgpack.unpackb(self._tmpfs, raw=False, use_list=False)
            self._tmpfs = {target: decode_tree(tree) for target, tree in raw.items()}
        return self._tmpfs

    @property
    def running(self) -> bool:
        return self.state in _LIVE

    def mount_for(self, path: str) -> Mount | None:
        """The mount a path falls under: the longest matching target wins."""
        best: Mount | None = None
        for m in self.mounts:
            # fs.is_below without building target + "/" (a target is never "/"): hot
            t = m.target
            n = len(t)
            if (
                path.startswith(t)
                and (len(path) == n or path[n] == "/")
                and (best is None or n > len(best.target))
            ):
                best = m
        return best


class Volume(msgspec.Struct, array_like=True):
    """A volume and its files.

    A msgspec Struct (slots, compared field by field, like a dataclass) so that a
    snapshot, which stores each volume as the array of its fields, is decoded straight
    into Volume objects in C: a long history leaves thousands of volumes (anonymous
    ones outlive their containers) and most are never touched before the next snapshot.
    """

    name: str
    anonymous: bool
    driver: str
    labels: dict[str, str]
    options: dict[str, str]
    created: int
    #: the volume's ``_data``, keyed by path relative to it (encoded until first use): a
    #: `LazyTree`, declared Any so that msgspec reads a snapshot's digests as they are.
    _files: Any = msgspec.field(default_factory=dict)
    #: containers (not removed) that reference it, in the order they were created.
    refs: dict[str, None] = msgspec.field(default_factory=dict)

    @property
    def files(self) -> Tree:
        files: LazyTree = self._files
        if isinstance(files, dict):
            return files
        self._files = tree = tree_of(files)
        return tree

    def lend_files(self) -> LazyTree:
        """The files as they are now, for a reader that keeps them: not copied (see `Lent`)."""
        files: LazyTree = self._files
        if isinstance(files, dict):
            self._files = Lent(files)
            return files
        if isinstance(files, Lent):
            return files.tree
        if isinstance(files, Pending):
            return Pending(files.base, list(files.ops))  # the writes so far, not those to come
        return files  # encoded: never changes

    def change(self, op: _Op) -> None:
        """Make a file write, append or delete (`_Op`) in the files now when they are a
        tree, or keep it for when they are first read (see `Pending`)."""
        files: Any = self._files
        if type(files) is dict:
            _apply(files, op)
        elif isinstance(files, Pending):
            files.ops.append(op)
            if len(files.ops) >= PENDING_MAX:
                self._files = files.tree()
        else:
            self._files = Pending(files, [op])

    @property
    def mountpoint(self) -> str:
        return f"/var/lib/docker/volumes/{self.name}/_data"


# -- layer tables ---------------------------------------------------------------


def encode_table(entries: Iterable[tuple[str, Entry]]) -> bytes:
    """A layer's entries as stored in the blob store (msgpack list of [path, *entry])."""
    raw: bytes = msgpack.packb([[path, *entry] for path, entry in entries], use_bin_type=True)
    return raw


#: A layer table row as `encode_table` writes it, typed for msgspec (built in C).
_TableRow = tuple[str, str, int, int, tuple[bytes, ...], int, int, int, int, str, bool]
_decode_table_rows = msgspec.msgpack.Decoder(tuple[_TableRow, ...]).decode


def decode_table(raw: bytes) -> list[tuple[str, Entry]]:
    """A layer's entries from `encode_table`'s bytes (every container's first write asks
    for its image's flattened layers, so a new process reads each table once)."""
    try:
        rows: Sequence[Sequence[Any]] = _decode_table_rows(raw)
    except msgspec.ValidationError:
        # a table of another shape (a field of another type): msgpack reads anything
        # (malformed bytes raise msgspec's DecodeError, a ValueError, as msgpack's are)
        rows = msgpack.unpackb(raw, raw=False, use_list=False)
        return [(row[0], Entry._make(row[1:])) for row in rows]
    return [(row[0], _entry(row[1:])) for row in rows]


def encode_tree(tree: Tree) -> bytes:
    """A tree as snapshot bytes: the msgpack array of its paths, then that of its entries.

    Two arrays rather than a map of path -> entry: `decode_tree` then builds the
    dict and every entry in C (zip, map, tuple.__new__), about twice as fast.
    """
    raw: bytes = msgpack.packb((list(tree), list(tree.values())), use_bin_type=True)
    return raw


#: Reads `encode_tree`'s bytes into its declared shape: msgspec builds every `Entry` in
#: C, checking each field's type on the way (about 1.9x faster than msgpack + tuple.__new__).
_decode_tree_rows = msgspec.msgpack.Decoder(tuple[tuple[str, ...], tuple[Entry, ...]]).decode


def decode_tree(raw: bytes) -> Tree:
    """A tree from `encode_tree`'s bytes.

    Raises:
        ValueError: the bytes are no encoded tree (msgspec's DecodeError is one).
    """
    paths, rows = _decode_tree_rows(raw)
    return dict(zip(paths, rows, strict=True))


class LayerCache:
    """Flattened trees of layer chains, keyed by chain_id.

    A chain never changes once registered, so a flattened view stays valid
    for ever; the cache only bounds how many are kept in memory.
    """

    def __init__(self, read_blobs: BlobReader, capacity: int = 64) -> None:
        self._read = read_blobs
        self._capacity = capacity
        self._trees: dict[str, Tree] = {}
        self._tables: dict[str, list[tuple[str, Entry]]] = {}

    def set_reader(self, read_blobs: BlobReader) -> None:
        """Read blobs through another handle (a new write transaction) from now on."""
        self._read = read_blobs

    def read(self, digests: Sequence[bytes]) -> bytes:
        """The content of these blob digests, through the current reader."""
        return self._read(digests)

    def table(self, layer: Layer) -> list[tuple[str, Entry]]:
        table = self._tables.get(layer.chain_id)
        if table is None:
            table = decode_table(self._read(layer.table)) if layer.table else []
            self._tables[layer.chain_id] = table
            if len(self._tables) > self._capacity:
                self._tables.pop(next(iter(self._tables)))
        return table

    def flattened(self, chain_id: str | None, layers: Mapping[str, Layer]) -> Tree:
        if chain_id is None:
            return {}
        tree = self._trees.get(chain_id)
        if tree is not None:
            return tree
        # Walk down to the nearest cached ancestor, then stack back up.
        stack: list[Layer] = []
        cur: str | None = chain_id
        base: Tree = {}
        while cur is not None:
            cached = self._trees.get(cur)
            if cached is not None:
                base = cached
                break
            layer = layers.get(cur)
            if layer is None:
                raise KeyError(cur)
            stack.append(layer)
            cur = layer.parent
        for layer in reversed(stack):
            base = fs.apply_layer(base, self.table(layer))
            self._trees[layer.chain_id] = base
        while len(self._trees) > self._capacity:
            self._trees.pop(next(iter(self._trees)))
        return base


# -- the layered view of a container's root filesystem ---------------------------


#: Width of the id prefixes `was_removed` looks up before decoding the removed ids.
_PREFIX = 8


def _id_prefix(container_id: str) -> bytes:
    return container_id.encode()[:_PREFIX].ljust(_PREFIX, b"\0")


def id_prefixes(ids: Iterable[str]) -> bytes:
    """The ids' first bytes (utf-8, NUL-padded to a fixed width), sorted, one after another.

    An id whose prefix is not among them is not among the ids: a binary search
    answers without decoding or hashing thousands of ids. A prefix found may
    belong to another id, so a hit is confirmed against the ids themselves.
    """
    return b"".join(sorted({_id_prefix(i) for i in ids}))


def _has_prefix(prefixes: bytes, key: bytes) -> bool:
    """``key`` is one of the sorted fixed-width ``prefixes`` (see `id_prefixes`)."""
    lo, hi = 0, len(prefixes) // _PREFIX
    while lo < hi:
        mid = (lo + hi) // 2
        if prefixes[mid * _PREFIX : (mid + 1) * _PREFIX] < key:
            lo = mid + 1
        else:
            hi = mid
    return prefixes[lo * _PREFIX : (lo + 1) * _PREFIX] == key


def rw_lookup(rw: Tree, lower: Tree, path: str) -> Entry | None:
    """What ``path`` is in the writable layer stacked on ``lower`` (None: absent)."""
    entry = rw.get(path)
    if entry is not None:
        return None if entry.kind == WHITEOUT else entry
    if rw:
        for anc in ancestry_of(path) or ancestry(path):
            a = rw.get(anc)
            if a is not None and (a.kind != DIR or a.opaque):
                return None  # a whiteout, a file over the dir, or an opaque dir hides lower
    return lower.get(path)


def _drop_below(tree: Tree, top: str) -> None:
    for key in fs.subtree_keys(tree, top):
        del tree[key]


class Host:
    """Everything a Docker host holds, as of event `seq`.

    Args:
        read_blobs: how layer tables are read back (the log's blob store).
    """

    def __init__(self, read_blobs: BlobReader) -> None:
        self.seq = 0
        self.hash = GENESIS_HASH
        self.ts = 0
        self.layers: dict[str, Layer] = {}
        self.images: dict[str, Image] = {}
        self.tags: dict[str, str] = {}
        self.containers: dict[str, Container] = {}
        self._removed: dict[str, Container] = {}
        #: removed containers a snapshot left encoded (chunks), their ids, and their decoder:
        #: a long history holds thousands, and most questions never look at them.
        self._removed_encoded: list[bytes | Stored] = []
        self._removed_ids: dict[str, None] | bytes | Stored = {}  # ordered: re-encodes the same
        self._removed_decoder: Callable[[bytes], list[Container]] | None = None
        self._removed_ids_decoder: Callable[[bytes], list[str]] | None = None
        #: `id_prefixes` of the ids still encoded, when the snapshot had them
        self._removed_prefixes: bytes | None = None
        self.names: dict[str, str] = {}
        self.volumes: dict[str, Volume] = {}
        self.host_files: Tree = {}
        self.settings: dict[str, str] = {}
        self.layer_cache = LayerCache(read_blobs)

    @property
    def removed(self) -> dict[str, Container]:
        """Removed containers by id, in the order they went (decoded on first use)."""
        if self._removed_encoded:
            assert self._removed_decoder is not None
            decode = self._removed_decoder
            loaded = {
                c.id: c
                for raw in self._removed_encoded
                for c in decode(raw if isinstance(raw, bytes) else raw.load())
            }
            loaded.update(self._removed)
            self._removed, self._removed_encoded, self._removed_ids = loaded, [], {}
        return self._removed

    @removed.setter
    def removed(self, containers: dict[str, Container]) -> None:
        self._removed, self._removed_encoded, self._removed_ids = containers, [], {}

    def removed_lazily(
        self,
        encoded: list[bytes | Stored],
        ids: bytes | Stored,
        decode: Callable[[bytes], list[Container]],
        decode_ids: Callable[[bytes], list[str]],
        prefixes: bytes | None = None,
    ) -> None:
        """Removed containers still encoded: chunks of containers, the list of their ids, and
        the `id_prefixes` of those ids (which spare `was_removed` decoding the list)."""
        self._removed, self._removed_encoded = {}, list(encoded)
        self._removed_ids, self._removed_decoder = ids, decode
        self._removed_ids_decoder, self._removed_prefixes = decode_ids, prefixes

    def removed_ids(self) -> dict[str, None]:
        """The ids of the removed containers still encoded (decoded on first use)."""
        ids = self._removed_ids
        if not isinstance(ids, dict):
            assert self._removed_ids_decoder is not None
            raw = ids if isinstance(ids, bytes) else ids.load()
            self._removed_ids = ids = dict.fromkeys(self._removed_ids_decoder(raw))
        return ids

    def was_removed(self, container_id: str) -> bool:
        if container_id in self._removed:
            return True
        prefixes = self._removed_prefixes
        if (
            prefixes is not None
            and not isinstance(self._removed_ids, dict)
            and isinstance(container_id, str)
            and not _has_prefix(prefixes, _id_prefix(container_id))
        ):
            # every ContainerCreated asks: a new id is told from thousands of removed ones
            # without decoding them (~1.3 ms); only a prefix seen before needs the list
            return False
        return container_id in self.removed_ids()

    # -- reading -------------------------------------------------------------

    def lower(self, container: Container) -> Tree:
        """The flattened image layers under a container's writable layer."""
        image = self.images.get(container.image_id)
        if image is not None and image.chain_ids:
            # the cached tree without two more calls: asked for at every first write
            chain = image.chain_ids[-1]
            tree = self.layer_cache._trees.get(chain)
            return tree if tree is not None else self.layer_cache.flattened(chain, self.layers)
        # An image in use cannot be removed, so a missing one means an empty lower.
        return {}

    def lookup(self, container: Container, path: str) -> Entry | None:
        """What a process in ``container`` sees at ``path`` (mounts included)."""
        m = container.mount_for(path)
        if m is not None:
            tree, key = self.mount_tree(container, m, path)
            if key == "/" or (m.type == BIND and key == m.source):
                return tree.get(key) or fs.dir_entry()
            found = tree.get(key)
        elif path == "/":
            return fs.dir_entry()
        else:
            found = rw_lookup(container.rw, self.lower(container), path)
        if (
            found is None
            and container.mounts
            and any(mt.target != path and fs.is_below(mt.target, path) for mt in container.mounts)
        ):
            # the runtime makes a missing mount point, parents included, before mounting
            return fs.dir_entry()
        return found

    def mount_tree(self, container: Container, m: Mount, path: str) -> tuple[Tree, str]:
        """The tree a mount stores ``path`` in, and the key of ``path`` there."""
        rel = fs.relative(path, m.target)
        if m.type == VOLUME:
            return self.volumes[m.source].files, rel
        if m.type == BIND:
            return self.host_files, fs.join(m.source, rel)
        return container.tmpfs.setdefault(m.target, {}), rel

    # -- folding -------------------------------------------------------------

    def apply(self, env: Envelope | Facts) -> None:
        """Fold one event into the state."""
        handler = _HANDLERS.get(env.type)
        if handler is not None:
            handler(self, env.seq, env.ts, env.data)
        self.seq = env.seq
        self.ts = env.ts

    def apply_all(
        self, envs: Iterable[Envelope | Facts], watch: Mapping[str, Watcher] | None = None
    ) -> None:
        """Fold events in order; ``watch[type]`` is shown each such event before it is folded."""
        handlers = _watched(watch) if watch else _HANDLERS
        get = handlers.get
        seq = ts = -1
        # unpacked in the loop header: one C-level step instead of four field lookups
        for _, seq, ts, etype, _, _, _, data, _ in envs:
            handler = get(etype)
            if handler is not None:
                handler(self, seq, ts, data)
        if seq != -1:
            self.seq, self.ts = seq, ts

    def container(self, seq: int, container_id: str) -> Container:
        c = self.containers.get(container_id)
        if c is None:
            raise InconsistentLogError(seq, f"no container {container_id[:12]} to act on")
        return c


# -- handlers -----------------------------------------------------------------------

Handler = Callable[[Host, int, int, Mapping[str, Any]], None]
#: Sees an event (seq, ts, type, data) before it is folded, the host as it was before.
Watcher = Callable[[Host, int, int, str, Mapping[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}


def _watched(watch: Mapping[str, Watcher]) -> dict[str, Handler]:
    """The handlers, those of watched types preceded by their watcher: one lookup per event."""

    def both(tag: str, seen: Watcher, handler: Handler | None) -> Handler:
        def handle(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
            seen(host, seq, ts, tag, d)
            if handler is not None:
                handler(host, seq, ts, d)

        return handle

    out = dict(_HANDLERS)
    for tag, seen in watch.items():
        out[tag] = both(tag, seen, _HANDLERS.get(tag))
    return out


def _on(tag: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[tag] = fn
        return fn

    return register


@_on("LayerRegistered")
def _layer_registered(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    chain = d["chain_id"]
    if chain in host.layers:
        return
    host.layers[chain] = Layer(
        chain, d["diff_id"], d["parent"], d["size"], tuple(d["table"]), d["entries"], 0, seq
    )


@_on("ImageRegistered")
def _image_registered(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    image_id = d["image_id"]
    if image_id in host.images:
        return
    chains = tuple(chain_ids(d["diff_ids"]))
    for chain in chains:
        layer = host.layers.get(chain)
        if layer is None:
            raise InconsistentLogError(seq, f"image {image_id[:19]} needs missing layer {chain}")
        layer.images += 1
    host.images[image_id] = Image(
        image_id,
        tuple(d["config"]),
        tuple(d["diff_ids"]),
        chains,
        tuple(d.get("volumes", ())),
        d.get("created", ""),
        d.get("size", 0),
        [],
        ts,
    )


@_on("ImageTagged")
def _image_tagged(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    ref, image_id = d["ref"], d["image_id"]
    image = host.images.get(image_id)
    if image is None:
        raise InconsistentLogError(seq, f"tag {ref} of missing image {image_id[:19]}")
    old = host.tags.get(ref)
    if old is not None and old != image_id and old in host.images:
        host.images[old].tags.remove(ref)
    host.tags[ref] = image_id
    if ref not in image.tags:
        image.tags.append(ref)


@_on("ImageUntagged")
def _image_untagged(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    ref = d["ref"]
    if host.tags.get(ref) == d["image_id"]:
        del host.tags[ref]
    image = host.images.get(d["image_id"])
    if image is not None and ref in image.tags:
        image.tags.remove(ref)


@_on("ImageRemoved")
def _image_removed(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    image = host.images.pop(d["image_id"], None)
    if image is None:
        raise InconsistentLogError(seq, f"removal of missing image {d['image_id'][:19]}")
    for ref in image.tags:
        if host.tags.get(ref) == image.id:
            del host.tags[ref]
    for chain in image.chain_ids:
        layer = host.layers.get(chain)
        if layer is not None:
            layer.images -= 1
            if layer.images <= 0:
                # No image references the layer any more: Docker releases it.
                del host.layers[chain]


@_on("ContainerCreated")
def _container_created(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    cid = d["container"]
    if cid in host.containers or host.was_removed(cid):
        raise InconsistentLogError(seq, f"container {cid[:12]} created twice")
    if d["image_id"] not in host.images:
        raise InconsistentLogError(seq, f"container {cid[:12]} of missing image")
    mounts = [Mount.from_data(m) for m in d["mounts"]]
    mounts += [Mount.from_data(m) for m in d.get("tmpfs", ())]
    c = Container(
        cid,
        d["name"],
        d["image_id"],
        d["image_ref"],
        mounts,
        d.get("discard_on", "stop"),
        d.get("auto_remove", False),
        d.get("command", ""),
        ts,
    )
    for m in mounts:
        if m.type == VOLUME:
            vol = host.volumes.get(m.source)
            if vol is None:
                raise InconsistentLogError(
                    seq, f"container {cid[:12]} mounts missing volume {m.source}"
                )
            vol.refs[cid] = None
        elif m.type == BIND and m.source not in host.host_files:
            raise InconsistentLogError(seq, f"bind source {m.source} does not exist")
    host.containers[cid] = c
    host.names[c.name] = cid


#: `TABLE` by event tag, destinations as plain values: ``(state, tag) -> state``
#: without an enum's ``.value`` (a Python-level property) at every lifecycle event.
_NEXT: dict[tuple[str, str], str] = {
    (state, tag): dest.value
    for tag, trigger in CONTAINER_TRIGGERS.items()
    for (state, on), dest in TABLE.items()
    if on == trigger
}


def _transition(host: Host, seq: int, cid: str, tag: str) -> Container:
    c = host.containers.get(cid)
    if c is None:
        c = host.container(seq, cid)  # raises
    dest = _NEXT.get((c.state, tag))
    if dest is None:
        raise LifecycleViolation(seq, cid, tag, c.state)
    c.state = dest
    return c


def _discard(c: Container, tmpfs_only: bool) -> None:
    tmpfs = c.tmpfs
    for target in tmpfs:
        tmpfs[target] = {}
    if not tmpfs_only:
        c.rw = {}
        c.copy_ups = {}
        c.rw_generation += 1


@_on("ContainerStarted")
def _started(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = _transition(host, seq, d["container"], "ContainerStarted")
    c.started_at = ts


@_on("ContainerRestarted")
def _restarted(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = _transition(host, seq, d["container"], "ContainerRestarted")
    c.started_at = ts
    c.restart_count += 1


@_on("ContainerPaused")
def _paused(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    _transition(host, seq, d["container"], "ContainerPaused")


@_on("ContainerUnpaused")
def _unpaused(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    _transition(host, seq, d["container"], "ContainerUnpaused")


def _exited(tag: str) -> Handler:
    def handle(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
        c = _transition(host, seq, d["container"], tag)
        c.finished_at = ts
        c.exit_code = d.get("exit_code", 0)
        # tmpfs lives in memory: gone at every stop. The writable layer goes
        # too under the seed's model (discard_on=stop); Docker keeps it until rm.
        _discard(c, tmpfs_only=c.discard_on != "stop")

    return handle


for _tag in ("ContainerStopped", "ContainerKilled", "ContainerDied"):
    _HANDLERS[_tag] = _exited(_tag)


@_on("ContainerRemoved")
def _removed(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    cid = d["container"]
    c = _transition(host, seq, cid, "ContainerRemoved")
    _discard(c, tmpfs_only=False)
    for m in c.mounts:
        if m.type == VOLUME and m.source in host.volumes:
            host.volumes[m.source].refs.pop(cid, None)
    if host.names.get(c.name) == cid:
        del host.names[c.name]
    c.removed_at = ts
    del host.containers[cid]
    host._removed[cid] = c  # without decoding those a snapshot left encoded


# -- files ----------------------------------------------------------------------


def _file_entry(mode: int, size: int, chunks: tuple[bytes, ...], seq: int, ts: int) -> Entry:
    return _entry((FILE, mode, size, chunks, seq, ts, 0, 0, "", False))


def _appended(old: Entry, size: int, chunks: Sequence[bytes], seq: int, ts: int) -> Entry:
    """A file entry with ``chunks`` appended (what ``old._replace`` gives, faster)."""
    kind, mode, old_size, old_chunks, _, _, uid, gid, target, opaque = old
    return _entry(
        (
            kind,
            mode,
            old_size + size,
            old_chunks + tuple(chunks),
            seq,
            ts,
            uid,
            gid,
            target,
            opaque,
        )
    )


def _apply(tree: Tree, op: _Op, top: str = "/") -> None:
    """Make a file write, append or delete in a flat tree (a volume's, a tmpfs's, the
    host's under a bind: ``top`` is the bind's source) as `_Target` makes it. The
    handlers' way into such trees, and how `Pending` makes its writes later."""
    kind, key, a, b, seq, ts = op
    old = tree.get(key)
    if kind == _DELETE:
        if old is None or old.kind == DIR:
            # only a directory has entries below it (scanning a big volume for a file is slow)
            _drop_below(tree, key)
        tree.pop(key, None)
        return
    if old is not None and old.kind == FILE:
        # rewritten or appended to: its parents are there
        tree[key] = a if kind == _WRITE else _appended(old, a, b, seq, ts)
        return
    _make_parents(tree, key, seq, ts, top)
    if old is not None and old.kind == DIR:
        _drop_below(tree, key)  # a file put over a directory replaces all of it
    tree[key] = a if kind == _WRITE else _file_entry(0o644, a, tuple(b), seq, ts)


def _make_parents(tree: Tree, path: str, seq: int, ts: int, stop: str = "/") -> None:
    """Create missing directories above ``path`` in a flat tree (volume, tmpfs, host)."""
    below = stop + "/"
    for anc in ancestry_of(path) or ancestry(path):
        if stop != "/" and (anc == stop or not anc.startswith(below)):
            break
        if anc in tree:
            break
        tree[anc] = _entry((DIR, 0o755, 0, (), seq, ts, 0, 0, "", False))


def _rw_parents(rw: Tree, lower: Tree, path: str, seq: int, ts: int) -> None:
    """Make the directories above ``path`` exist in the container's root filesystem."""
    for anc in ancestry_of(path) or ancestry(path):
        here = rw.get(anc)
        if here is not None and here.kind == DIR:
            break
        if here is None and rw_lookup(rw, lower, anc) is not None:
            break
        # missing, or whited out: a dir re-created over a whiteout is opaque.
        rw[anc] = _entry((DIR, 0o755, 0, (), seq, ts, 0, 0, "", here is not None))


def _copy_up(c: Container, lower: Tree, path: str) -> Entry | None:
    """The entry at ``path``, copied up from the lower layers on first modification."""
    entry = rw_lookup(c.rw, lower, path)
    if entry is not None and path not in c.rw:
        if entry.kind == FILE:
            # overlay2 copies the whole file up on its first write open or chmod.
            c.copy_ups[path] = entry.size
        c.rw[path] = entry
    return entry


class _Target:
    """Where a file event lands: a flat tree (volume, bind, tmpfs) or the writable layer."""

    __slots__ = ("container", "key", "lower", "top", "tree")

    def __init__(self, host: Host, seq: int, cid: str, path: str) -> None:
        c = host.container(seq, cid)
        self.container = c
        m = c.mount_for(path) if c.mounts else None
        if m is None:
            self.tree: Tree = c.rw
            self.key = path
            self.lower: Tree | None = host.lower(c)
            self.top = "/"
        else:
            if m.type == VOLUME and m.source not in host.volumes:
                raise InconsistentLogError(seq, f"write to missing volume {m.source}")
            self.tree, self.key = host.mount_tree(c, m, path)
            self.lower = None
            self.top = m.source if m.type == BIND else "/"

    def current(self) -> Entry | None:
        if self.lower is None:
            return self.tree.get(self.key)
        return _copy_up(self.container, self.lower, self.key)

    def parents(self, seq: int, ts: int) -> None:
        if self.lower is None:
            _make_parents(self.tree, self.key, seq, ts, self.top)
        else:
            _rw_parents(self.tree, self.lower, self.key, seq, ts)

    def put(self, entry: Entry) -> None:
        old = self.tree.get(self.key)
        if old is not None and old.kind == DIR and entry.kind != DIR:
            _drop_below(self.tree, self.key)
        self.tree[self.key] = entry

    def delete(self, seq: int, ts: int) -> None:
        tree, key = self.tree, self.key
        here = tree.get(key)
        if here is None and self.lower is not None:
            here = self.lower.get(key)
        if here is None or here.kind == DIR:
            # only a directory has entries below it (scanning a big volume for a file is slow)
            _drop_below(tree, key)
        if self.lower is not None and rw_visible_in_lower(tree, self.lower, key):
            tree[key] = fs.whiteout(seq, ts)
        else:
            tree.pop(key, None)


def rw_visible_in_lower(rw: Tree, lower: Tree, path: str) -> bool:
    if path not in lower:
        return False
    for anc in ancestry_of(path) or ancestry(path):
        a = rw.get(anc)
        if a is not None and (a.kind != DIR or a.opaque):
            return False
    return True


def _in_mount(host: Host, c: Container, m: Mount, path: str) -> tuple[Tree | None, str]:
    """The tree a bind or tmpfs mount keeps ``path`` in and its key there; None when that
    tree does not exist yet (a tmpfs never written), which `_Target` handles. (A volume's
    writes go through `Volume.change`, which may keep them for later.)"""
    rel = path[len(m.target) :] or "/"  # fs.relative: a mount target is never "/"
    if m.type == BIND:
        return host.host_files, fs.join(m.source, rel)
    return c.tmpfs.get(m.target), rel


# The three commonest events of a busy host (FileWritten is half of a log,
# FileAppended a fifth, FileDeleted a fourteenth) take a direct path to the tree
# they change, doing what `_Target` would do in one pass; whatever is unusual (a
# directory in the way, a whiteout, a tree not made yet, an unknown container)
# goes through `_Target`, which also raises for a bad log.


def _rw_hides_lower(rw: Tree, ancs: tuple[str, ...]) -> bool:
    """Something in the writable layer above a path hides the lower layers' entry there
    (what `rw_lookup` checks): a whiteout, a file over a directory, an opaque directory."""
    for anc in ancs:
        a = rw.get(anc)
        if a is not None and (a.kind != DIR or a.opaque):
            return True
    return False


def _rw_dirs(rw: Tree, lower: Tree, ancs: tuple[str, ...], seq: int, ts: int) -> None:
    """`_rw_parents` where nothing above the path hides the lower layers (see
    `_rw_hides_lower`): an ancestor then exists when either layer has it."""
    for anc in ancs:
        if anc in rw or anc in lower:
            return
        rw[anc] = _entry((DIR, 0o755, 0, (), seq, ts, 0, 0, "", False))


def _below_first_write(
    host: Host, c: Container, rw: Tree, path: str
) -> tuple[Tree, tuple[str, ...], bool, Entry | None]:
    """For a first write of ``path`` into ``c``'s writable layer: the lower tree, the
    path's ancestry, whether the writable layer hides the lower one above the path, and
    the lower entry the path shows (None when hidden or absent)."""
    lower = host.lower(c)
    ancs = ancestry_of(path) or ancestry(path)
    hidden = bool(rw) and _rw_hides_lower(rw, ancs)
    return lower, ancs, hidden, None if hidden else lower.get(path)


def _rw_make_parents(
    rw: Tree, lower: Tree, path: str, ancs: tuple[str, ...], *, hidden: bool, seq: int, ts: int
) -> None:
    """Make the missing parents of a first write in the writable layer."""
    if hidden:
        _rw_parents(rw, lower, path, seq, ts)
    else:
        _rw_dirs(rw, lower, ancs, seq, ts)


@_on("FileWritten")
def _file_written(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = host.containers.get(d["container"])
    if c is not None:
        path = d["path"]
        entry = _entry(
            (FILE, d.get("mode", 0o644), d["size"], tuple(d["chunks"]), seq, ts, 0, 0, "", False)
        )
        m = c.mount_for(path) if c.mounts else None
        if m is None:
            rw = c._rw if type(c._rw) is dict else c.rw  # the property costs a call
            old = rw.get(path)
            if old is None:
                # a first write: count the copy-up of a lower file it replaces (or put the
                # file over a lower symlink), make the parents, put the file
                lower, ancs, hidden, shown = _below_first_write(host, c, rw, path)
                if shown is None or shown.kind != DIR:
                    if shown is not None and shown.kind == FILE:
                        c.copy_ups[path] = shown.size
                        rw[path] = shown  # keeps `_Target`'s insertion order
                    _rw_make_parents(rw, lower, path, ancs, hidden=hidden, seq=seq, ts=ts)
                    rw[path] = entry
                    return
            elif old.kind == FILE:
                rw[path] = entry  # rewritten: already copied up, its parents are there
                return
        elif m.type == VOLUME:
            vol = host.volumes.get(m.source)
            if vol is not None:
                vol.change((_WRITE, path[len(m.target) :] or "/", entry, None, seq, ts))
                return
        else:
            tree, key = _in_mount(host, c, m, path)
            if tree is not None:
                _apply(
                    tree, (_WRITE, key, entry, None, seq, ts), m.source if m.type == BIND else "/"
                )
                return
    t = _Target(host, seq, d["container"], d["path"])
    if t.lower is not None:
        t.current()  # counts the copy-up of a lower file being overwritten
    t.parents(seq, ts)
    t.put(_file_entry(d.get("mode", 0o644), d["size"], tuple(d["chunks"]), seq, ts))


@_on("FileAppended")
def _file_appended(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = host.containers.get(d["container"])
    if c is not None:
        path = d["path"]
        m = c.mount_for(path) if c.mounts else None
        if m is None:
            rw = c._rw if type(c._rw) is dict else c.rw  # the property costs a call
            old = rw.get(path)
            if old is None:
                lower, ancs, hidden, shown = _below_first_write(host, c, rw, path)
                if shown is None:
                    _rw_make_parents(rw, lower, path, ancs, hidden=hidden, seq=seq, ts=ts)
                    rw[path] = _file_entry(0o644, d["size"], tuple(d["chunks"]), seq, ts)
                    return
                if shown.kind == FILE:
                    c.copy_ups[path] = shown.size  # appending to a lower file copies it up
                    rw[path] = _appended(shown, d["size"], d["chunks"], seq, ts)
                    return
            elif old.kind == FILE:
                rw[path] = _appended(old, d["size"], d["chunks"], seq, ts)
                return
        elif m.type == VOLUME:
            vol = host.volumes.get(m.source)
            if vol is not None:
                key = path[len(m.target) :] or "/"
                vol.change((_APPEND, key, d["size"], d["chunks"], seq, ts))
                return
        else:
            tree, key = _in_mount(host, c, m, path)
            if tree is not None:
                top = m.source if m.type == BIND else "/"
                _apply(tree, (_APPEND, key, d["size"], d["chunks"], seq, ts), top)
                return
    t = _Target(host, seq, d["container"], d["path"])
    old = t.current()
    if old is None or old.kind != FILE:
        t.parents(seq, ts)
        t.put(_file_entry(0o644, d["size"], tuple(d["chunks"]), seq, ts))
        return
    t.put(_appended(old, d["size"], d["chunks"], seq, ts))


@_on("FileDeleted")
def _file_deleted(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = host.containers.get(d["container"])
    if c is not None:
        # a file (nothing is below it) in the writable layer or a mount's tree
        path = d["path"]
        m = c.mount_for(path) if c.mounts else None
        if m is None:
            rw = c._rw if type(c._rw) is dict else c.rw
            here = rw.get(path)
            if here is not None and here.kind == FILE:
                lower = host.lower(c)
                if path in lower and rw_visible_in_lower(rw, lower, path):
                    rw[path] = fs.whiteout(seq, ts)
                else:
                    del rw[path]
                return
        elif m.type == VOLUME:
            vol = host.volumes.get(m.source)
            if vol is not None:
                vol.change((_DELETE, path[len(m.target) :] or "/", None, None, seq, ts))
                return
        else:
            tree, key = _in_mount(host, c, m, path)
            if tree is not None:
                _apply(tree, (_DELETE, key, None, None, seq, ts))
                return
    _Target(host, seq, d["container"], d["path"]).delete(seq, ts)


@_on("DirCreated")
def _dir_created(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    t = _Target(host, seq, d["container"], d["path"])
    t.parents(seq, ts)
    old = t.tree.get(t.key)
    if old is not None and old.kind == DIR:
        return
    opaque = t.lower is not None and old is not None and old.kind == WHITEOUT
    t.put(fs.dir_entry(seq, ts, d.get("mode", 0o755), opaque=opaque))


@_on("FileModeChanged")
def _mode_changed(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    t = _Target(host, seq, d["container"], d["path"])
    old = t.current()
    if old is None:
        raise InconsistentLogError(seq, f"chmod of missing {d['path']}")
    t.put(old._replace(mode=d["mode"], seq=seq, mtime=ts))


@_on("FileRenamed")
def _file_renamed(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    src = _Target(host, seq, d["container"], d["path"])
    dst = _Target(host, seq, d["container"], d["dest"])
    entry = src.current()
    if entry is None:
        raise InconsistentLogError(seq, f"rename of missing {d['path']}")
    moved = (
        {
            fs.join(dst.key, key[len(src.key) :]): e
            for key, e in src.tree.items()
            if key != src.key and fs.is_below(key, src.key)
        }
        if entry.kind == DIR
        else {}  # nothing is below a file
    )
    src.delete(seq, ts)
    dst.parents(seq, ts)
    dst.put(entry._replace(seq=seq, mtime=ts))
    dst.tree.update(moved)


@_on("VolumeCreated")
def _volume_created(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    name = d["name"]
    if name in host.volumes:
        return
    host.volumes[name] = Volume(
        name,
        d.get("anonymous", False),
        d.get("driver", "local"),
        dict(d.get("labels") or {}),
        dict(d.get("options") or {}),
        ts,
    )


@_on("VolumeRemoved")
def _volume_removed(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    if host.volumes.pop(d["name"], None) is None:
        raise InconsistentLogError(seq, f"removal of missing volume {d['name']}")


@_on("VolumePopulated")
def _volume_populated(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    c = host.container(seq, d["container"])
    vol = host.volumes[d["name"]]
    target = d["target"]
    lower = host.lower(c)
    for path, entry in lower.items():
        if path != target and fs.is_below(path, target):
            vol.files[fs.relative(path, target)] = entry._replace(seq=seq)


@_on("HostFileWritten")
def _host_file_written(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    path, tree = d["path"], host.host_files
    old = tree.get(path)
    chunks, size = tuple(d["chunks"]), d["size"]
    if d.get("append") and old is not None and old.kind == FILE:
        tree[path] = old._replace(
            size=old.size + size, chunks=old.chunks + chunks, seq=seq, mtime=ts
        )
        return
    _make_parents(tree, path, seq, ts)
    tree[path] = Entry(FILE, d.get("mode", 0o644), size, chunks, seq, ts)


@_on("HostDirCreated")
def _host_dir_created(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    path, tree = d["path"], host.host_files
    _make_parents(tree, path, seq, ts)
    if path not in tree:
        tree[path] = fs.dir_entry(seq, ts, d.get("mode", 0o755))


@_on("SettingChanged")
def _setting(host: Host, seq: int, ts: int, d: Mapping[str, Any]) -> None:
    host.settings[d["key"]] = d["value"]
