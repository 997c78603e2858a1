"""The filesystem a build works on: a flattened tree, new contents, and each step's diff.

The tree starts as the base image's flattened layers. COPY, ADD, WORKDIR and
RUN's file commands change it; `BuildFS.diff` against the tree before a step
gives that step's layer (changed paths with their parent directories, and a
whiteout for each deleted path), which `write_layer` writes as a deterministic
tar: sorted members, fixed owners from the entries, the build's fixed mtime.

New contents stay outside the store until the layer is read into it: bytes
made by RUN are kept in memory, files from the build context are read again
from the context when the layer tar is written.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, Final

from dockstate.core import fs
from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT_PREFIX, Entry
from dockstate.eventlog import blobs
from dockstate.tools.tarstream import TarWriter

_ROOT: Final = Entry(DIR, 0o755)


class FsError(Exception):
    """A file operation that fails as the command would (``mkdir: ... File exists``)."""


class BuildFS:
    """A build stage's root filesystem."""

    def __init__(
        self, tree: dict[str, Entry], read_blob: Callable[[bytes], bytes], mtime: int
    ) -> None:
        self.tree = tree
        self._read_blob = read_blob
        #: the mtime (ns) of everything the build creates or changes.
        self.mtime = mtime
        self._local: dict[bytes, bytes | tuple[str, int, int]] = {}

    # -- contents ---------------------------------------------------------------

    def store_bytes(self, data: bytes) -> tuple[bytes, ...]:
        out = []
        for digest, chunk in blobs.split(data):
            self._local.setdefault(digest, chunk)
            out.append(digest)
        return tuple(out)

    def store_file(self, path: str) -> tuple[tuple[bytes, ...], int]:
        """A context file's chunks (read again from ``path`` when the layer is written)."""
        out, offset = [], 0
        with open(path, "rb") as f:
            while chunk := f.read(blobs.CHUNK_SIZE):
                digest = blobs.split(chunk).__next__()[0]
                self._local.setdefault(digest, (path, offset, len(chunk)))
                out.append(digest)
                offset += len(chunk)
        return tuple(out), offset

    def read(self, chunks: tuple[bytes, ...]) -> Iterator[bytes]:
        for digest in chunks:
            local = self._local.get(digest)
            if local is None:
                yield self._read_blob(digest)
            elif isinstance(local, bytes):
                yield local
            else:
                path, offset, size = local
                with open(path, "rb") as f:
                    f.seek(offset)
                    yield f.read(size)

    def read_all(self, entry: Entry) -> bytes:
        return b"".join(self.read(entry.chunks))

    def adopt(self, other: BuildFS) -> None:
        """Contents another stage made become readable here (COPY --from)."""
        for digest, local in other._local.items():
            self._local.setdefault(digest, local)

    # -- lookups ------------------------------------------------------------------

    def get(self, path: str) -> Entry | None:
        return _ROOT if path == "/" else self.tree.get(path)

    def is_dir(self, path: str) -> bool:
        e = self.get(path)
        return e is not None and e.kind == DIR

    def below(self, top: str) -> list[str]:
        return sorted(fs.subtree_keys(self.tree, top))

    # -- changes --------------------------------------------------------------------

    def _parent_ok(self, cmd: str, path: str) -> None:
        parent = fs.parent(path)
        e = self.get(parent)
        if e is None:
            raise FsError(f"{cmd}: cannot create '{path}': No such file or directory")
        if e.kind != DIR:
            raise FsError(f"{cmd}: cannot create '{path}': Not a directory")

    def put(self, cmd: str, path: str, entry: Entry) -> None:
        self._parent_ok(cmd, path)
        old = self.tree.get(path)
        if old is not None and old.kind == DIR and entry.kind != DIR:
            self.remove(path, recursive=True)
        self.tree[path] = entry

    def mkdirs(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """``mkdir -p``: missing directories are made; existing ones are left as they are."""
        missing = []
        p = path
        while p != "/" and p not in self.tree:
            missing.append(p)
            p = fs.parent(p)
        if not self.is_dir(p):
            raise FsError(f"mkdir: cannot create directory '{path}': Not a directory")
        for d in reversed(missing):
            self.tree[d] = Entry(DIR, mode, 0, (), 0, self.mtime, uid, gid)
        if path != "/" and not self.is_dir(path):
            raise FsError(f"mkdir: cannot create directory '{path}': File exists")

    def mkdir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        if self.get(path) is not None:
            raise FsError(f"mkdir: cannot create directory '{path}': File exists")
        self._parent_ok("mkdir", path)
        self.tree[path] = Entry(DIR, mode, 0, (), 0, self.mtime, uid, gid)

    def write(
        self,
        path: str,
        data: bytes,
        *,
        append: bool = False,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
    ) -> None:
        old = self.get(path)
        if old is not None and old.kind == DIR:
            raise FsError(f"sh: can't create {path}: Is a directory")
        if old is not None and old.kind == FILE:
            content = (self.read_all(old) if append else b"") + data
            self.tree[path] = old._replace(
                size=len(content), chunks=self.store_bytes(content), mtime=self.mtime, target=""
            )
            return
        self._parent_ok("sh", path)
        self.tree[path] = Entry(
            FILE, mode, len(data), self.store_bytes(data), 0, self.mtime, uid, gid
        )

    def remove(self, path: str, *, recursive: bool = False, force: bool = False) -> None:
        e = self.get(path)
        if e is None:
            if force:
                return
            raise FsError(f"rm: cannot remove '{path}': No such file or directory")
        if path == "/":
            raise FsError("rm: refusing to remove '/'")
        if e.kind == DIR and not recursive:
            raise FsError(f"rm: cannot remove '{path}': Is a directory")
        for key in fs.subtree_keys(self.tree, path):
            del self.tree[key]
        del self.tree[path]

    def copy(self, src: str, dst: str, *, recursive: bool = False, stamp: bool = True) -> None:
        """``cp``: a file, or with ``recursive`` a directory tree, to ``dst``."""
        e = self.get(src)
        if e is None:
            raise FsError(f"cp: cannot stat '{src}': No such file or directory")
        if self.is_dir(dst):
            dst = posixpath.join(dst, posixpath.basename(src))
        if e.kind == DIR:
            if not recursive:
                raise FsError(f"cp: -r not specified; omitting directory '{src}'")
            if fs.is_below(dst, src):
                raise FsError(f"cp: cannot copy a directory, '{src}', into itself, '{dst}'")
            self.mkdirs(dst, mode=e.mode, uid=e.uid, gid=e.gid)
            for key in self.below(src):
                entry = self.tree[key]
                self.tree[dst + key[len(src) :]] = (
                    entry._replace(mtime=self.mtime) if stamp else entry
                )
            return
        self.put(
            "cp",
            dst,
            e._replace(mtime=self.mtime, target=e.target if e.kind == SYMLINK else "")
            if stamp
            else e,
        )

    def move(self, src: str, dst: str) -> None:
        e = self.get(src)
        if e is None:
            raise FsError(f"mv: cannot stat '{src}': No such file or directory")
        if self.is_dir(dst):
            dst = posixpath.join(dst, posixpath.basename(src))
        if fs.is_below(dst, src):
            raise FsError(f"mv: cannot move '{src}' to a subdirectory of itself, '{dst}'")
        self._parent_ok("mv", dst)
        moved = {dst + key[len(src) :]: self.tree[key] for key in self.below(src)}
        self.remove(src, recursive=True)
        if dst in self.tree:
            self.remove(dst, recursive=True)
        self.tree[dst] = e
        self.tree.update(moved)

    def chmod(self, path: str, mode: Callable[[Entry], int], *, recursive: bool = False) -> None:
        e = self.get(path)
        if e is None or path == "/":
            raise FsError(f"chmod: cannot access '{path}': No such file or directory")
        targets = [path, *(self.below(path) if recursive else [])]
        for p in targets:
            cur = self.tree[p]
            if cur.kind != SYMLINK:
                self.tree[p] = cur._replace(mode=mode(cur) & 0o7777)

    # -- diffs ------------------------------------------------------------------------

    def diff(self, before: dict[str, Entry]) -> tuple[list[str], list[str]]:
        """Paths changed since ``before`` and the topmost paths deleted since then."""
        changed = [p for p, e in self.tree.items() if before.get(p) != e]
        gone = [p for p in before if p not in self.tree]
        gone_set = set(gone)
        deleted = [p for p in gone if not any(a in gone_set for a in fs.ancestors(p))]
        return changed, deleted


def write_layer(bfs: BuildFS, before: dict[str, Entry], out: IO[bytes]) -> int:
    """The tar of what changed since ``before``; returns the number of members."""
    changed, deleted = bfs.diff(before)
    members: dict[str, str] = {}  # tar name -> tree path ("" for a whiteout)
    for p in changed:
        members[p] = p
        for anc in fs.ancestors(p):
            members.setdefault(anc, anc)
    for p in deleted:
        parent, base = posixpath.split(p)
        members[posixpath.join(parent, WHITEOUT_PREFIX + base)] = ""
        for anc in [parent, *fs.ancestors(parent)] if parent != "/" else []:
            members.setdefault(anc, anc)
    tar = TarWriter(out)
    for name in sorted(members):
        path = members[name]
        rel = name[1:]
        if not path:
            tar.add(rel, tarfile.REGTYPE, mode=0o600, mtime=bfs.mtime // 1_000_000_000)
            continue
        e = bfs.tree[path]
        mtime = e.mtime // 1_000_000_000
        if e.kind == DIR:
            tar.add(rel + "/", tarfile.DIRTYPE, mode=e.mode, mtime=mtime, uid=e.uid, gid=e.gid)
        elif e.kind == SYMLINK:
            tar.add(
                rel,
                tarfile.SYMTYPE,
                mode=0o777,
                mtime=mtime,
                uid=e.uid,
                gid=e.gid,
                linkname=e.target,
            )
        else:
            tar.add(
                rel,
                tarfile.REGTYPE,
                mode=e.mode,
                size=e.size,
                mtime=mtime,
                uid=e.uid,
                gid=e.gid,
                content=bfs.read(e.chunks),
            )
    tar.close()
    return len(members)


__all__ = ["BuildFS", "FsError", "write_layer"]
