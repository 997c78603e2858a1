"""What differs between two states of a host: containers, files, volumes, host paths.

Used to tell what changed between two moments (``Timeline.diff``) and where a
replay diverged from its recording.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from dockstate.core.fs import DIR, WHITEOUT, Entry, Tree
from dockstate.core.state import Container, Host


@dataclasses.dataclass(frozen=True, slots=True)
class FileChange:
    """A path that is added (``A``), changed (``C``) or removed (``D``) in ``where``."""

    kind: str
    where: str
    path: str
    size_before: int | None
    size_after: int | None

    def describe(self) -> str:
        sizes = {
            "A": f"{self.size_after}B",
            # None: a whited-out directory, or an image file whose size is not known here
            "D": "" if self.size_before is None else f"was {self.size_before}B",
            "C": f"{self.size_before}B -> {self.size_after}B",
        }[self.kind]
        verb = {"A": "added", "C": "changed", "D": "removed"}[self.kind]
        return f"{self.where}: {self.path} {verb}" + (f" ({sizes})" if sizes else "")


@dataclasses.dataclass(frozen=True, slots=True)
class StateChange:
    """A container that was created, removed or changed state."""

    container: str
    name: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.before is None:
            return f"container {self.name} ({self.container[:12]}) created, {self.after}"
        if self.after is None:
            return f"container {self.name} ({self.container[:12]}) removed (was {self.before})"
        return f"container {self.name} ({self.container[:12]}) {self.before} -> {self.after}"


@dataclasses.dataclass(slots=True)
class HostDiff:
    containers: list[StateChange] = dataclasses.field(default_factory=list)
    files: list[FileChange] = dataclasses.field(default_factory=list)
    volumes_created: list[str] = dataclasses.field(default_factory=list)
    volumes_removed: list[str] = dataclasses.field(default_factory=list)
    images_added: list[str] = dataclasses.field(default_factory=list)
    images_removed: list[str] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.containers
            or self.files
            or self.volumes_created
            or self.volumes_removed
            or self.images_added
            or self.images_removed
        )

    def lines(self) -> list[str]:
        out = [c.describe() for c in self.containers]
        out += [f"volume {v} created" for v in self.volumes_created]
        out += [f"volume {v} removed" for v in self.volumes_removed]
        out += [f"image {i} added" for i in self.images_added]
        out += [f"image {i} removed" for i in self.images_removed]
        out += [f.describe() for f in self.files]
        return out


def _files(tree: Tree) -> dict[str, Entry]:
    return {p: e for p, e in tree.items() if e.kind not in (DIR, WHITEOUT)}


def _same(a: Entry, b: Entry) -> bool:
    return (a.kind, a.size, a.chunks, a.mode, a.target) == (
        b.kind,
        b.size,
        b.chunks,
        b.mode,
        b.target,
    )


def diff_trees(
    where: str,
    before: Tree,
    after: Tree,
    out: list[FileChange],
    lower: Callable[[], Tree] | None = None,
) -> None:
    """File-level changes (directories and whiteouts are structure, not content).

    ``lower`` gives the image under a writable layer: a whiteout added is the image
    file removed (with its size), a whiteout gone is the image file back in view.
    """
    a, b = _files(before), _files(after)
    for path in sorted(a.keys() | b.keys()):
        ea, eb = a.get(path), b.get(path)
        if ea is None and eb is not None:
            out.append(FileChange("A", where, path, None, eb.size))
        elif eb is None and ea is not None:
            out.append(FileChange("D", where, path, ea.size, None))
        elif ea is not None and eb is not None and not _same(ea, eb):
            out.append(FileChange("C", where, path, ea.size, eb.size))
    # deletions of image files show as whiteouts in the writable layer
    wa = {p for p, e in before.items() if e.kind == WHITEOUT}
    wb = {p for p, e in after.items() if e.kind == WHITEOUT}
    if wa == wb:
        return
    image = lower() if lower is not None else {}
    for path in sorted(wb - wa):
        if path in a:
            continue  # a file of the writable layer itself: reported above
        e = image.get(path)
        size = e.size if e is not None and e.kind != DIR else None
        out.append(FileChange("D", where, path, size, None))
    if lower is None:
        return
    for path in sorted(wa - wb):
        e = image.get(path)
        if path not in after and e is not None and e.kind not in (DIR, WHITEOUT):
            out.append(FileChange("A", where, path, None, e.size))


def _container_files(c: Container) -> dict[str, Tree]:
    trees = {f"container {c.name} rw": c.rw}
    for target, tree in c.tmpfs.items():
        trees[f"container {c.name} tmpfs {target}"] = tree
    return trees


def diff_hosts(a: Host, b: Host) -> HostDiff:
    """What it takes to get from state ``a`` to state ``b``."""
    out = HostDiff()
    for cid in sorted(a.containers.keys() | b.containers.keys()):
        ca, cb = a.containers.get(cid), b.containers.get(cid)
        if ca is None and cb is not None:
            out.containers.append(StateChange(cid, cb.name, None, cb.state))
        elif cb is None and ca is not None:
            out.containers.append(StateChange(cid, ca.name, ca.state, None))
        elif ca is not None and cb is not None and ca.state != cb.state:
            out.containers.append(StateChange(cid, cb.name, ca.state, cb.state))
        elif ca is not None and cb is not None and ca.exit_code != cb.exit_code:
            out.containers.append(
                StateChange(
                    cid, cb.name, f"{ca.state} ({ca.exit_code})", f"{cb.state} ({cb.exit_code})"
                )
            )
        ta = _container_files(ca) if ca is not None else {}
        tb = _container_files(cb) if cb is not None else {}
        for where in sorted(ta.keys() | tb.keys()):
            lower = None
            if cb is not None and where == f"container {cb.name} rw":
                lower = functools.partial(b.lower, cb)
            diff_trees(where, ta.get(where, {}), tb.get(where, {}), out.files, lower)
    out.volumes_created = sorted(b.volumes.keys() - a.volumes.keys())
    out.volumes_removed = sorted(a.volumes.keys() - b.volumes.keys())
    for name in sorted(a.volumes.keys() | b.volumes.keys()):
        va, vb = a.volumes.get(name), b.volumes.get(name)
        diff_trees(f"volume {name}", va.files if va else {}, vb.files if vb else {}, out.files)
    diff_trees("host", a.host_files, b.host_files, out.files)
    out.images_added = sorted(b.images.keys() - a.images.keys())
    out.images_removed = sorted(a.images.keys() - b.images.keys())
    return out
