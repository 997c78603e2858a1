"""The audit ledger: what data was lost, when, and what survived where.

It is folded alongside the host state and looks at the state *before* each
event that discards data: a stop, kill or die (the writable layer under
``discard_on=stop``, tmpfs always), a container removal (the writable layer
under ``discard_on=remove``), and a volume removal. For the same container it
also notes what persisted in volumes and bind mounts at that moment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgpack

from dockstate.core import fs
from dockstate.core.fs import FILE, SYMLINK, Tree
from dockstate.core.mounts import BIND, TMPFS, VOLUME, Mount
from dockstate.core.state import Container, Host, LazyTree, tree_of

#: What an event is called in the ledger.
EVENT_NAMES: Final = {
    "ContainerStopped": "stop",
    "ContainerKilled": "kill",
    "ContainerDied": "die",
    "ContainerRemoved": "rm",
    "VolumeRemoved": "volume-rm",
}


@dataclasses.dataclass(slots=True)
class LostFile:
    """A file that existed only in what was discarded.

    ``session`` and ``digest`` are filled in by `Reader.audit`: the fold reads no
    sessions (an envelope's session is read for the few writes a question is about),
    and the digest of a file of several chunks needs its content.
    """

    path: str
    size: int
    chunks: tuple[bytes, ...]
    written_seq: int
    written_ts: int
    kind: str = FILE
    #: the recording session of the write that last set the file ("" for none).
    session: str = ""
    #: ``sha256:<hex>`` of the file's content.
    digest: str = ""


@dataclasses.dataclass(slots=True)
class Persisted:
    """A file that survived because it lived in a volume or on the host."""

    path: str
    type: str
    source: str
    size: int


@dataclasses.dataclass(slots=True)
class LossRecord:
    """One discard: which container (or volume), which event, what went."""

    event: str
    seq: int
    ts: int
    container: str
    name: str
    policy: str
    lost: list[LostFile]
    persisted: list[Persisted]
    volume: str = ""
    #: why nothing (or only tmpfs) was lost, in words.
    note: str = ""

    @property
    def lost_bytes(self) -> int:
        return sum(f.size for f in self.lost)


def _files(tree: Tree, prefix: str) -> list[LostFile]:
    out = []
    for path, e in sorted(tree.items()):
        if e.kind in (FILE, SYMLINK):
            out.append(
                LostFile(
                    fs.join(prefix, path) if prefix else path,
                    e.size,
                    e.chunks,
                    e.seq,
                    e.mtime,
                    e.kind,
                )
            )
    return out


#: What a record's persisted files are read from: each volume or bind mount with the
#: files its tree held at the discard (the tree goes on changing after it: a volume's is
#: lent, see `Volume.lend_files`, and the host's files under a bind are copied).
Sources = list[tuple[Mount, LazyTree]]


def _persisted_sources(host: Host, c: Container) -> Sources:
    out: Sources = []
    for m in c.mounts:
        if m.type == VOLUME:
            vol = host.volumes.get(m.source)
            out.append((m, vol.lend_files() if vol else {}))
        elif m.type == BIND:
            out.append((m, {p: e for p, e in host.host_files.items() if fs.is_below(p, m.source)}))
    return out


def _persisted(c_mounts: list[Mount], sources: Sources) -> list[Persisted]:
    out = []
    for m, held in sources:
        tree = tree_of(held)
        if m.type == VOLUME:
            items = [(fs.join(m.target, p), e) for p, e in tree.items()]
        else:
            # the source itself too: a bind-mounted file persists on the host
            items = [(fs.join(m.target, fs.relative(p, m.source)), e) for p, e in tree.items()]
        # only a mount nested inside this one can hide some of its files
        nested = [o for o in c_mounts if o.target != m.target and fs.is_below(o.target, m.target)]
        for path, e in sorted(items):
            if e.kind == FILE and (not nested or _mount_for(c_mounts, path) is m):
                out.append(Persisted(path, m.type, m.source, e.size))
    return out


def _mount_for(mounts: list[Mount], path: str) -> Mount | None:
    best: Mount | None = None
    for m in mounts:
        if fs.is_below(path, m.target) and (best is None or len(m.target) > len(best.target)):
            best = m
    return best


def _has_files(tree: Tree) -> bool:
    return any(e.kind in (FILE, SYMLINK) for e in tree.values())


class _Pending:
    """A loss record's facts, kept as they were at the discard until the record is read.

    Building every record's file lists at each stop would cost a rebuild more
    than the rest of the fold: most are never read, and a snapshot encodes each
    once. The discarded writable layer and tmpfs trees are kept as they are (a
    discard puts new ones in their place, so they never change again); a
    volume's or the host's files are copied (see `Sources`).
    """

    __slots__ = ("head", "lost", "mounts", "note", "sources", "volume")

    def __init__(
        self,
        head: tuple[str, int, int, str, str, str],
        lost: Sequence[tuple[str, LazyTree]],
        mounts: list[Mount],
        sources: Sources,
        *,
        note: str,
        volume: str = "",
    ) -> None:
        self.head, self.lost, self.mounts, self.sources = head, lost, mounts, sources
        self.note, self.volume = note, volume

    def record(self) -> LossRecord:
        lost = [f for prefix, tree in self.lost for f in _files(tree_of(tree), prefix)]
        persisted = _persisted(self.mounts, self.sources) if self.sources else []
        return LossRecord(*self.head, lost, persisted, volume=self.volume, note=self.note)


#: A record not built yet: encoded (from a snapshot, or for one) or pending.
_Unbuilt = bytes | _Pending


class Ledger:
    """Loss records in log order.

    The records up to ``base`` were written with snapshots, in segments (see
    `Projector`); ``earlier`` reads them back when the records are first asked
    for. Those after ``base`` are the ledger's own: built when read, until
    then kept as a snapshot left them (encoded) or as `observe` saw them.
    """

    def __init__(
        self, base: int = 0, earlier: Callable[[], list[LossRecord]] | None = None
    ) -> None:
        #: records with seq <= base are in earlier segments, read by ``earlier``.
        self.base = base
        self._earlier = earlier
        self._own: list[LossRecord | _Unbuilt] = []
        self._decode: Callable[[bytes], LossRecord] | None = None
        self._all: list[LossRecord] | None = None

    @classmethod
    def from_encoded(
        cls, encoded: list[bytes], decode: Callable[[bytes], LossRecord], *, base: int = 0
    ) -> Ledger:
        """A ledger of encoded records after ``base`` (those up to it: see `rebase`)."""
        ledger = cls(base)
        ledger._own, ledger._decode = list(encoded), decode
        return ledger

    def _build(self, item: LossRecord | _Unbuilt) -> LossRecord:
        if isinstance(item, LossRecord):
            return item
        if isinstance(item, _Pending):
            return item.record()
        assert self._decode is not None
        return self._decode(item)

    @property
    def records(self) -> list[LossRecord]:
        if self._all is None:
            own = self._own
            for i, item in enumerate(own):
                own[i] = self._build(item)
            if self._earlier is not None:
                earlier = self._earlier()
            elif self.base:
                raise LookupError(
                    f"the loss records up to seq {self.base} are in ledger segments: "
                    "read the state through Projector, which loads them"
                )
            else:
                earlier = []
            self._earlier = lambda: earlier
            self._all = earlier + own  # type: ignore[operator]
        return self._all

    def own_encoded(
        self, row: Callable[[LossRecord], list[Any]], *, decode: Callable[[bytes], LossRecord]
    ) -> list[bytes]:
        """The records after ``base`` as bytes; each pending one is encoded once and kept so."""
        out = []
        own = self._own
        for i, item in enumerate(own):
            if isinstance(item, bytes):
                out.append(item)
                continue
            raw: bytes = msgpack.packb(row(self._build(item)), use_bin_type=True)
            if isinstance(item, _Pending):
                own[i] = raw
                self._decode = decode
            out.append(raw)
        return out

    def read_earlier_with(self, earlier: Callable[[], list[LossRecord]]) -> None:
        """Read the records up to ``base`` with ``earlier`` (when they are first asked for)."""
        self._earlier, self._all = earlier, None

    def rebase(self, seq: int, earlier: Callable[[], list[LossRecord]]) -> None:
        """Every record up to ``seq`` is now in a segment that ``earlier`` reads back."""
        self.base, self._earlier, self._own, self._all = seq, earlier, [], None

    def observe(self, host: Host, seq: int, ts: int, type_: str, data: Mapping[str, Any]) -> None:
        """Record what ``type_`` is about to discard; call before the host folds it."""
        name = EVENT_NAMES.get(type_)
        if name is None:
            return
        self._all = None
        if name == "volume-rm":
            vol = host.volumes.get(data["name"])
            if vol is not None:
                # the volume's tree goes with it, unchanged from here on
                self._own.append(
                    _Pending(
                        (name, seq, ts, "", vol.name, ""),
                        [("", vol.files)],
                        [],
                        [],
                        note="anonymous volume" if vol.anonymous else "named volume",
                        volume=vol.name,
                    )
                )
            return
        c = host.containers.get(data["container"])
        if c is None:
            return
        discards_rw = name == "rm" or c.discard_on == "stop"
        if name == "rm" and c.discard_on == "stop" and not _has_files(c.rw):
            note = "nothing left to lose: the writable layer was discarded at stop"
        elif name == "rm":
            note = "writable layer removed with the container"
        elif c.discard_on == "stop":
            note = "writable layer discarded at stop (discard_on=stop, the seed's model)"
        else:
            note = "writable layer kept until rm (discard_on=remove, as Docker does); only tmpfs is lost at stop"
        head = (name, seq, ts, c.id, c.name, c.discard_on)
        # the writable layer as it is: the discard that follows puts a new one in its place
        # (so this one never changes), and one a snapshot left encoded stays so until read
        lost: list[tuple[str, LazyTree]] = [("", c._rw)] if discards_rw else []
        self._own.append(_Pending(head, lost, c.mounts, _persisted_sources(host, c), note=note))
        if name == "rm":
            return
        tmpfs = [(m.target, c.tmpfs.get(m.target, {})) for m in c.mounts if m.type == TMPFS]
        if any(_has_files(tree) for _, tree in tmpfs):
            self._own.append(
                _Pending(
                    ("tmpfs", seq, ts, c.id, c.name, c.discard_on),
                    tmpfs,
                    [],
                    [],
                    note="tmpfs lives in memory and is lost at every stop",
                )
            )
