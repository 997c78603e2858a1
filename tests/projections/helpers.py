"""Helpers for the projection tests: images, random operations, and naive references.

The references here are written independently of the code under test:

- `naive_image` stacks an image's stored layer tables one by one on a *nested*
  directory tree (whiteouts remove a node, an opaque marker empties the lower
  directory), not on flat path dicts;
- `naive_merged` puts a container's writable layer on that tree, then grafts
  its mounts in order of target length, so the longest target wins;
- `naive_diff` is Docker's tree comparison (go-archive ``ChangesDirs``) of the
  image view and the container's root filesystem;
- `Model` follows what each accepted operation does to the files a process
  sees, and which of them live only in the writable layer or a tmpfs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from dockstate.core import fs
from dockstate.core.commands import DockerHost
from dockstate.core.errors import DockstateError
from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT, Entry, Tree
from dockstate.core.mounts import BIND, TMPFS, VOLUME, Mount
from dockstate.core.names import RandomIds
from dockstate.core.state import Container, Host
from dockstate.eventlog import EventLog, InMemoryEventLog
from dockstate.projections.asof import State
from dockstate.projections.ledger import Ledger
from tests.conftest import FakeClock
from tests.core.helpers import APP_IMAGE, DB_IMAGE, ImageSpec, d, f, opaque, register_image, wh

#: An image on the same base layer as ``app:1``; its upper layer makes ``/etc`` opaque
#: (hiding the base's files there), whites out the ``/var/log`` directory and ships
#: nested directories.
DEEP_IMAGE = ImageSpec(
    layers=[
        APP_IMAGE.layers[0],
        [
            d("/opt"),
            d("/opt/pkg"),
            d("/opt/pkg/sub"),
            f("/opt/pkg/sub/deep.txt", "deep\n"),
            f("/opt/pkg/top.txt", "top\n"),
            d("/etc"),
            opaque("/etc"),
            f("/etc/hostname", "deep-host\n"),
            wh("/var/log"),
            d("/srv"),
            f("/srv/deep.html", "<p>deep</p>\n"),
        ],
    ],
    tags=["deep:1"],
)

IMAGES = (APP_IMAGE, DEEP_IMAGE, DB_IMAGE)
IMAGE_REFS = ("app:1", "deep:1", "db:1")

SESSION = "projections"


def new_host(log: EventLog | None = None, seed: int = 7) -> DockerHost:
    """A DockerHost on an in-memory log (unless given one) with the three test images."""
    if log is None:
        log = InMemoryEventLog(clock=FakeClock())
    docker = DockerHost(log, ids=RandomIds(random.Random(seed)), session=SESSION)
    for spec in IMAGES:
        register_image(docker, spec)
    return docker


# -- random operations -------------------------------------------------------------------

NAMES = ("c1", "c2")

#: Mounts a container may get: (flag, spec). At most one per target.
MOUNTS: tuple[tuple[str, str], ...] = (
    ("-v", "vol1:/data"),
    ("-v", "/host/sub:/data/sub"),  # a bind nested in a volume
    ("-v", "vol2:/srv"),  # populated from the image's /srv when empty
    ("-v", "vol2:/srv:nocopy"),
    ("-v", "/host/lib:/app/lib"),  # a bind hiding image content
    ("--tmpfs", "/tmp"),
    ("--tmpfs", "/run/deep/tmp"),  # a mount point whose parents the image lacks
    ("-v", "vol1:/mnt/ro:ro"),  # the same volume again, read-only
    ("-v", "/anon"),  # an anonymous volume
    ("-v", "/host/hosts.txt:/etc/hosts"),  # a file bind when the host file exists
    ("--mount", "type=volume,src=vol3,dst=/opt/pkg"),
    ("--mount", "type=volume,src=vol3,dst=/opt/pkg,volume-nocopy"),
    ("--tmpfs", "/opt/pkg/sub"),  # hides part of what vol3 was populated with
)

#: Paths operations use: image files and dirs, new ones, and paths under every mount.
PATHS = (
    "/etc/hosts",
    "/etc/motd",
    "/etc/hostname",
    "/etc/new.conf",
    "/app/main.py",
    "/app/lib/util.py",
    "/app/lib",
    "/app",
    "/app/lib/new.py",
    "/opt/pkg",
    "/opt/pkg/sub",
    "/opt/pkg/sub/deep.txt",
    "/opt/pkg/top.txt",
    "/opt/pkg/sub/new.txt",
    "/srv/index.html",
    "/srv/new.html",
    "/srv",
    "/var/lib/db/schema.sql",
    "/var/lib/db/new.sql",
    "/var/log",
    "/bin/sh",
    "/data/f1",
    "/data/sub",
    "/data/sub/f2",
    "/data/dir/f3",
    "/tmp/t1",
    "/tmp/d/t2",
    "/run/deep/tmp/r1",
    "/run/deep/x",
    "/mnt/ro/x",
    "/anon/a1",
    "/new",
    "/new/n1",
)

HOST_PATHS = ("/host/sub/h1", "/host/hosts.txt", "/host/lib/hl.py", "/host/lib/d/h2")

VERBS = ("start", "stop", "kill", "restart", "pause", "unpause", "rm", "rm -f", "rm -fv")


@dataclasses.dataclass(frozen=True)
class Op:
    """One command against the host; refused ones are simply skipped."""

    verb: str
    name: str = ""
    path: str = ""
    dest: str = ""
    data: bytes = b""
    image: str = "app:1"
    mounts: tuple[tuple[str, str], ...] = ()
    discard_on: str = "stop"
    start: bool = True
    auto_remove: bool = False
    flag: bool = False
    mode: int = 0o644


names = st.sampled_from(NAMES)
paths = st.sampled_from(PATHS)
contents = st.sampled_from((b"", b"x", b"hello", b"\x00\x01\x02", b"0123456789abcdef"))


@st.composite
def mount_sets(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    """Each mount of `MOUNTS` with even odds, the first of each target kept."""
    picks = draw(st.lists(st.booleans(), min_size=len(MOUNTS), max_size=len(MOUNTS)))
    out, targets = [], set()
    for (flag, spec), pick in zip(MOUNTS, picks, strict=True):
        target = _spec_target(flag, spec)
        if pick and target not in targets:
            targets.add(target)
            out.append((flag, spec))
    return tuple(out)


def _spec_target(flag: str, spec: str) -> str:
    if flag == "--mount":
        return next(p.split("=", 1)[1] for p in spec.split(",") if p.startswith("dst="))
    if flag == "--tmpfs":
        return spec
    parts = spec.split(":")
    return parts[0] if len(parts) == 1 else parts[1]


def creates(name: st.SearchStrategy[str] = names) -> st.SearchStrategy[Op]:
    return st.builds(
        Op,
        verb=st.just("create"),
        name=name,
        image=st.sampled_from(IMAGE_REFS),
        mounts=mount_sets(),
        discard_on=st.sampled_from(("stop", "remove")),
        start=st.sampled_from((True, True, True, False)),
        auto_remove=st.sampled_from((False, False, False, True)),
    )


file_ops = st.one_of(
    st.builds(Op, verb=st.sampled_from(("write", "append")), name=names, path=paths, data=contents),
    st.builds(Op, verb=st.just("delete"), name=names, path=paths, flag=st.booleans()),
    st.builds(Op, verb=st.just("recreate"), name=names, path=paths),
    st.builds(Op, verb=st.just("mkdir"), name=names, path=paths, flag=st.booleans()),
    st.builds(Op, verb=st.just("rename"), name=names, path=paths, dest=paths),
    st.builds(
        Op, verb=st.just("chmod"), name=names, path=paths, mode=st.sampled_from((0o600, 0o755))
    ),
)
other_ops = st.one_of(
    creates(),
    st.builds(Op, verb=st.just("volume rm"), name=st.sampled_from(("vol1", "vol2", "vol3"))),
    st.builds(Op, verb=st.just("volume prune"), flag=st.booleans()),
    st.builds(Op, verb=st.just("host write"), path=st.sampled_from(HOST_PATHS), data=contents),
    st.builds(Op, verb=st.just("host mkdir"), path=st.sampled_from(("/host/lib", "/host/sub"))),
)
lifecycle_ops = st.builds(Op, verb=st.sampled_from((*VERBS, "purge")), name=names)
#: File operations are drawn three times as often as the rest.
ops = st.one_of(file_ops, file_ops, file_ops, lifecycle_ops, other_ops)
#: Mostly file operations: containers live long and share their volumes' files.
file_heavy_ops = st.one_of(*[file_ops] * 8, lifecycle_ops, other_ops)
#: Sequences start with one or two containers (the first running) for the operations to meet.
op_sequences = st.tuples(
    creates(st.just("c1")).map(lambda op: dataclasses.replace(op, start=True)),
    st.lists(creates(st.just("c2")), max_size=1),
    st.lists(ops, min_size=5, max_size=35),
).map(lambda t: [t[0], *t[1], *t[2]])


def existing_paths(docker: DockerHost, name: str) -> list[str]:
    """The paths of `PATHS` that container ``name`` sees now (none if there is no such container)."""
    host = docker.state()
    cid = host.names.get(name)
    if cid is None:
        return []
    c = host.containers[cid]
    return [p for p in PATHS if host.lookup(c, p) is not None]


def play(
    data: st.DataObject,
    docker: DockerHost,
    steps: int,
    step: Callable[[Op], bool] | None = None,
    mix: st.SearchStrategy[Op] | None = None,
) -> list[Op]:
    """Draw and run ``steps`` operations one at a time; return the accepted ones.

    A delete, rename or chmod names a path the container sees at that moment
    (most of the time), so that most of them are accepted.
    """
    run = step or (lambda op: _try(docker, op))
    accepted = []
    # host files first, some of the time: a bind of /host/hosts.txt is then a file bind
    sequence = [
        Op("host write", path=path, data=b"on the host")
        for path in HOST_PATHS[:2]
        if data.draw(st.booleans(), label=f"host {path}")
    ]
    first = data.draw(creates(st.just("c1")), label="first")
    sequence.append(dataclasses.replace(first, start=True))
    sequence += data.draw(st.lists(creates(st.just("c2")), max_size=1), label="second")
    for op in sequence:
        if run(op):
            accepted.append(op)
    for _ in range(steps):
        op = data.draw(ops if mix is None else mix, label="op")
        if op.verb in ("delete", "recreate", "rename", "chmod"):
            here = existing_paths(docker, op.name)
            if here and data.draw(st.integers(0, 3), label="existing") > 0:
                op = dataclasses.replace(op, path=data.draw(st.sampled_from(here), label="path"))
        if op.verb == "rename" and data.draw(st.booleans(), label="sibling"):
            op = dataclasses.replace(op, dest=op.path + ".moved")
        if run(op):
            accepted.append(op)
    return accepted


def _try(docker: DockerHost, op: Op) -> bool:
    try:
        run_op(docker, op)
    except DockstateError:
        return False
    return True


def run_op(docker: DockerHost, op: Op) -> None:
    """Run one operation; raises `DockstateError` when the host refuses it."""
    v, n = op.verb, op.name
    if v == "create":
        docker.create(
            op.image,
            name=n,
            volumes=[s for fl, s in op.mounts if fl == "-v"],
            mounts=[s for fl, s in op.mounts if fl == "--mount"],
            tmpfs=[s for fl, s in op.mounts if fl == "--tmpfs"],
            discard_on=op.discard_on,
            start=op.start,
            auto_remove=op.auto_remove,
        )
    elif v in ("start", "stop", "kill", "restart", "pause", "unpause"):
        getattr(docker, v)(n)
    elif v == "rm":
        docker.remove(n)
    elif v == "rm -f":
        docker.remove(n, force=True)
    elif v == "rm -fv":
        docker.remove(n, force=True, volumes=True)
    elif v == "purge":
        # rm -f, then the named volumes it used, if nothing else uses them
        docker.remove(n, force=True)
        for vol in ("vol1", "vol2", "vol3"):
            with contextlib.suppress(DockstateError):
                docker.volume_remove([vol])
    elif v in ("write", "append"):
        docker.write_file(n, op.path, op.data, append=v == "append")
    elif v == "delete":
        docker.delete(n, op.path, recursive=op.flag)
    elif v == "mkdir":
        docker.mkdir(n, op.path, parents=op.flag)
    elif v == "recreate":
        # rm -rf dir && mkdir dir: the new dir hides what the image had there
        docker.delete(n, op.path, recursive=True)
        docker.mkdir(n, op.path)
    elif v == "rename":
        docker.rename(n, op.path, op.dest)
    elif v == "chmod":
        docker.chmod(n, op.path, op.mode)
    elif v == "volume rm":
        docker.volume_remove([n])
    elif v == "volume prune":
        docker.volume_prune(all_volumes=op.flag)
    elif v == "host write":
        docker.host_write(op.path, op.data)
    elif v == "host mkdir":
        docker.host_mkdir(op.path, parents=True)
    else:  # pragma: no cover - the strategies draw only the verbs above
        raise AssertionError(v)


def run_ops(docker: DockerHost, sequence: Iterable[Op]) -> list[Op]:
    """Run operations, skipping refused ones; return those that were accepted."""
    accepted = []
    for op in sequence:
        try:
            run_op(docker, op)
        except DockstateError:
            continue
        accepted.append(op)
    return accepted


# -- folds and canonical states ------------------------------------------------------------


def fold_prefix(log: EventLog, k: int) -> State:
    """The first ``k`` events folded one by one into an empty state: no snapshot involved."""
    state = State(Host(log.read_blobs), Ledger())
    for env in log.read(1, k):
        state.apply(env)
    return state


def hash_at(log: EventLog, seq: int) -> bytes:
    """The chain hash after event ``seq``, as the log itself records it."""
    follower = next(log.read(seq + 1, seq + 1), None)
    return follower.prev if follower is not None else log.head().hash


def _tree(tree: Mapping[str, Entry]) -> list[tuple[str, Entry]]:
    return sorted(tree.items())


def _container(c: Container) -> dict[str, Any]:
    return {
        "fields": (
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
            c.rw_generation,
            c.removed_at,
        ),
        "rw": _tree(c.rw),
        # an empty tmpfs and a tmpfs never touched hold the same: nothing
        "tmpfs": {t: _tree(tree) for t, tree in sorted(c.tmpfs.items()) if tree},
        "copy_ups": sorted(c.copy_ups.items()),
    }


def canonical(state: State) -> dict[str, Any]:
    """Everything a state holds as plain, ordered values (lazy parts decoded)."""
    host = state.host
    return {
        "seq": host.seq,
        "hash": host.hash,
        "ts": host.ts,
        "layers": sorted(dataclasses.astuple(layer) for layer in host.layers.values()),
        "images": sorted(
            (i.id, i.config, i.diff_ids, i.chain_ids, i.volumes, i.created, i.size, i.tags)
            for i in host.images.values()
        ),
        "tags": sorted(host.tags.items()),
        "containers": {cid: _container(c) for cid, c in sorted(host.containers.items())},
        "removed": {cid: _container(c) for cid, c in sorted(host.removed.items())},
        "names": sorted(host.names.items()),
        "volumes": {
            v.name: (
                v.anonymous,
                v.driver,
                sorted(v.labels.items()),
                sorted(v.options.items()),
                v.created,
                _tree(v.files),
                list(v.refs),
            )
            for v in sorted(host.volumes.values(), key=lambda v: v.name)
        },
        "host_files": _tree(host.host_files),
        "settings": sorted(host.settings.items()),
        "ledger": [dataclasses.astuple(r) for r in state.ledger.records],
    }


# -- the naive merged view -------------------------------------------------------------


@dataclasses.dataclass
class Node:
    entry: Entry
    children: dict[str, Node] = dataclasses.field(default_factory=dict)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _find(root: Node, path: str) -> Node | None:
    node: Node | None = root
    for name in _split(path):
        if node is None or node.entry.kind != DIR:
            return None
        node = node.children.get(name)
    return node


def _make_dirs(root: Node, path: str) -> Node:
    """The node at ``path``, making missing directories (and turning non-dirs into dirs)."""
    node = root
    for name in _split(path):
        child = node.children.get(name)
        if child is None or child.entry.kind != DIR:
            child = Node(fs.dir_entry())
            node.children[name] = child
        node = child
    return node


def _depth(item: tuple[str, Entry]) -> int:
    return item[0].count("/")


def _stack_layer(root: Node, table: list[tuple[str, Entry]]) -> None:
    # markers act on the layers below only, so all of them go first
    for path, entry in table:
        if entry.kind == WHITEOUT:
            parent = _find(root, fs.parent(path))
            if parent is not None:
                parent.children.pop(path.rsplit("/", 1)[1], None)
        elif entry.opaque:
            node = _find(root, path)
            if node is not None:
                node.children = {}
    for path, entry in table:
        if entry.kind == WHITEOUT:
            continue
        placed = entry._replace(opaque=False)
        parent = _make_dirs(root, fs.parent(path))
        name = path.rsplit("/", 1)[1]
        old = parent.children.get(name)
        if old is not None and old.entry.kind == DIR and placed.kind == DIR:
            old.entry = placed
        else:
            parent.children[name] = Node(placed)


def _flatten(node: Node, path: str, out: Tree) -> Tree:
    out[path] = node.entry
    for name, child in node.children.items():
        _flatten(child, fs.join(path, "/" + name), out)
    return out


def layer_tables(host: Host, image_id: str) -> list[list[tuple[str, Entry]]]:
    """The stored tables of an image's layers, base first."""
    image = host.images[image_id]
    return [host.layer_cache.table(host.layers[ch]) for ch in image.chain_ids]


