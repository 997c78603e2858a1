"""The audit ledger: what data was lost, when, and what survived where.

It is folded alongside the host state and looks at the state *before* each
event that discards data: a stop, kill or die (the writable layer under
``discard_on=stop``, tmpfs always), a container removal (the writable layer
under ``discard_on=remove``), and a volume removal. For the same container it
also notes what persisted in volumes and bind mounts at that moment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgpack

from dockstate.core import fs
from dockstate.core.fs import FILE, SYMLINK, Entry, Tree
from dockstate.core.mounts import BIND, TMPFS, VOLUME
from dockstate.core.state import Container, Host

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
    """A file that existed only in what was discarded."""

    path: str
    size: int
    chunks: tuple[bytes, ...]
    written_seq: int
    written_ts: int
    kind: str = FILE


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


def _persisted(host: Host, c: Container) -> list[Persisted]:
    out = []
    for m in c.mounts:
        if m.type == VOLUME:
            vol = host.volumes.get(m.source)
            tree: Mapping[str, Entry] = vol.files if vol else {}
            items = [(fs.join(m.target, p), e) for p, e in tree.items()]
        elif m.type == BIND:
            # the source itself too: a bind-mounted file persists on the host
            items = [
                (fs.join(m.target, fs.relative(p, m.source)), e)
                for p, e in host.host_files.items()
                if fs.is_below(p, m.source)
            ]
        else:
            continue
        for path, e in sorted(items):
            if e.kind == FILE and c.mount_for(path) is m:
                out.append(Persisted(path, m.type, m.source, e.size))
    return out


class Ledger:
    """Loss records in log order."""

    def __init__(self) -> None:
        self._records: list[LossRecord] = []
        #: records still encoded as loaded from a snapshot, before ``_records``.
        self._encoded: list[bytes] = []
        self._decode: Callable[[bytes], LossRecord] | None = None

    @classmethod
    def from_encoded(cls, encoded: list[bytes], decode: Callable[[bytes], LossRecord]) -> Ledger:
        ledger = cls()
        ledger._encoded, ledger._decode = encoded, decode
        return ledger

    @property
    def records(self) -> list[LossRecord]:
        if self._encoded:
            assert self._decode is not None
            self._records[:0] = [self._decode(raw) for raw in self._encoded]
            self._encoded = []
        return self._records

    def encoded_records(self, row: Callable[[LossRecord], list[Any]]) -> list[bytes]:
        """Every record as bytes (those never decoded are passed through as they are)."""
        return self._encoded + [msgpack.packb(row(r), use_bin_type=True) for r in self._records]

    def observe(self, host: Host, seq: int, ts: int, type_: str, data: Mapping[str, Any]) -> None:
        """Record what ``type_`` is about to discard; call before the host folds it."""
        name = EVENT_NAMES.get(type_)
        if name is None:
            return
        if name == "volume-rm":
            vol = host.volumes.get(data["name"])
            if vol is not None:
                self._records.append(
                    LossRecord(
                        name,
                        seq,
                        ts,
                        "",
                        vol.name,
                        "",
                        _files(vol.files, ""),
                        [],
                        volume=vol.name,
                        note="anonymous volume" if vol.anonymous else "named volume",
                    )
                )
            return
        c = host.containers.get(data["container"])
        if c is None:
            return
        tmpfs_lost = [
            f
            for m in c.mounts
            if m.type == TMPFS
            for f in _files(c.tmpfs.get(m.target, {}), m.target)
        ]
        discards_rw = name == "rm" or c.discard_on == "stop"
        lost = _files(c.rw, "") if discards_rw else []
        if name == "rm" and c.discard_on == "stop" and not lost:
            note = "nothing left to lose: the writable layer was discarded at stop"
        elif name == "rm":
            note = "writable layer removed with the container"
        elif c.discard_on == "stop":
            note = "writable layer discarded at stop (discard_on=stop, the seed's model)"
        else:
            note = "writable layer kept until rm (discard_on=remove, as Docker does); only tmpfs is lost at stop"
        persisted = _persisted(host, c)
        self._records.append(
            LossRecord(name, seq, ts, c.id, c.name, c.discard_on, lost, persisted, note=note)
        )
        if tmpfs_lost and name != "rm":
            self._records.append(
                LossRecord(
                    "tmpfs",
                    seq,
                    ts,
                    c.id,
                    c.name,
                    c.discard_on,
                    tmpfs_lost,
                    [],
                    note="tmpfs lives in memory and is lost at every stop",
                )
            )
