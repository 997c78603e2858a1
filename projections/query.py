"""The read API the CLI and scripts use: every question, as of any seq."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dockstate.core import fs
from dockstate.core.errors import FileSystemError, NoSuchContainerError
from dockstate.core.fs import SYMLINK, Entry
from dockstate.core.names import looks_like_id_prefix
from dockstate.core.refs import find_container, find_image, find_volume
from dockstate.core.state import Container, Host, Image, Volume
from dockstate.eventlog.envelope import Envelope
from dockstate.eventlog.log import EventLog
from dockstate.projections import views
from dockstate.projections.asof import DEFAULT_EVERY, Projector, State
from dockstate.projections.ledger import LossRecord


class Reader:
    """Answers questions about a store as of a seq (None: now).

    States are cached per seq for the life of the reader, so several questions
    about the same moment fold the log once.
    """

    def __init__(self, log: EventLog, *, snapshot_every: int = DEFAULT_EVERY) -> None:
        self.log = log
        self.projector = Projector(log, every=snapshot_every)
        self._states: dict[int, State] = {}

    def read_blobs(self, digests: Sequence[bytes]) -> bytes:
        return self.log.read_blobs(digests)

    def state(self, at: int | None = None) -> State:
        seq = self.log.head().seq if at is None else max(0, min(at, self.log.head().seq))
        state = self._states.get(seq)
        if state is None:
            state = self.projector.state_at(seq)
            self._states[seq] = state
        return state

    def host(self, at: int | None = None) -> Host:
        return self.state(at).host

    # -- objects -------------------------------------------------------------

    def containers(self, at: int | None = None, *, all: bool = False) -> list[Container]:
        cs = list(self.host(at).containers.values())
        return cs if all else [c for c in cs if c.running]

    def container(self, ref: str, at: int | None = None, *, removed: bool = False) -> Container:
        host = self.host(at)
        try:
            return find_container(host, ref)
        except NoSuchContainerError:
            if not removed:
                raise
        for c in reversed(host.removed.values()):
            if (
                c.id == ref
                or c.name == ref.removeprefix("/")
                or (looks_like_id_prefix(ref) and c.id.startswith(ref))
            ):
                return c
        raise NoSuchContainerError(ref)

    def images(self, at: int | None = None) -> list[Image]:
        return list(self.host(at).images.values())

    def image(self, ref: str, at: int | None = None) -> Image:
        return find_image(self.host(at), ref)

    def volumes(self, at: int | None = None) -> list[Volume]:
        return list(self.host(at).volumes.values())

    def volume(self, name: str, at: int | None = None) -> Volume:
        return find_volume(self.host(at), name)

    # -- files ---------------------------------------------------------------------

    def ls(self, ref: str, path: str, at: int | None = None) -> list[views.DirItem]:
        host = self.host(at)
        return views.merged_ls(host, find_container(host, ref), path)

    def stat(self, ref: str, path: str, at: int | None = None) -> tuple[Entry, str]:
        host = self.host(at)
        c = find_container(host, ref)
        p = fs.normalize(path)
        e = host.lookup(c, p)
        if e is None:
            raise FileSystemError("stat", p, "No such file or directory")
        return e, views.where(host, c, p)

    def cat(self, ref: str, path: str, at: int | None = None) -> bytes:
        if at is not None and at not in self._states:
            # a past file of one container: fold only what can change it, if that is enough
            p = fs.normalize(path)
            scoped = self.projector.scoped_at(at, ref, p)
            if scoped is not None:
                host, c = scoped
                if c is None:
                    raise NoSuchContainerError(ref)
                entry = host.lookup(c, p)
                if entry is None or entry.kind != SYMLINK:  # a link may lead out of the scope
                    return views.read_file(host, c, p, self.read_blobs)
        host = self.host(at)
        return views.read_file(host, find_container(host, ref), path, self.read_blobs)

    def diff(self, ref: str, at: int | None = None) -> list[tuple[str, str]]:
        host = self.host(at)
        return views.container_diff(host, find_container(host, ref))

    def df(self, at: int | None = None) -> views.DiskUsage:
        return views.disk_usage(self.host(at))

    def volume_ls(
        self, name: str, path: str = "/", at: int | None = None
    ) -> list[tuple[str, Entry]]:
        return views.tree_ls(self.volume(name, at).files, path, what=f"volume {name}:")

    def volume_cat(self, name: str, path: str, at: int | None = None) -> bytes:
        return views.tree_read(
            self.volume(name, at).files, path, self.read_blobs, what=f"volume {name}:"
        )

    def host_ls(self, path: str, at: int | None = None) -> list[tuple[str, Entry]]:
        return views.tree_ls(self.host(at).host_files, path, what="host:")

    def host_cat(self, path: str, at: int | None = None) -> bytes:
        return views.tree_read(self.host(at).host_files, path, self.read_blobs, what="host:")

    # -- audit and history ------------------------------------------------------------

    def audit(
        self,
        container: str | None = None,
        *,
        since: int | None = None,
        until: int | None = None,
        at: int | None = None,
    ) -> list[LossRecord]:
        """Loss records (seq in ``since..until``), optionally for one container."""
        state = self.state(at)
        records = state.ledger.records
        if container is not None:
            cid = self.container(container, at, removed=True).id
            records = [r for r in records if r.container == cid]
        lo = since or 0
        hi = until if until is not None else state.seq
        return self._described([r for r in records if lo <= r.seq <= hi])

    def _described(self, records: list[LossRecord]) -> list[LossRecord]:
        """The records with each lost file's session and content digest filled in (see
        `LostFile`): copies, the state's own records stay as the fold made them."""
        sessions = self.log.sessions(f.written_seq for r in records for f in r.lost)
        return [
            dataclasses.replace(
                r,
                lost=[
                    dataclasses.replace(
                        f,
                        session=sessions.get(f.written_seq, ""),
                        digest=views.content_digest(
                            Entry(f.kind, 0, f.size, f.chunks), self.read_blobs
                        ),
                    )
                    for f in r.lost
                ],
            )
            for r in records
        ]

    def history(self, subject: str, at: int | None = None) -> list[Envelope]:
        """Every event about a subject (``c:<id>``, ``v:<name>``, ...) up to ``at``."""
        return list(self.log.by_subject(subject, 1, at))

    def event(self, seq: int) -> Envelope | None:
        return next(self.log.read(seq, seq), None)
