"""Files as the storage model sees them: entries, trees, layers and whiteouts.

A *tree* is a flat ``dict`` from an absolute, normalised path to an `Entry`;
``/`` is implicit. An image layer's table, a container's writable layer, a
volume's ``_data``, a tmpfs and the simulated host are all trees. A writable
layer may hold whiteouts (``kind == WHITEOUT``) and opaque directories
(``opaque=True``), as overlay2's upper dir does; the other trees never do.
"""

from __future__ import annotations

import bisect
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from typing import Final, NamedTuple

FILE: Final = "f"
DIR: Final = "d"
SYMLINK: Final = "l"
WHITEOUT: Final = "w"

#: overlay/OCI names of the markers in a layer tar.
WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_WHITEOUT: Final = ".wh..wh..opq"

Tree = dict[str, "Entry"]


class Entry(NamedTuple):
    """One path in a tree.

    Attributes:
        kind: FILE, DIR, SYMLINK or WHITEOUT.
        mode: permission bits.
        size: content length in bytes (0 for dirs and whiteouts).
        chunks: blob digests of the content, in order.
        seq: the event that last set this entry (0 for image content).
        mtime: modification time, ns since the epoch.
        uid, gid: owner.
        target: a symlink's target (or a hardlink's source in an image layer).
        opaque: a directory that hides everything below it in lower layers.
    """

    kind: str
    mode: int = 0o644
    size: int = 0
    chunks: tuple[bytes, ...] = ()
    seq: int = 0
    mtime: int = 0
    uid: int = 0
    gid: int = 0
    target: str = ""
    opaque: bool = False


def dir_entry(seq: int = 0, mtime: int = 0, mode: int = 0o755, opaque: bool = False) -> Entry:
    return Entry(DIR, mode, 0, (), seq, mtime, 0, 0, "", opaque)


def whiteout(seq: int, mtime: int) -> Entry:
    return Entry(WHITEOUT, 0, 0, (), seq, mtime)


class PathError(ValueError):
    """A path that cannot name anything inside a container."""


def normalize(path: str) -> str:
    """The canonical absolute form of ``path`` (``..`` cannot climb above ``/``).

    Raises:
        PathError: the path is empty or relative.
    """
    if not path or not path.startswith("/"):
        raise PathError(f"invalid path {path!r}: must be absolute")
    norm = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it to mean something else).
    return "/" + norm.lstrip("/")


def parent(path: str) -> str:
    return posixpath.dirname(path)


def ancestors(path: str) -> Iterator[str]:
    """Parents of ``path`` from nearest to farthest, excluding ``/``."""
    p = posixpath.dirname(path)
    while p != "/":
        yield p
        p = posixpath.dirname(p)


#: `ancestry` answers, by path. Bounded: emptied when it holds this many.
_ANCESTRY: dict[str, tuple[str, ...]] = {}
_ANCESTRY_MAX: Final = 1 << 16


def ancestry(path: str) -> tuple[str, ...]:
    """`ancestors` of a normalised path as a tuple, remembered.

    A fold asks for the ancestors of the same few thousand paths over and over
    (every first write into a writable layer walks them). A remembered tuple
    spares slicing and hashing new strings, and ``str.rfind`` with bounds,
    whose argument parsing is slow, each time. `ancestry_of` is its lookup.
    """
    found = _ANCESTRY.get(path)
    if found is None:
        out = []
        i = path.rfind("/")
        while i > 0:
            out.append(path[:i])
            i = path.rfind("/", 0, i)
        if len(_ANCESTRY) >= _ANCESTRY_MAX:
            _ANCESTRY.clear()
        found = _ANCESTRY[path] = tuple(out)
    return found


#: The remembered `ancestry` of a path, or None: a C call, for the fold's hottest paths.
ancestry_of = _ANCESTRY.get


def forget_ancestry() -> None:
    """Empty `ancestry`'s memory, as in a new process (benchmarks of one query use it)."""
    _ANCESTRY.clear()


def is_below(path: str, top: str) -> bool:
    """``path`` is ``top`` or inside it."""
    return top in (path, "/") or path.startswith(top + "/")


def relative(path: str, top: str) -> str:
    """``path`` as seen from inside ``top`` (``/`` for ``top`` itself)."""
    if top == "/":
        return path
    rest = path[len(top) :]
    return rest or "/"


def join(top: str, rel: str) -> str:
    return top if rel == "/" else (rel if top == "/" else top + rel)


def subtree_keys(tree: Mapping[str, Entry], top: str) -> list[str]:
    """Paths strictly below ``top`` in ``tree``."""
    if top == "/":
        return [p for p in tree if p != "/"]
    prefix = top + "/"
    return [p for p in tree if p.startswith(prefix)]


def children(tree: Mapping[str, Entry], top: str) -> set[str]:
    """Names directly inside ``top`` (from entries at any depth below it)."""
    prefix = "/" if top == "/" else top + "/"
    n = len(prefix)
    out = set()
    for p in tree:
        if p.startswith(prefix) and p != "/":
            out.add(p[n:].split("/", 1)[0])
    return out


def tree_size(tree: Mapping[str, Entry]) -> int:
    return sum(e.size for e in tree.values() if e.kind == FILE)


class SortedPaths:
    """The keys of a large immutable tree kept sorted, for subtree and child queries."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.keys = sorted(paths)

    def below(self, top: str) -> list[str]:
        prefix = "/" if top == "/" else top + "/"
        lo = bisect.bisect_left(self.keys, prefix)
        # "0" sorts right after "/" so prefix[:-1] + "0" bounds every key under prefix.
        hi = bisect.bisect_left(self.keys, prefix[:-1] + "0")
        return self.keys[lo:hi]


def apply_layer(lower: Tree, layer: Iterable[tuple[str, Entry]]) -> Tree:
    """Stack one layer's entries on a flattened lower tree, as Docker does.

    Whiteouts and opaque markers hide only what the *lower* layers hold; they
    are applied before the layer's own entries, whatever their order in the tar
    (the OCI spec: the opaque marker applies "regardless of the ordering").
    A whiteout never appears in the result.
    """
    items = list(layer)
    out = dict(lower)
    index: SortedPaths | None = None
    for path, entry in items:
        hides_self = entry.kind == WHITEOUT
        if not (hides_self or entry.opaque):
            continue
        if index is None:
            index = SortedPaths(lower)
        for below in index.below(path):
            out.pop(below, None)
        if hides_self:
            out.pop(path, None)
    for path, entry in items:
        if entry.kind == WHITEOUT:
            continue
        placed = entry._replace(opaque=False) if entry.opaque else entry
        old = out.get(path)
        if old is not None and old.kind == DIR and placed.kind != DIR:
            for below in subtree_keys(out, path):
                del out[below]
        out[path] = placed
        parent = path[: path.rfind("/")]
        if parent and parent not in out:  # nearly always there: a tar lists dirs first
            for anc in ancestors(path):
                if anc in out:
                    break
                out[anc] = dir_entry()
    return out
