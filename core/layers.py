"""A layer tar's members as a layer table: names, links and whiteouts, as Docker applies them.

`LayerTable` takes a layer's members in tar order (already parsed, contents
already in the blob store) and produces the table `core.fs.apply_layer` stacks:
absolute clean paths, hardlinks as files sharing their source's content, and
whiteouts as ``Entry(kind=WHITEOUT)`` / opaque directories.

Rules (docker-semantics.md section 3; the same-layer cases as observed on a real
engine, Docker 20.10 with overlay2, in tests/fixtures/docker/observed.md):

- Names: a leading ``/`` is dropped and the name cleaned; a name that climbs
  out of the root is refused (Docker 29: ``invalid entry name "../x"``).
- Hardlinks: an absolute target is re-rooted, one that climbs out is refused
  (``invalid hardlink target``); the target must be an earlier member of the
  same layer, as overlay2 extracts each layer into a directory of its own.
- Symlinks: the target is stored verbatim (Docker 29); nothing here follows it.
  A member written *through* a symlink of the same layer (``link/file`` after
  ``link -> /etc``) is re-rooted to where the link points inside the root, as
  the chroot / os.Root extraction does.
- ``.wh.NAME`` hides NAME (and everything below it) in lower layers. If NAME
  was already written by this layer, the load fails as overlay2's mknod does
  (``failed to mknod(...): file exists``); a member NAME *after* its whiteout
  replaces the lower one (a directory becomes opaque: the lower one's children
  stay hidden, as the OCI spec reads).
- ``.wh..wh..opq`` makes its directory opaque whatever its position among the
  directory's members; other ``.wh..wh.*`` markers (AUFS hardlink dirs) are skipped.
- ``.wh.`` with an empty, ``.`` or ``..`` name is refused (``invalid whiteout entry``).
- Device nodes and FIFOs become empty files of the same mode (dockstate has no
  device kind).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from typing import Final, NamedTuple

from dockstate.core import fs
from dockstate.core.errors import InvalidParameterError
from dockstate.core.fs import DIR, FILE, OPAQUE_WHITEOUT, SYMLINK, WHITEOUT, WHITEOUT_PREFIX, Entry

#: Prefix of overlay/AUFS metadata markers (``.wh..wh..opq``, ``.wh..wh..plnk``).
WHITEOUT_META_PREFIX: Final = ".wh..wh."

#: Member kinds given to `LayerTable.add` (besides fs.FILE, fs.DIR and fs.SYMLINK).
HARDLINK: Final = "h"
OTHER: Final = "o"

#: Linux's limit on symlinks followed while resolving one path.
_MAX_LINKS: Final = 40


class InvalidLayerError(InvalidParameterError):
    """A layer tar that Docker would refuse to apply; says which member and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Error processing tar file(exit status 1): {reason}")


def quote(text: str) -> str:
    """Go's ``%q`` for the names Docker's messages show (close enough: JSON string syntax)."""
    return json.dumps(text, ensure_ascii=False)


class Member(NamedTuple):
    """One tar member, with its content already stored (``chunks``)."""

    name: str
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    chunks: tuple[bytes, ...] = ()
    linkname: str = ""


def clean_name(name: str) -> str:
    """The absolute path a member name stands for inside the root.

    Raises:
        InvalidLayerError: the name climbs out of the root.
    """
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise InvalidLayerError(f"invalid entry name {quote(name)}")
    return "/" if rel == "." else "/" + rel


