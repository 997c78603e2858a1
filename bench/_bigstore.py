"""A big, realistic store for the CLI and forensics benchmarks (not a benchmark itself).

The store is made by `DockerHost` commands, as a busy host would record them,
inside ``with log.bulk(batch=10000)``: containers are created at an even pace
over the history (container ``web-00042`` around seq ``42 * events / containers``),
run, get files written, appended, made and deleted (in their writable layer and
in named volumes), are paused, stopped, killed, restarted, and a few are
removed. Afterwards ``Projector(log, every=10000).state_at()`` folds the whole
log once and leaves a snapshot every 10,000 events, as the CLI's maintain step
does after writes.

The store is cached under a path: a store that already holds the same
parameters (recorded in its meta) is reused.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from pathlib import Path
from typing import Final

from dockstate.core import fs
from dockstate.core.commands import DockerHost
from dockstate.core.errors import DockstateError
from dockstate.core.fs import FILE, Entry
from dockstate.core.lifecycle import State
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog
from dockstate.projections.asof import NAME as SNAPSHOT_NAME
from dockstate.projections.asof import Projector
from dockstate.projections.snapshot import VERSION as SNAPSHOT_VERSION
from dockstate.tools import logging as ds_logging

FORMAT: Final = "bigstore-2"
META_KEY: Final = "bench.bigstore"
SNAPSHOT_EVERY: Final = 10_000
IMAGE: Final = "app:1"
#: containers being worked on at any time; older ones are retired (left as they are).
POOL: Final = 64
VOLUMES: Final = 200
DIRS: Final = ("/srv/www", "/var/log/app", "/tmp/work", "/var/lib/data")
FILES_PER_DIR: Final = 12


def name_of(i: int) -> str:
    return f"web-{i:05d}"


def _register_image(host: DockerHost) -> str:
    """A small two-file image, registered as ``image load`` would."""

    def blob(data: bytes) -> tuple[bytes, ...]:
        return tuple(host.log.write(lambda tx: tx.put_blob(data)))

    busybox, conf = b"\x7fELF busybox" * 64, b"listen 80\n"
    entries = [
        ("/bin", fs.dir_entry()),
        ("/bin/busybox", Entry(FILE, 0o755, len(busybox), blob(busybox))),
        ("/etc", fs.dir_entry()),
        ("/etc/app.conf", Entry(FILE, 0o644, len(conf), blob(conf))),
        ("/srv", fs.dir_entry()),
        ("/var", fs.dir_entry()),
        ("/var/lib", fs.dir_entry()),
        ("/var/lib/data", fs.dir_entry()),
    ]
    diff_id = "sha256:" + hashlib.sha256(b"bench layer").hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "httpd", "-f"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    host.register_image(
        config=config,
        image_id=image_id,
        layers=[(diff_id, entries, 4096)],
        tags=[IMAGE],
        created="2024-01-01T00:00:00Z",
    )
    return image_id


class Workload:
    """Drives a `DockerHost` with a deterministic random mix of commands."""

    def __init__(self, host: DockerHost, containers: int, seed: int) -> None:
        self.host = host
        self.containers = containers
        self.rng = random.Random(seed)
        self.contents = [self.rng.randbytes(self.rng.randrange(64, 4096)) for _ in range(512)]
        self.created = 0
        #: the containers being worked on, oldest first.
        self.pool: dict[str, None] = {}
        self.refused = 0

    def _create(self) -> None:
        rng = self.rng
        name = name_of(self.created)
        self.created += 1
        volumes = []
        if rng.random() < 0.3:
            volumes.append(f"vol{rng.randrange(VOLUMES):03d}:/var/lib/data")
        discard_on = "remove" if rng.random() < 0.25 else None
        self.host.create(
            IMAGE,
            name=name,
            volumes=volumes,
            discard_on=discard_on,
            command="/bin/busybox httpd -f",
            start=rng.random() < 0.9,
        )
        self.pool[name] = None

    def _retire(self) -> None:
        name = next(iter(self.pool))
        del self.pool[name]
        if self.rng.random() < 0.05:
            self.host.remove(name, force=True, volumes=True)

    def _path(self) -> str:
        rng = self.rng
        return f"{rng.choice(DIRS)}/f{rng.randrange(FILES_PER_DIR):02d}.dat"

    def step(self, remaining: int, due: bool) -> None:
        """One command; ``remaining`` < 4 keeps to one-event commands."""
        rng, host = self.rng, self.host
        if due and remaining >= 4 and self.created < self.containers:
            self._create()
            if len(self.pool) > POOL:
                self._retire()
            return
        name = self._pick()
        model = host.state()
        state = model.containers[model.names[name]].state
        r = rng.random()
        try:
            if state == State.RUNNING:
                if r < 0.70 or remaining < 4:
                    host.write_file(name, self._path(), rng.choice(self.contents))
                elif r < 0.80:
                    host.write_file(name, self._path(), rng.choice(self.contents), append=True)
                elif r < 0.86:
                    host.mkdir(name, f"{rng.choice(DIRS)}/d{rng.randrange(4)}", parents=True)
                elif r < 0.92:
                    host.delete(name, self._path())
                elif r < 0.95:
                    host.pause(name)
                elif r < 0.98:
                    host.stop(name)
                else:
                    host.kill(name)
            elif state == State.PAUSED:
                if r < 0.9:
                    host.unpause(name)
                else:
                    host.stop(name)
            elif r < 0.85:
                host.start(name)
            else:
                host.restart(name)
        except DockstateError:
            # a delete of a file that is not there: Docker refuses, nothing is recorded
            self.refused += 1

    def _pick(self) -> str:
        names = list(self.pool)
        return names[self.rng.randrange(len(names))]


def build(path: Path, events: int, containers: int, seed: int, *, quiet: bool = False) -> None:
    """Make a fresh store of exactly ``events`` events at ``path``, then its snapshots."""
    ds_logging.configure("console", "warning")
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        host = DockerHost(log, ids=RandomIds(random.Random(seed)))
        t0 = time.perf_counter()
        with log.bulk(batch=SNAPSHOT_EVERY):
            _register_image(host)
            work = Workload(host, containers, seed)
            report = 100_000
            while (head := log.head().seq) < events:
                due = work.created < containers * head / events
                work.step(events - head, due)
                if not quiet and head >= report:
                    rate = head / (time.perf_counter() - t0)
                    print(f"  {head:>9,} events  ({rate:,.0f} events/s)", flush=True)
                    report += 100_000
        elapsed = time.perf_counter() - t0
        head = log.head().seq
        assert head == events, (head, events)
        if not quiet:
            print(
                f"  recorded {head:,} events, {work.created:,} containers in {elapsed:.0f}s"
                f" ({head / elapsed:,.0f} events/s; {work.refused:,} refused commands)"
            )
        log.set_meta(META_KEY, f"{FORMAT}/{events}/{containers}/{seed}".encode())
    finally:
        log.close()
    write_snapshots(path, quiet=quiet)


def write_snapshots(path: Path, *, quiet: bool = False) -> None:
    """Snapshots every 10,000 events of this code's snapshot version, as the CLI leaves them.

    Nothing to do when they are there; after a snapshot version bump the old ones are
    ignored by the code, and this writes the new ones (the events are kept).
    """
    ds_logging.configure("console", "warning")
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        head = log.head().seq
        want = list(range(SNAPSHOT_EVERY, head, SNAPSHOT_EVERY))
        if log.snapshot_seqs(SNAPSHOT_NAME, SNAPSHOT_VERSION)[-len(want) :] == want:
            return
        t0 = time.perf_counter()
        Projector(log, every=SNAPSHOT_EVERY).state_at()
        snaps = log.snapshot_seqs(SNAPSHOT_NAME, SNAPSHOT_VERSION)
        if not quiet:
            print(
                f"  {len(snaps)} snapshots (version {SNAPSHOT_VERSION}, seq"
                f" {snaps[0] if snaps else 0:,}..{snaps[-1] if snaps else 0:,})"
                f" written in {time.perf_counter() - t0:.0f}s"
            )
    finally:
        log.close()


def open_or_build(
    path: Path, events: int, containers: int, seed: int, *, quiet: bool = False
) -> Path:
    """The store at ``path``, built unless it already holds these parameters."""
    want = f"{FORMAT}/{events}/{containers}/{seed}".encode()
    if path.exists():
        log = LmdbEventLog(path, clock=time.time_ns)
        try:
            ok = log.get_meta(META_KEY) == want and log.head().seq == events
        finally:
            log.close()
        if ok:
            if not quiet:
                print(f"reusing the store of {events:,} events at {path}")
            write_snapshots(path, quiet=quiet)
            return path
    if not quiet:
        print(f"building a store of {events:,} events / {containers:,} containers at {path} ...")
    build(path, events, containers, seed, quiet=quiet)
    return path


def store_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def head_and_last_snapshot(path: Path) -> tuple[int, int]:
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        head = log.head().seq
        snap = log.get_snapshot(SNAPSHOT_NAME, SNAPSHOT_VERSION, head)
        return head, snap.seq if snap else 0
    finally:
        log.close()


def alive_name(path: Path, near: int) -> str:
    """The name of a container that exists at the head, the nearest to ``name_of(near)``."""
    log = LmdbEventLog(path, clock=time.time_ns)
    try:
        names = set(Projector(log, every=0).state_at().host.names)
    finally:
        log.close()
    for k in range(near, -1, -1):
        if name_of(k) in names:
            return name_of(k)
    raise ValueError("no container left at the head")
