"""Read models computed from a `Host`: what a process in a container sees,
``docker diff``, ``docker system df``, and listings of volumes and host paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Final

from dockstate.core import fs
from dockstate.core.errors import FileSystemError
from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT, Entry, Tree
from dockstate.core.mounts import BIND, VOLUME
from dockstate.core.state import BlobReader, Container, Host, Volume, rw_lookup


@dataclasses.dataclass(frozen=True, slots=True)
class DirItem:
    """One name in a directory listing."""

    name: str
    path: str
    entry: Entry
    #: where it lives: "image", "rw", "volume:<name>", "bind:<host path>", "tmpfs".
    layer: str


# -- the merged view -----------------------------------------------------------------


def merged_lookup(host: Host, c: Container, path: str) -> Entry | None:
    return host.lookup(c, fs.normalize(path))


def where(host: Host, c: Container, path: str) -> str:
    """Which layer or mount serves ``path`` in the container."""
    m = c.mount_for(path)
    if m is not None:
        if m.type == VOLUME:
            return f"volume:{m.source}"
        if m.type == BIND:
            return f"bind:{m.source}"
        return "tmpfs"
    return "rw" if path in c.rw else "image"


def merged_ls(host: Host, c: Container, path: str) -> list[DirItem]:
    """The directory ``path`` as a process in ``c`` lists it.

    Raises:
        FileSystemError: the path does not exist or is not a directory.
    """
    p = fs.normalize(path)
    entry = host.lookup(c, p)
    if entry is None:
        raise FileSystemError("ls", p, "No such file or directory")
    if entry.kind != DIR:
        return [DirItem(p.rsplit("/", 1)[-1], p, entry, where(host, c, p))]
    names: set[str] = set()
    m = c.mount_for(p)
    if m is not None:
        tree, key = host.mount_tree(c, m, p)
        names |= fs.children(tree, key)
    else:
        names |= fs.children(c.rw, p)
        names |= fs.children(host.lower(c), p)
    # mount points below p are visible (with their parents) even if nothing else made them
    for mount in c.mounts:
        if mount.target != p and fs.is_below(mount.target, p):
            names.add(fs.relative(mount.target, p).split("/", 2)[1])
    out = []
    for name in sorted(names):
        child = fs.join(p, "/" + name)
        e = host.lookup(c, child)
        if e is not None:
            out.append(DirItem(name, child, e, where(host, c, child)))
    return out


def read_file(host: Host, c: Container, path: str, read_blobs: BlobReader) -> bytes:
    """The content of a file in the container (symlinks followed, up to 40 hops)."""
    p = fs.normalize(path)
    for _ in range(40):
        e = host.lookup(c, p)
        if e is None:
            raise FileSystemError("cat", p, "No such file or directory")
        if e.kind == DIR:
            raise FileSystemError("cat", p, "Is a directory")
        if e.kind != SYMLINK:
            return read_blobs(e.chunks)
        p = fs.normalize(e.target if e.target.startswith("/") else fs.parent(p) + "/" + e.target)
    raise FileSystemError("cat", path, "Too many levels of symbolic links")


def content_digest(entry: Entry, read_blobs: BlobReader) -> str:
    """``sha256:<hex>`` of a file's whole content (one chunk: its digest is the answer)."""
    if len(entry.chunks) == 1:
        return "sha256:" + entry.chunks[0].hex()
    if not entry.chunks:
        return "sha256:" + hashlib.sha256(b"").hexdigest()
    h = hashlib.sha256()
    for chunk in entry.chunks:
        h.update(read_blobs([chunk]))
    return "sha256:" + h.hexdigest()


# -- docker diff ------------------------------------------------------------------------

ADDED: Final = "A"
CHANGED: Final = "C"
DELETED: Final = "D"


def container_diff(host: Host, c: Container) -> list[tuple[str, str]]:
    """``docker diff``: (kind, path) for every change in the writable layer.

    As Docker's tree comparison of the image and the container's root
    filesystem finds it (go-archive ``ChangesDirs``): a path the image lacks is
    ``A`` (so is everything below an added dir); one the image has is ``C``
    when kind, mode, owner, size, content or mtime differ (for a directory
    only kind, mode and owner count); a deleted path is a single ``D`` for the
    topmost path gone, including what a re-created (opaque) directory hides;
    and every directory holding a change is listed as ``C``. Docker's order
    among siblings is map order; this one is sorted, parents first.
    """
    lower = host.lower(c)
    rw = c.rw
    changes: dict[str, str] = {}
    index: fs.SortedPaths | None = None
    for path, e in rw.items():
        old = lower.get(path)
        if e.kind == WHITEOUT:
            # written only over a visible lower path, and dropped with its parent
            changes[path] = DELETED
            continue
        if old is None:
            changes[path] = ADDED
        elif _differs(e, old):
            changes[path] = CHANGED
        if e.opaque:
            # a dir re-created over a deleted one hides the image's files below it:
            # each one gone is a D unless its parent is gone too (then that is the D)
            if index is None:
                index = fs.SortedPaths(lower)
            for hidden in index.below(path):
                if hidden in rw:
                    continue
                up = fs.parent(hidden)
                above = rw.get(up)
                if up == path or (above is not None and above.kind == DIR):
                    changes[hidden] = DELETED
    for path in list(changes):
        for anc in fs.ancestors(path):
            if anc in changes:
                break
            changes[anc] = CHANGED
    return sorted(((k, p) for p, k in changes.items()), key=lambda kp: kp[1])