def _image_root(host: Host, image_id: str) -> Node:
    root = Node(fs.dir_entry())
    for table in layer_tables(host, image_id):
        _stack_layer(root, table)
    return root


def naive_image(host: Host, image_id: str) -> Tree:
    """An image's root filesystem, ``/`` included, layers stacked one by one."""
    return _flatten(_image_root(host, image_id), "/", {})


def _stack_rw(root: Node, rw: Tree) -> None:
    for path, entry in sorted(rw.items(), key=_depth):
        parent = _find(root, fs.parent(path))
        if parent is None or parent.entry.kind != DIR:
            continue  # below a whiteout or a file: overlayfs never reaches it
        name = path.rsplit("/", 1)[1]
        old = parent.children.get(name)
        if entry.kind == WHITEOUT:
            parent.children.pop(name, None)
        elif entry.kind == DIR and old is not None and old.entry.kind == DIR and not entry.opaque:
            old.entry = entry
        else:
            parent.children[name] = Node(entry)


def _tree_node(root_entry: Entry | None, tree: Mapping[str, Entry], top: str = "/") -> Node:
    node = Node(root_entry or fs.dir_entry())
    if node.entry.kind != DIR:
        return node
    inside = [(p, e) for p, e in tree.items() if p != top and fs.is_below(p, top)]
    for path, entry in sorted(inside, key=_depth):
        rel = fs.relative(path, top)
        parent = _find(node, fs.parent(rel))
        if parent is None or parent.entry.kind != DIR:
            continue
        name = rel.rsplit("/", 1)[1]
        old = parent.children.get(name)
        parent.children[name] = Node(entry, old.children if old and entry.kind == DIR else {})
    return node


