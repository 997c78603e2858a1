"""Helpers for the core tests: real image layers built as tars, store fingerprints, folds."""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dockstate.core import fs
from dockstate.core.commands import DockerHost
from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT, Entry
from dockstate.core.refs import find_container
from dockstate.core.state import Host
from dockstate.eventlog import EventLog, LmdbEventLog

# -- layers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One member of a layer tar: a dir, a file, a symlink or an OCI whiteout marker."""

    kind: str
    path: str
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def d(path: str, mode: int = 0o755) -> Member:
    return Member("dir", path, mode=mode)


def f(path: str, data: bytes | str, mode: int = 0o644) -> Member:
    return Member("file", path, data.encode() if isinstance(data, str) else data, mode)


def link(path: str, target: str) -> Member:
    return Member("symlink", path, mode=0o777, target=target)


def wh(path: str) -> Member:
    """``.wh.<name>``: the layer deletes ``path`` from the layers below."""
    return Member("whiteout", path)


def opaque(path: str) -> Member:
    """``<dir>/.wh..wh..opq``: the layer's ``path`` hides everything below it in lower layers."""
    return Member("opaque", path)


def layer_tar(members: Iterable[Member]) -> bytes:
    """A layer changeset as Docker stores it: an uncompressed tar, paths relative to ``/``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            rel = m.path.lstrip("/")
            if m.kind == "whiteout":
                head, name = posixpath.split(rel)
                rel = posixpath.join(head, fs.WHITEOUT_PREFIX + name)
            elif m.kind == "opaque":
                rel = posixpath.join(rel, fs.OPAQUE_WHITEOUT)
            info = tarfile.TarInfo(rel)
            info.mtime = 1_700_000_000
            info.mode = m.mode
            if m.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif m.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = m.target
                tar.addfile(info)
            else:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
    return buf.getvalue()


def tar_entries(log: EventLog, raw: bytes) -> list[tuple[str, Entry]]:
    """The (path, Entry) table of a layer tar; file contents go to the log's blob store."""
    out: list[tuple[str, Entry]] = []
    opaque_dirs: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for info in tar.getmembers():
            path = fs.normalize("/" + info.name)
            head, name = posixpath.split(path)
            mtime = info.mtime * 1_000_000_000
            if name == fs.OPAQUE_WHITEOUT:
                opaque_dirs.add(head)
            elif name.startswith(fs.WHITEOUT_PREFIX):
                hidden = posixpath.join(head, name[len(fs.WHITEOUT_PREFIX) :])
                out.append((hidden, Entry(WHITEOUT)))
            elif info.isdir():
                out.append((path, fs.dir_entry(mode=info.mode)))
            elif info.issym():
                out.append((path, Entry(SYMLINK, info.mode, 0, (), 0, mtime, target=info.linkname)))
            else:
                extracted = tar.extractfile(info)
                assert extracted is not None
                data = extracted.read()
                chunks = tuple(log.write(lambda tx, data=data: tx.put_blob(data)))
                out.append((path, Entry(FILE, info.mode, len(data), chunks, 0, mtime)))
    if opaque_dirs:
        out = [
            (p, e._replace(opaque=True) if p in opaque_dirs and e.kind == DIR else e)
            for p, e in out
        ]
        listed = {p for p, _ in out}
        out += [(p, fs.dir_entry(opaque=True)) for p in sorted(opaque_dirs - listed)]
    return out


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ImageSpec:
    """An image to register: its layers (as member lists, base first), tags and VOLUMEs."""

    layers: Sequence[Sequence[Member]]
    tags: Sequence[str] = ()
    volumes: Sequence[str] = ()
    cmd: Sequence[str] = ("/bin/sh",)
    labels: dict[str, str] = field(default_factory=dict)


def image_config(diff_ids: Sequence[str], spec: ImageSpec) -> bytes:
    """A realistic image config JSON: rootfs.diff_ids and config.Volumes."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": list(spec.cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": spec.labels or None,
            "Volumes": {v: {} for v in spec.volumes} or None,
        },
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def register_image(docker: DockerHost, spec: ImageSpec) -> str:
    """Build each layer as a real tar, register the image with the host, return its id."""
    layers = []
    diff_ids = []
    for members in spec.layers:
        raw = layer_tar(members)
        diff_id = sha256(raw)
        diff_ids.append(diff_id)
        entries = tar_entries(docker.log, raw)
        layers.append((diff_id, entries, len(raw)))
    config = image_config(diff_ids, spec)
    image_id = sha256(config)
    got, _, _ = docker.register_image(
        config=config,
        image_id=image_id,
        layers=layers,
        tags=list(spec.tags),
        volumes=list(spec.volumes),
        created="2024-01-01T00:00:00Z",
    )
    return got


#: The image most tests run: two layers, the upper one deleting a base file.
APP_IMAGE = ImageSpec(
    layers=[
        [
            d("/bin"),
            f("/bin/busybox", b"\x7fELF busybox", 0o755),
            link("/bin/sh", "busybox"),
            d("/etc"),
            f("/etc/hosts", "127.0.0.1 localhost\n"),
            f("/etc/motd", "welcome\n"),
            d("/var"),
            d("/var/log"),
        ],
        [
            d("/app"),
            f("/app/main.py", "print('hello')\n"),
            d("/app/lib"),
            f("/app/lib/util.py", "X = 1\n"),
            d("/var/lib"),
            d("/var/lib/data"),
            f("/var/lib/data/seed.txt", "seed data\n"),
            d("/srv"),
            f("/srv/index.html", "<h1>image</h1>\n"),
            wh("/etc/motd"),
        ],
    ],
    tags=["app:1"],
)

#: An image declaring a VOLUME over content it ships (like a database image).
DB_IMAGE = ImageSpec(
    layers=[
        [
            d("/etc"),
            f("/etc/hosts", "127.0.0.1 localhost\n"),
            d("/var"),
            d("/var/lib"),
            d("/var/lib/db"),
            f("/var/lib/db/schema.sql", "CREATE TABLE t (x int);\n"),
        ]
    ],
    tags=["db:1"],
    volumes=["/var/lib/db"],
)


# -- the store ------------------------------------------------------------------------

_DBS = (b"events", b"blobs", b"by_subject", b"by_time", b"meta", b"snapshots")


def fingerprint(log: LmdbEventLog) -> dict[str, tuple[int, str]]:
    """Entry count and content hash of every named database of an LMDB store."""
    env = log.raw_env()
    out: dict[str, tuple[int, str]] = {}
    for name in _DBS:
        db = env.open_db(name, create=False)
        h = hashlib.sha256()
        n = 0
        with env.begin(db=db) as txn:
            for key, value in txn.cursor():
                h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(8, "big") + value)
                n += 1
        out[name.decode()] = (n, h.hexdigest())
    return out


def fold(log: EventLog, stop: int | None = None) -> Host:
    """A fresh `Host` folded from the log's events (up to ``stop``)."""
    host = Host(log.read_blobs)
    host.apply_all(log.read(1, stop))
    return host


def types_since(log: EventLog, after: int) -> list[str]:
    """The type tags of the events appended after seq ``after``."""
    return [e.type for e in log.read(after + 1)]


def read_file(docker: DockerHost, ref: str, path: str) -> bytes | None:
    """The content a process in the container reads at ``path`` (None: no such file)."""
    host = docker.state()
    entry = host.lookup(find_container(host, ref), path)
    if entry is None:
        return None
    assert entry.kind == FILE, f"{path} is a {entry.kind}"
    return docker.log.read_blobs(entry.chunks)
