"""What a CLI command works on: the store, the Docker host, the reader, the moment asked about."""

from __future__ import annotations

import argparse
import os
import random
import time
from functools import cached_property

from dockstate.core.commands import DockerHost
from dockstate.core.names import RandomIds
from dockstate.core.state import Host
from dockstate.eventlog import LmdbEventLog, WriteTxn
from dockstate.eventlog.errors import InvalidParameterError
from dockstate.projections import snapshot
from dockstate.projections.asof import NAME as SNAPSHOT_NAME
from dockstate.projections.asof import configured_every
from dockstate.projections.query import Reader
from dockstate.tools.store import open_store
from dockstate.tools.timeref import is_seq, parse_time

#: events a read may fold past the newest snapshot before it leaves one at the head.
HEAD_SNAPSHOT_AFTER = 1_000

#: meta key holding the session started with ``dockstate session start``.
SESSION_META = "session"


class Context:
    """Lazily opened store, host and reader for one CLI invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.store_path: str | None = getattr(args, "store", None)

    @cached_property
    def log(self) -> LmdbEventLog:
        return open_store(self.store_path)

    def session(self) -> str:
        env = os.environ.get("DOCKSTATE_SESSION")
        if env:
            return env
        raw = self.log.get_meta(SESSION_META)
        return raw.decode() if raw else ""

    @cached_property
    def host(self) -> DockerHost:
        return DockerHost(
            self.log,
            ids=RandomIds(random.SystemRandom()),
            session=self.session(),
            load=self._load_write_model,
        )

    def _load_write_model(self, tx: WriteTxn) -> Host:
        """The write model from the newest snapshot below the head, then the tail."""
        log = self.log

        def read_blobs(digests: object) -> bytes:
            return b"".join(tx.get_blob(d) for d in digests)  # type: ignore[attr-defined]

        snap = log.get_snapshot(SNAPSHOT_NAME, snapshot.VERSION, tx.head.seq)
        if snap is None:
            host = Host(read_blobs)
            host.apply_all(tx.read(1))
            return host
        host, _ledger = snapshot.decode(snap.data, read_blobs)
        host.apply_all(tx.read(host.seq + 1))
        return host

    @cached_property
    def reader(self) -> Reader:
        reader = Reader(self.log, snapshot_every=configured_every(self.log))
        # a CLI read at the head leaves a snapshot behind when it had to fold a long
        # tail, so the next command answers from it instead of folding again
        reader.projector.head_snapshot_after = HEAD_SNAPSHOT_AFTER
        return reader

    def now(self) -> int:
        return time.time_ns()

    def at(self) -> int | None:
        """The seq ``--at`` names (None: now)."""
        text = getattr(self.args, "at", None)
        if text is None:
            return None
        if is_seq(text):
            return int(text)
        return self.log.seq_at(parse_time(text, self.now()))

    def at_time(self) -> int:
        """The wall-clock moment of ``--at`` (now when not given), for "N minutes ago"."""
        seq = self.at()
        if seq is None:
            return self.now()
        env = self.reader.event(seq) if seq > 0 else None
        return env.ts if env is not None else 0

    def time_arg(self, text: str | None) -> int | None:
        """An ``--until`` value as the last seq it includes (a time: the last event at or before it)."""
        if text is None:
            return None
        if is_seq(text):
            return int(text)
        return self.log.seq_at(parse_time(text, self.now()))

    def since_arg(self, text: str | None) -> int | None:
        """A ``--since`` value as the first seq it includes (a time: the first event at or after it)."""
        if text is None:
            return None
        if is_seq(text):
            return int(text)
        return self.log.seq_at(parse_time(text, self.now()) - 1) + 1

    def maintain_snapshots(self) -> None:
        """After a write: leave a snapshot behind when the head crossed a multiple of N."""
        every = self.reader.projector.every
        head = self.log.head().seq
        last = self.log.get_snapshot(SNAPSHOT_NAME, snapshot.VERSION, head)
        if every and head - (last.seq if last else 0) >= every:
            self.reader.projector.state_at(head)

    def close(self) -> None:
        if "log" in self.__dict__:
            self.log.close()


def refuse_at(args: argparse.Namespace) -> None:
    if getattr(args, "at", None) is not None:
        raise InvalidParameterError(
            f"--at is for read commands: '{args.command}' changes the store and always acts now"
        )