def naive_merged(host: Host, c: Container, *, mounts: bool = True) -> Tree:
    """What a process in ``c`` sees, path -> entry, built bottom up."""
    root = _image_root(host, c.image_id)
    _stack_rw(root, c.rw)
    if mounts:
        for m in sorted(c.mounts, key=lambda m: len(m.target)):
            if m.type == VOLUME:
                node = _tree_node(None, host.volumes[m.source].files)
            elif m.type == BIND:
                node = _tree_node(host.host_files.get(m.source), host.host_files, m.source)
            else:
                node = _tree_node(None, c.tmpfs.get(m.target, {}))
            parent = _make_dirs(root, fs.parent(m.target))
            parent.children[m.target.rsplit("/", 1)[1]] = node
    return _flatten(root, "/", {})


def naive_diff(host: Host, c: Container) -> set[tuple[str, str]]:
    """``docker diff`` as go-archive's tree comparison computes it (order aside)."""
    old = _image_root(host, c.image_id)
    new = _image_root(host, c.image_id)
    _stack_rw(new, c.rw)
    out: list[tuple[str, str]] = []
    _compare(new, old, "/", out, added=False)
    return set(out)


def _differs(a: Entry, b: Entry) -> bool:
    if a.kind != b.kind or (a.mode, a.uid, a.gid) != (b.mode, b.uid, b.gid):
        return True
    if a.kind == DIR:
        return False  # Docker ignores size and mtime of directories
    return (a.size, a.chunks, a.mtime, a.target) != (b.size, b.chunks, b.mtime, b.target)