def _differs(new: Entry, old: Entry) -> bool:
    if (new.kind, new.mode, new.uid, new.gid) != (old.kind, old.mode, old.uid, old.gid):
        return True
    if new.kind == DIR:
        return False  # Docker ignores a directory's size and mtime
    return (new.size, new.mtime, new.chunks, new.target) != (
        old.size,
        old.mtime,
        old.chunks,
        old.target,
    )


# -- sizes ----------------------------------------------------------------------------


def rw_size(c: Container) -> int:
    """``SizeRw``: bytes in the writable layer."""
    return fs.tree_size(c.rw)


def volume_size(vol: Volume) -> int:
    return fs.tree_size(vol.files)


def image_size(host: Host, image_id: str) -> int:
    image = host.images[image_id]
    return sum(host.layers[ch].size for ch in image.chain_ids if ch in host.layers)


@dataclasses.dataclass(frozen=True, slots=True)
class ImageUsage:
    image_id: str
    tags: tuple[str, ...]
    created: str
    size: int
    shared_size: int
    unique_size: int
    containers: int


@dataclasses.dataclass(frozen=True, slots=True)
class DiskUsage:
    """``docker system df`` (Docker <= 28 reclaimable formulas)."""

    images: list[ImageUsage]
    images_active: int
    images_size: int
    images_reclaimable: int
    containers: list[tuple[Container, int]]
    containers_active: int
    containers_size: int
    containers_reclaimable: int
    volumes: list[tuple[Volume, int]]
    volumes_active: int
    volumes_size: int
    volumes_reclaimable: int


def disk_usage(host: Host) -> DiskUsage:
    users: dict[str, int] = {}
    for c in host.containers.values():
        users[c.image_id] = users.get(c.image_id, 0) + 1
    layer_images: dict[str, int] = {}
    for image in host.images.values():
        for ch in image.chain_ids:
            layer_images[ch] = layer_images.get(ch, 0) + 1
    images = []
    for image in host.images.values():
        size = shared = 0
        for ch in image.chain_ids:
            layer = host.layers.get(ch)
            if layer is None:
                continue
            size += layer.size
            if layer_images.get(ch, 0) > 1:
                shared += layer.size
        images.append(
            ImageUsage(
                image.id,
                tuple(image.tags),
                image.created,
                size,
                shared,
                size - shared,
                users.get(image.id, 0),
            )
        )
    distinct = {ch for image in host.images.values() for ch in image.chain_ids}
    images_size = sum(host.layers[ch].size for ch in distinct if ch in host.layers)
    used_unique = sum(i.unique_size for i in images if i.containers)
    containers = [(c, rw_size(c)) for c in host.containers.values()]
    active = [c for c, _ in containers if c.running]
    volumes = [(v, volume_size(v)) for v in host.volumes.values()]
    return DiskUsage(
        images=images,
        images_active=sum(1 for i in images if i.containers),
        images_size=images_size,
        images_reclaimable=images_size - used_unique
        if any(i.containers for i in images)
        else images_size,
        containers=containers,
        containers_active=len(active),
        containers_size=sum(s for _, s in containers),
        containers_reclaimable=sum(s for c, s in containers if not c.running),
        volumes=volumes,
        volumes_active=sum(1 for v, _ in volumes if v.refs),
        volumes_size=sum(s for _, s in volumes),
        volumes_reclaimable=sum(s for v, s in volumes if not v.refs),
    )


# -- volumes and host paths -------------------------------------------------------------


def tree_ls(tree: Tree, path: str, *, what: str) -> list[tuple[str, Entry]]:
    """List a directory of a flat tree (a volume's ``_data`` or the host)."""
    p = fs.normalize(path)
    if p != "/":
        e = tree.get(p)
        if e is None:
            raise FileSystemError("ls", f"{what}{p}", "No such file or directory")
        if e.kind != DIR:
            return [(p.rsplit("/", 1)[-1], e)]
    out = []
    for name in sorted(fs.children(tree, p)):
        child = fs.join(p, "/" + name)
        out.append((name, tree.get(child) or fs.dir_entry()))
    return out


def tree_read(tree: Tree, path: str, read_blobs: BlobReader, *, what: str) -> bytes:
    p = fs.normalize(path)
    e = tree.get(p)
    if e is None:
        raise FileSystemError("cat", f"{what}{p}", "No such file or directory")
    if e.kind != FILE:
        raise FileSystemError(
            "cat", f"{what}{p}", "Is a directory" if e.kind == DIR else "Not a regular file"
        )
    return read_blobs(e.chunks)


def walk(tree: Tree) -> list[tuple[str, Entry]]:
    """Every path of a tree, sorted."""
    return sorted(tree.items())


__all__: Sequence[str] = [
    "DirItem",
    "DiskUsage",
    "ImageUsage",
    "container_diff",
    "content_digest",
    "disk_usage",
    "merged_lookup",
    "merged_ls",
    "read_file",
    "rw_lookup",
    "rw_size",
    "tree_ls",
    "tree_read",
    "volume_size",
    "where",
]