class LayerTable:
    """Collects a layer's members in tar order; `finish` gives the table to store."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        #: directories holding a member of this layer (created implicitly if not listed).
        self._implied: set[str] = set()
        self._whited: set[str] = set()
        self._opaque: list[str] = []
        self._links: dict[str, str] = {}
        self._hardlinks: set[str] = set()

    def add(self, member: Member) -> None:
        """Add one member (in tar order).

        Raises:
            InvalidLayerError: the member is refused (see the module's rules).
        """
        path = clean_name(member.name)
        if path == "/":
            return  # the root's own entry: "/" is implicit in a tree
        if path.startswith("/" + WHITEOUT_META_PREFIX) and path != "/" + OPAQUE_WHITEOUT:
            return  # AUFS metadata (the .wh..wh..plnk hardlink store), as moby skips it
        path = self._resolve_parent(path)
        parent, base = posixpath.split(path)
        if base == OPAQUE_WHITEOUT:
            self._opaque.append(parent)
            self._imply(path)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parent, base[len(WHITEOUT_PREFIX) :])
            return
        entry = self._entry(member, path)
        old = self._entries.get(path)
        if old is not None and old.kind == DIR and entry.kind != DIR:
            self._drop_below(path)
        if entry.kind == DIR and (path in self._whited or (old is not None and old.opaque)):
            entry = entry._replace(opaque=True)
        self._entries[path] = entry
        if entry.kind == SYMLINK:
            self._links[path] = entry.target
        else:
            self._links.pop(path, None)
        if member.kind == HARDLINK:
            self._hardlinks.add(path)
        else:
            self._hardlinks.discard(path)
        self._imply(path)

    def finish(self) -> tuple[list[tuple[str, Entry]], int]:
        """The layer's table in tar order, and its size (regular-file bytes, hardlinks once)."""
        for d in self._opaque:
            if d == "/":
                self._entries = {"/": fs.dir_entry(opaque=True), **self._entries}
                continue
            cur = self._entries.get(d)
            if cur is None:
                self._entries[d] = fs.dir_entry(opaque=True)
            elif cur.kind == DIR:
                self._entries[d] = cur._replace(opaque=True)
        size = sum(
            e.size for p, e in self._entries.items() if e.kind == FILE and p not in self._hardlinks
        )
        return list(self._entries.items()), size

    # -- helpers -----------------------------------------------------------------

    def _entry(self, m: Member, path: str) -> Entry:
        mode = m.mode & 0o7777
        mtime = m.mtime
        if m.kind == FILE:
            return Entry(FILE, mode, m.size, tuple(m.chunks), 0, mtime, m.uid, m.gid)
        if m.kind == DIR:
            return Entry(DIR, mode, 0, (), 0, mtime, m.uid, m.gid)
        if m.kind == SYMLINK:
            return Entry(SYMLINK, mode, 0, (), 0, mtime, m.uid, m.gid, m.linkname)
        if m.kind == HARDLINK:
            rel = posixpath.normpath(m.linkname.lstrip("/")) if m.linkname.strip("/") else "."
            if rel in (".", "..") or rel.startswith("../"):
                raise InvalidLayerError(f"invalid hardlink target {quote(m.linkname)}")
            source = self._resolve_parent("/" + rel)
            src = self._entries.get(source)
            if src is None or src.kind not in (FILE, SYMLINK):
                raise InvalidLayerError(f"link {source} {path}: no such file or directory")
            # One inode: the link is the source file under a second name.
            return src._replace(target=source if src.kind == FILE else src.target)
        return Entry(FILE, mode, 0, (), 0, mtime, m.uid, m.gid)

    def _whiteout(self, m: Member, parent: str, name: str) -> None:
        if name in ("", ".", ".."):
            raise InvalidLayerError(f"invalid whiteout entry {quote(m.name)}")
        target = posixpath.join(parent, name)
        if target in self._entries or target in self._implied:
            # overlay2 turns the whiteout into a 0/0 char device with mknod.
            raise InvalidLayerError(f"failed to mknod({quote(target)}, S_IFCHR, 0): file exists")
        self._entries[target] = Entry(WHITEOUT, 0, 0, (), 0, m.mtime)
        self._whited.add(target)
        self._imply(target)

    def _imply(self, path: str) -> None:
        implied = self._implied
        for anc in fs.ancestors(path):
            if anc in implied:
                break
            implied.add(anc)

    def _drop_below(self, top: str) -> None:
        for key in fs.subtree_keys(self._entries, top):
            del self._entries[key]
            self._links.pop(key, None)
            self._hardlinks.discard(key)

    def _resolve_parent(self, path: str) -> str:
        """``path`` with symlinks of this layer among its parents followed inside the root."""
        if not self._links:
            return path
        for _ in range(_MAX_LINKS):
            parts = path[1:].split("/")
            cur = ""
            for i, part in enumerate(parts[:-1]):
                cur = f"{cur}/{part}"
                link = self._links.get(cur)
                if link is not None:
                    base = "/" if link.startswith("/") else posixpath.dirname(cur)
                    rest = "/".join(parts[i + 1 :])
                    path = fs.normalize(posixpath.join(base, link, rest))
                    break
            else:
                return path
        raise InvalidLayerError(f"{quote(path)}: too many levels of symbolic links")


def table_of(members: Sequence[Member]) -> tuple[list[tuple[str, Entry]], int]:
    """`LayerTable` over a list of members (for tests and small layers)."""
    table = LayerTable()
    for m in members:
        table.add(m)
    return table.finish()


__all__ = [
    "HARDLINK",
    "OTHER",
    "WHITEOUT_META_PREFIX",
    "InvalidLayerError",
    "LayerTable",
    "Member",
    "clean_name",
    "quote",
    "table_of",
]