def _compare(
    new: Node, old: Node | None, path: str, out: list[tuple[str, str]], added: bool
) -> None:
    start = len(out)
    if old is None:
        out.append(("A", path))
        added = True
    old_children = dict(old.children) if old is not None and new.entry.kind == DIR else {}
    for name, child in new.children.items():
        child_path = fs.join(path, "/" + name)
        before = old_children.pop(name, None)
        child_added = False
        if before is not None and _differs(child.entry, before.entry):
            out.append(("C", child_path))
            child_added = True
        _compare(child, before, child_path, out, added=child_added)
    for name in old_children:
        out.append(("D", fs.join(path, "/" + name)))
    if len(out) > start and new.entry.kind == DIR and not added and path != "/":
        out.insert(start, ("C", path))


def probe_paths(host: Host, c: Container) -> set[str]:
    """Paths worth looking up in ``c``: everything any layer or mount knows, and more."""
    out = set(PATHS) | set(c.rw) | set(host.lower(c))
    for m in c.mounts:
        out.add(m.target)
        out.update(fs.ancestors(m.target))
        if m.type == VOLUME and m.source in host.volumes:
            out.update(fs.join(m.target, p) for p in host.volumes[m.source].files)
        elif m.type == BIND:
            out.update(
                fs.join(m.target, fs.relative(p, m.source))
                for p in host.host_files
                if fs.is_below(p, m.source)
            )
        elif m.type == TMPFS:
            out.update(fs.join(m.target, p) for p in c.tmpfs.get(m.target, {}))
    for p in list(out):
        out.update(fs.ancestors(p))
    return out


# -- an independent model of the files a process sees ------------------------------------

#: A model tree: path -> ("f", content) | ("l", target) | ("d", None).
MTree = dict[str, tuple[str, Any]]


def _below(tree: Mapping[str, Any], top: str) -> list[str]:
    return [p for p in tree if p != top and fs.is_below(p, top)]


@dataclasses.dataclass
class Box:
    """One container as the model sees it."""

    cid: str
    image: MTree
    mounts: list[Mount]
    discard_on: str
    #: the root filesystem outside mounts.
    view: MTree
    #: paths of ``view`` whose file lives in the writable layer.
    rw: set[str] = dataclasses.field(default_factory=set)
    tmpfs: dict[str, MTree] = dataclasses.field(default_factory=dict)

    def mount_for(self, path: str) -> Mount | None:
        hits = [m for m in self.mounts if fs.is_below(path, m.target)]
        return max(hits, key=lambda m: len(m.target)) if hits else None


@dataclasses.dataclass
class Expected:
    """What the ledger should record at one seq."""

    event: str
    container: str
    lost: dict[str, Any]
    tmpfs: dict[str, Any]
    persisted: set[tuple[str, str, str]]


class Model:
    """Files per container, volume and host path, after each accepted operation.

    It reads from the host only what it cannot know by itself: container and
    anonymous volume ids, which events a command appended, and the image trees
    (built by `naive_image`).
    """

    def __init__(self, docker: DockerHost) -> None:
        self.docker = docker
        self.boxes: dict[str, Box] = {}
        self.by_name: dict[str, str] = {}
        self.volumes: dict[str, MTree] = {}
        self.host: MTree = {}
        self.expected: dict[int, list[Expected]] = {}
        self.volume_losses: dict[int, dict[str, Any]] = {}

    # -- running ---------------------------------------------------------------------

    def run(self, sequence: Iterable[Op]) -> None:
        for op in sequence:
            self.step(op)

    def step(self, op: Op) -> bool:
        """Run one operation and follow it; False if the host refused it."""
        before = self.docker.log.head().seq
        try:
            run_op(self.docker, op)
        except DockstateError:
            # a two-command operation may have done its first part
            if self.docker.log.head().seq == before:
                return False
        self.apply(op, list(self.docker.log.read(before + 1)))
        return True

    def apply(self, op: Op, envs: list[Any]) -> None:
        for env in envs:
            t, data = env.type, env.data
            if t == "ContainerCreated":
                self._create(data)
            elif t in ("ContainerStopped", "ContainerKilled", "ContainerDied"):
                self._stop(env.seq, t, data["container"])
            elif t == "ContainerRemoved":
                self._remove(env.seq, data["container"])
            elif t == "VolumeCreated":
                self.volumes.setdefault(data["name"], {})
            elif t == "VolumeRemoved":
                self.volume_losses[env.seq] = _files(self.volumes.pop(data["name"]))
            elif t in ("HostFileWritten", "HostDirCreated"):
                pass  # the operation below says what happened
        if op.verb == "recreate" and envs:
            self._file_op(dataclasses.replace(op, verb="delete"))
            if len(envs) > 1:
                self._file_op(dataclasses.replace(op, verb="mkdir"))
        elif op.verb in ("write", "append", "delete", "mkdir", "rename", "chmod") and envs:
            self._file_op(op)
        elif op.verb == "host write":
            _mkparents(self.host, op.path, "/")
            self.host[op.path] = ("f", op.data)
        elif op.verb == "host mkdir":
            _mkparents(self.host, op.path, "/")
            self.host.setdefault(op.path, ("d", None))

    def _create(self, data: Mapping[str, Any]) -> None:
        cid = data["container"]
        mounts = [Mount.from_data(m) for m in (*data["mounts"], *data.get("tmpfs", ()))]
        host = self.docker.state()
        image = model_tree(host, data["image_id"], self.docker.log.read_blobs)
        box = Box(cid, image, mounts, data["discard_on"], dict(image))
        empty = {m.source for m in mounts if m.type == VOLUME and not self.volumes.get(m.source)}
        for m in mounts:
            if m.type == BIND and m.source not in self.host:
                _mkparents(self.host, m.source, "/")
                self.host[m.source] = ("d", None)
            if m.type != VOLUME or m.nocopy or m.source not in empty:
                continue
            inside = _below(image, m.target)
            if m.target in image and inside:
                # an empty volume gets a copy of the image's content, once, at create
                vol = self.volumes.setdefault(m.source, {})
                for p in inside:
                    vol[fs.relative(p, m.target)] = image[p]
                empty.discard(m.source)
        self.boxes[cid] = box
        self.by_name[data["name"]] = cid

    def _persisted(self, box: Box) -> set[tuple[str, str, str]]:
        out = set()
        for m in box.mounts:
            if m.type == VOLUME:
                tree = self.volumes.get(m.source, {})
                items = [(fs.join(m.target, p), v) for p, v in tree.items()]
            elif m.type == BIND:
                items = [
                    (fs.join(m.target, fs.relative(p, m.source)), v)
                    for p, v in self.host.items()
                    if fs.is_below(p, m.source)
                ]
            else:
                continue
            out |= {
                (p, m.type, m.source) for p, v in items if v[0] == "f" and box.mount_for(p) is m
            }
        return out

    def _stop(self, seq: int, tag: str, cid: str) -> None:
        box = self.boxes[cid]
        tmpfs_lost = {
            fs.join(t, p): _value(v)
            for t, tree in box.tmpfs.items()
            for p, v in tree.items()
            if v[0] != "d"
        }
        lost = self._rw_files(box) if box.discard_on == "stop" else {}
        name = {"ContainerStopped": "stop", "ContainerKilled": "kill"}.get(tag, "die")
        self.expected.setdefault(seq, []).append(
            Expected(name, cid, lost, tmpfs_lost, self._persisted(box))
        )
        box.tmpfs = {}
        if box.discard_on == "stop":
            box.view, box.rw = dict(box.image), set()

    def _remove(self, seq: int, cid: str) -> None:
        box = self.boxes.pop(cid)
        self.by_name = {n: c for n, c in self.by_name.items() if c != cid}
        self.expected.setdefault(seq, []).append(
            Expected("rm", cid, self._rw_files(box), {}, self._persisted(box))
        )

    @staticmethod
    def _rw_files(box: Box) -> dict[str, Any]:
        return {p: _value(box.view[p]) for p in box.rw}

    # -- file operations ---------------------------------------------------------------

    def _where(self, box: Box, path: str) -> tuple[MTree, str, str, bool]:
        """The tree ``path`` lives in, its key there, the tree's top, and whether it is the rootfs."""
        m = box.mount_for(path)
        if m is None:
            return box.view, path, "/", True
        rel = fs.relative(path, m.target)
        if m.type == VOLUME:
            return self.volumes[m.source], rel, "/", False
        if m.type == BIND:
            return self.host, fs.join(m.source, rel), m.source, False
        return box.tmpfs.setdefault(m.target, {}), rel, "/", False

    def _file_op(self, op: Op) -> None:
        box = self.boxes[self.by_name[op.name]]
        tree, key, top, rootfs = self._where(box, op.path)
        if op.verb == "write":
            _mkparents(tree, key, top)
            tree[key] = ("f", op.data)
            if rootfs:
                box.rw.add(key)
        elif op.verb == "append":
            old = tree.get(key)
            _mkparents(tree, key, top)
            tree[key] = ("f", (old[1] if old and old[0] == "f" else b"") + op.data)
            if rootfs:
                box.rw.add(key)
        elif op.verb == "delete":
            for p in [key, *_below(tree, key)]:
                tree.pop(p, None)
                if rootfs:
                    box.rw.discard(p)
        elif op.verb == "mkdir":
            _mkparents(tree, key, top)
            tree[key] = ("d", None)
        elif op.verb == "chmod":
            if rootfs and tree[key][0] != "d":
                box.rw.add(key)  # overlay2 copies a file up on chmod
        elif op.verb == "rename":
            dtree, dkey, dtop, _ = self._where(box, op.dest)
            assert dtree is tree
            moved = {dkey + p[len(key) :]: tree[p] for p in [key, *_below(tree, key)]}
            for p in [key, *_below(tree, key)]:
                del tree[p]
                if rootfs:
                    box.rw.discard(p)
            for p in _below(tree, dkey):
                del tree[p]
                box.rw.discard(p)
            _mkparents(tree, dkey, dtop)
            tree.update(moved)
            if rootfs:
                box.rw |= {p for p, v in moved.items() if v[0] != "d"}

    # -- what a process sees -------------------------------------------------------------

    def process_view(self, cid: str) -> MTree:
        """The files of a container, mounts included: path -> ("f", bytes) | ("l", target)."""
        box = self.boxes[cid]
        out = {p: v for p, v in box.view.items() if v[0] != "d" and box.mount_for(p) is None}
        for m in box.mounts:
            if m.type == VOLUME:
                items = [(fs.join(m.target, p), v) for p, v in self.volumes[m.source].items()]
            elif m.type == BIND:
                items = [
                    (fs.join(m.target, fs.relative(p, m.source)), v)
                    for p, v in self.host.items()
                    if fs.is_below(p, m.source)
                ]
            else:
                items = [(fs.join(m.target, p), v) for p, v in box.tmpfs.get(m.target, {}).items()]
            out.update((p, v) for p, v in items if v[0] != "d" and box.mount_for(p) is m)
        return out


def _mkparents(tree: MTree, path: str, top: str) -> None:
    for anc in fs.ancestors(path):
        if anc == top or not fs.is_below(anc, top) or anc in tree:
            break
        tree[anc] = ("d", None)


def _files(tree: MTree) -> dict[str, Any]:
    return {p: _value(v) for p, v in tree.items() if v[0] != "d"}


def _value(v: tuple[str, Any]) -> Any:
    """What a loss record can tell of a file: its content, or only that it was a symlink."""
    return v[1] if v[0] == "f" else ("l",)


def model_tree(host: Host, image_id: str, read_blobs: Callable[[Sequence[bytes]], bytes]) -> MTree:
    """An image's files as the model holds them (contents read from the blob store)."""
    out: MTree = {}
    for path, e in naive_image(host, image_id).items():
        if path == "/":
            continue
        if e.kind == DIR:
            out[path] = ("d", None)
        elif e.kind == SYMLINK:
            out[path] = ("l", e.target)
        else:
            assert e.kind == FILE
            out[path] = ("f", read_blobs(e.chunks))
    return out


def content(e: Entry, read_blobs: Callable[[Sequence[bytes]], bytes]) -> tuple[str, Any]:
    """What the model holds for a file or symlink entry."""
    if e.kind == SYMLINK:
        return ("l", e.target)
    return ("f", read_blobs(e.chunks))
