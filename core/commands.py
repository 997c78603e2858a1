"""Commands: what a user asks of the Docker host, validated and recorded.

`DockerHost` runs each command in one write transaction of the event log: it
brings its write model (a `Host`) up to the head read inside that transaction,
decides (validating against Docker's rules, raising a `DockstateError` to
refuse), appends the resulting events and folds them into the model. A refused
command appends nothing; two processes racing on one store are serialised by
the log's single writer, so they cannot both succeed where Docker would let
only one.
"""

from __future__ import annotations

import functools
import signal as _signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeVar

import structlog

from dockstate.core import events as ev
from dockstate.core import fs
from dockstate.core.errors import (
    BindSourceMissingError,
    ConflictError,
    ContainerNotPausedError,
    ContainerNotRunningError,
    ContainerPausedError,
    ContainerRunningError,
    FileSystemError,
    ImageInUseError,
    InvalidContainerNameError,
    InvalidMountError,
    InvalidParameterError,
    NameInUseError,
    NoSuchVolumeError,
    VolumeInUseError,
)
from dockstate.core.fs import DIR, FILE, Entry, PathError
from dockstate.core.lifecycle import State
from dockstate.core.mounts import (
    BIND,
    TMPFS,
    VOLUME,
    Mount,
    check_duplicates,
    check_volume_name,
    parse_mount_flag,
    parse_tmpfs_flag,
    parse_volume_flag,
)
from dockstate.core.names import NAME_PATTERN, IdSource, chain_ids, normalize_image_ref
from dockstate.core.refs import find_container, find_image
from dockstate.core.state import Container, Host, encode_table, rw_visible_in_lower
from dockstate.eventlog.envelope import Command, Envelope, NewEvent
from dockstate.eventlog.log import EventLog, WriteTxn

T = TypeVar("T")
W = TypeVar("W")  # what a parent check looks paths up in
log = structlog.get_logger(__name__)

DISCARD_POLICIES: Final = ("stop", "remove")
#: The label Docker (>= 23) puts on anonymous volumes.
ANONYMOUS_LABEL: Final = "com.docker.volume.anonymous"
#: Exit code of a process ended by SIGTERM from ``docker stop``.
STOP_EXIT_CODE: Final = 128 + _signal.SIGTERM

Decision = list[ev.Event]

_new = tuple.__new__

#: The states commands test, read once: an enum member is a descriptor lookup on its class.
_RUNNING: Final = State.RUNNING
_PAUSED: Final = State.PAUSED
_DEAD: Final = State.DEAD


class LayerSpec(NamedTuple):
    """A layer to register: its diff_id, its entries (contents already in blobs), its size."""

    diff_id: str
    entries: Sequence[tuple[str, Entry]]
    size: int
    #: blob digests of the layer tar's split, when the tar was read (see `LayerRegistered`).
    tar_split: Sequence[bytes] = ()


#: Produces layer specs inside the write transaction; see `DockerHost.register_image`.
PrepareLayers = Callable[[WriteTxn, Sequence[bool]], Sequence["LayerSpec | None"]]


# kill parses the same few signals again and again, and the ValueError of a name is slow
@functools.lru_cache(maxsize=256, typed=True)
def parse_signal(sig: str | int) -> tuple[str, int]:
    """``KILL``, ``SIGKILL`` or ``9`` -> (``SIGKILL``, 9)."""
    text = str(sig).strip().upper()
    try:
        num = int(text)
        return _signal.Signals(num).name, num
    except ValueError:
        pass
    except (KeyError, TypeError):
        raise InvalidParameterError(f"Invalid signal: {sig}") from None
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return name, int(_signal.Signals[name])
    except KeyError:
        raise InvalidParameterError(f"Invalid signal: {sig}") from None


def _check_path(op: str, path: str) -> str:
    # Most paths are already normal (a replay's were recorded normalised): absolute, no
    # empty, "." or ".." component (each would show as "//" or "/."), no trailing "/".
    # Those are their own normal form; the check is a few times cheaper than normpath.
    if path[:1] == "/" and "//" not in path and "/." not in path and path[-1] != "/":
        return path
    try:
        return fs.normalize(path)
    except PathError as exc:
        raise InvalidParameterError(str(exc)) from exc


class DockerHost:
    """The simulated Docker host: every command of DESIGN.md's domain table.

    Args:
        log: the event log commands are recorded in.
        ids: where new container ids, anonymous volume names and container names come from.
        session: recorded on every event (``DOCKSTATE_SESSION`` or a started session).
        load: builds the write model from the log inside a write transaction; the
            default folds the whole log, projections pass a snapshot-aware loader.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        ids: IdSource,
        session: str = "",
        load: Callable[[WriteTxn], Host] | None = None,
    ) -> None:
        self.log = log
        self.ids = ids
        self.session = session
        self._load = load or self._fold_all
        self._model: Host | None = None
        self._tx: WriteTxn | None = None
        # One bound method for every command, not a closure over each transaction.
        self._txn_reader = self._read_in_txn
        #: a recorded time for the next command's events (replay keeps recorded times).
        self.next_ts: int | None = None
        #: the events the last command appended (empty for a no-op or a refusal).
        self.last_events: list[Envelope] = []

    # -- the write model -----------------------------------------------------

    def _read_in_txn(self, digests: Sequence[bytes]) -> bytes:
        """Blobs read through the write transaction the model was last synced in."""
        tx = self._tx
        assert tx is not None
        return b"".join(tx.get_blob(d) for d in digests)

    def _fold_all(self, tx: WriteTxn) -> Host:
        host = Host(self._txn_reader)
        host.apply_all(tx.read(1))
        return host

    def _sync(self, tx: WriteTxn) -> Host:
        """The write model as of this transaction's head."""
        head = tx.head
        host = self._model
        self._tx = tx
        if host is not None:
            host.layer_cache.set_reader(self._txn_reader)
            if host.seq < head.seq:
                events = tx.read(host.seq + 1)
                first = next(events)
                if first.prev == host.hash:
                    host.apply(first)
                    host.apply_all(events)
                else:
                    host = None  # the model saw a transaction that did not commit
            elif host.seq > head.seq or host.hash != head.hash:
                host = None
        if host is None:
            host = self._load(tx)
            host.layer_cache.set_reader(self._txn_reader)
        host.hash = head.hash
        self._model = host
        return host

    def state(self) -> Host:
        """The current state (read in a write transaction, so it is the head's)."""
        host = self.log.write(self._sync)
        # The transaction is over: layer tables not cached yet are read through the log.
        host.layer_cache.set_reader(self.log.read_blobs)
        return host

    def _execute(
        self,
        name: str,
        args: Mapping[str, Any],
        decide: Callable[[Host, WriteTxn], tuple[Decision, T]],
        *,
        owned: bool = False,
    ) -> T:
        """Decide and record one command; ``owned``: ``args`` is a dict made for this call,
        recorded as it is (otherwise a copy is)."""

        def run(tx: WriteTxn) -> T:
            host = self._sync(tx)
            events, result = decide(host, tx)
            if events:
                ts = self.next_ts
                # NewEvent(...) and Command(...) without NamedTuple's Python-level __new__
                if len(events) == 1:  # most commands: no comprehension
                    e = events[0]
                    records = [_new(NewEvent, (e.TAG, e.to_data(), e.subjects(), ts))]
                else:
                    records = [
                        _new(NewEvent, (e.TAG, e.to_data(), e.subjects(), ts)) for e in events
                    ]
                cmd = _new(Command, (name, args if owned else dict(args)))
                envs = tx.append(records, session=self.session, cmd=cmd)
                try:  # _fold_own, spelled out: once per command
                    host.apply_all(envs)
                except BaseException:
                    self._model = None
                    raise
                host.hash = tx.head.hash
                self.last_events = envs
            else:
                self.last_events = []
            return result

        self.last_events = []
        result = self.log.write(run)
        self.next_ts = None
        return result

    def _fold_own(self, host: Host, tx: WriteTxn, envs: list[Envelope]) -> None:
        try:
            host.apply_all(envs)
        except BaseException:
            self._model = None
            raise
        host.hash = tx.head.hash

    # -- images ----------------------------------------------------------------

    def register_image(
        self,
        *,
        config: bytes,
        image_id: str,
        layers: Sequence[LayerSpec | tuple[str, Sequence[tuple[str, Entry]], int]] | PrepareLayers,
        diff_ids: Sequence[str] | None = None,
        tags: Sequence[str] = (),
        volumes: Sequence[str] = (),
        created: str = "",
        cmd: str = "image load",
        args: Mapping[str, Any] | None = None,
    ) -> tuple[str, list[str], list[bool]]:
        """Store layers that are new (by chain_id), the image config, and its tags.

        ``layers`` are `LayerSpec` (or ``(diff_id, entries, size)``) base first, or a
        function that produces them *inside* the write transaction (so a loader can
        stream layer contents into the blob store and a failure appends nothing). It
        is given the transaction and, per layer of ``diff_ids``, whether that chain is
        already stored; it returns None for those, which are not read again.

        Returns the image id, the tags it now has, and per layer whether it existed.
        """

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, tuple[str, list[str], list[bool]]]:
            out: Decision = []
            if callable(layers):
                if diff_ids is None:
                    raise ValueError(
                        "diff_ids are needed when layers are prepared in the transaction"
                    )
                ids = list(diff_ids)
                chains = chain_ids(ids)
                specs: list[LayerSpec | None] = list(layers(tx, [c in host.layers for c in chains]))
            else:
                given = [LayerSpec(*spec) for spec in layers]
                specs = list(given)
                ids = [spec.diff_id for spec in given]
                chains = chain_ids(ids)
            existed = []
            parent: str | None = None
            total = 0
            for spec, diff_id, chain in zip(specs, ids, chains, strict=True):
                layer = host.layers.get(chain)
                existed.append(layer is not None)
                new = next(
                    (e for e in out if isinstance(e, ev.LayerRegistered) and e.chain_id == chain),
                    None,
                )
                if layer is not None:
                    total += layer.size
                elif new is not None:
                    total += new.size
                else:
                    if spec is None:
                        raise ValueError(f"layer {diff_id} is not stored and was not given")
                    table = tuple(tx.put_blob(encode_table(spec.entries)))
                    out.append(
                        ev.LayerRegistered(
                            chain_id=chain,
                            diff_id=diff_id,
                            parent=parent,
                            size=spec.size,
                            table=table,
                            entries=len(spec.entries),
                            tar_split=tuple(spec.tar_split),
                        )
                    )
                    total += spec.size
                parent = chain
            if image_id not in host.images:
                out.append(
                    ev.ImageRegistered(
                        image_id=image_id,
                        config=tuple(tx.put_blob(config)),
                        diff_ids=tuple(ids),
                        chain_id=chains[-1] if chains else None,
                        volumes=tuple(volumes),
                        created=created,
                        size=total,
                    )
                )
            current = host.images[image_id].tags if image_id in host.images else []
            for ref in tags:
                norm = normalize_image_ref(ref)
                if norm not in current:
                    out.append(ev.ImageTagged(image_id=image_id, ref=norm))
            return out, (image_id, [normalize_image_ref(t) for t in tags], existed)

        return self._execute(cmd, args or {"image_id": image_id, "tags": list(tags)}, decide)

    def tag(self, source: str, target: str) -> str:
        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            image = find_image(host, source)
            ref = normalize_image_ref(target)
            if host.tags.get(ref) == image.id:
                return [], ref
            return [ev.ImageTagged(image_id=image.id, ref=ref)], ref

        return self._execute("image tag", {"source": source, "target": target}, decide)

    def remove_image(self, ref: str, *, force: bool = False) -> list[tuple[str, str]]:
        """``docker rmi``: untag, and delete the image when no tag is left.

        Returns Docker's output lines as (``Untagged``|``Deleted``, what).
        """

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, list[tuple[str, str]]]:
            image = find_image(host, ref)
            norm = normalize_image_ref(ref)
            by_tag = host.tags.get(norm) == image.id
            users = [c for c in host.containers.values() if c.image_id == image.id]
            running = [c for c in users if c.running]
            if running and (not by_tag or len(image.tags) <= 1):
                raise ImageInUseError(image.id[7:], running[0].id, running=True)
            if by_tag and len(image.tags) > 1:
                return [ev.ImageUntagged(image_id=image.id, ref=norm)], [("Untagged", norm)]
            if users and not force:
                if by_tag:
                    raise ConflictError(
                        f'conflict: unable to remove repository reference "{ref}" (must force) - '
                        f"container {users[0].id[:12]} is using its referenced image {image.id[7:19]}"
                    )
                raise ImageInUseError(image.id[7:], users[0].id, running=False)
            if not by_tag and len(image.tags) > 1 and not force:
                raise ConflictError(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
            out: Decision = [ev.ImageUntagged(image_id=image.id, ref=t) for t in image.tags]
            lines = [("Untagged", t) for t in image.tags]
            out.append(ev.ImageRemoved(image_id=image.id))
            lines.append(("Deleted", image.id))
            for chain in reversed(image.chain_ids):
                layer = host.layers.get(chain)
                if layer is not None and layer.images <= 1:
                    lines.append(("Deleted", chain))
            return out, lines

        return self._execute("image rm", {"image": ref, "force": force}, decide)

    # -- containers ------------------------------------------------------------

    def create(
        self,
        image: str,
        *,
        name: str | None = None,
        volumes: Sequence[str] = (),
        mounts: Sequence[str] = (),
        tmpfs: Sequence[str] = (),
        auto_remove: bool = False,
        discard_on: str | None = None,
        command: str = "",
        start: bool = False,
    ) -> str:
        """``docker create`` (or ``docker run`` with ``start=True``): returns the container id."""
        args: dict[str, Any] = {
            "image": image,
            "name": name,
            "volumes": list(volumes),
            "mounts": list(mounts),
            "tmpfs": list(tmpfs),
            "auto_remove": auto_remove,
            "discard_on": discard_on,
            "command": command,
        }
        specs = [parse_volume_flag(v) for v in volumes]
        specs += [parse_mount_flag(m) for m in mounts]
        specs += [parse_tmpfs_flag(t) for t in tmpfs]
        check_duplicates(specs)
        if discard_on is not None and discard_on not in DISCARD_POLICIES:
            raise InvalidParameterError(
                f"invalid --discard-on value {discard_on!r}: use 'stop' or 'remove'"
            )
        if name is not None:
            name = name.removeprefix("/")
            if not NAME_PATTERN.match(name):
                raise InvalidContainerNameError(name)

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            img = find_image(host, image)
            cname = name
            if cname is not None:
                owner = host.names.get(cname)
                if owner is not None:
                    raise NameInUseError(cname, owner)
            else:
                cname = self.ids.new_name()
                while cname in host.names:
                    cname = self.ids.new_name()
            out: Decision = []
            final: list[Mount] = []
            new_volumes: set[str] = set()
            lower = host.layer_cache.flattened(img.top_chain, host.layers)
            targets = {m.target for m in specs}
            # An image VOLUME becomes an anonymous volume unless something is mounted there.
            image_vols = [
                Mount(type=VOLUME, source="", target=fs.normalize(v), anonymous=True, flag="image")
                for v in img.volumes
                if fs.normalize(v) not in targets
            ]
            for spec in [*specs, *image_vols]:
                m = spec  # an anonymous volume's spec gets the name drawn for it
                if m.type == VOLUME:
                    existing = lower.get(m.target)
                    if existing is not None and existing.kind != DIR:
                        raise InvalidMountError(
                            f"cannot mount volume over existing file, file exists {m.target}"
                        )
                    source = m.source
                    if not source:
                        source = self.ids.new_id()
                        out.append(
                            ev.VolumeCreated(
                                name=source, anonymous=True, labels={ANONYMOUS_LABEL: ""}
                            )
                        )
                        new_volumes.add(source)
                        m = _replace(m, source=source)
                    elif source not in host.volumes and source not in new_volumes:
                        out.append(ev.VolumeCreated(name=source))
                        new_volumes.add(source)
                elif m.type == BIND and m.source not in host.host_files:
                    if not m.create_source:
                        raise BindSourceMissingError(m.source)
                    _host_mkdir_events(host, m.source, out)
                elif m.type == BIND and host.host_files[m.source].kind not in (DIR, FILE):
                    raise BindSourceMissingError(m.source)
                final.append(m)
            cid = self.ids.new_id()
            policy = discard_on or host.settings.get("discard_on", "stop")
            out.append(
                ev.ContainerCreated(
                    container=cid,
                    name=cname,
                    image_id=img.id,
                    image_ref=image,
                    mounts=tuple(m.to_data() for m in final if m.type != TMPFS),
                    tmpfs=tuple(m.to_data() for m in final if m.type == TMPFS),
                    discard_on=policy,
                    auto_remove=auto_remove,
                    command=command,
                )
            )
            # An empty volume mounted over image content gets a copy of it, once, at create.
            for m in final:
                if m.type != VOLUME or m.nocopy:
                    continue
                vol = host.volumes.get(m.source)
                empty = vol is None or not vol.files
                here = lower.get(m.target)
                has_content = here is not None and any(
                    p != m.target and fs.is_below(p, m.target) for p in lower
                )
                if empty and has_content and not _populated_earlier(out, m.source):
                    out.append(ev.VolumePopulated(name=m.source, container=cid, target=m.target))
            if start:
                out.append(ev.ContainerStarted(container=cid))
            return out, cid

        return self._execute("run" if start else "create", args, decide)

    def _container_command(
        self,
        name: str,
        ref: str,
        decide: Callable[[Host, Container], Decision],
        args: Mapping[str, Any] | None = None,
    ) -> str:
        def run(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            c = find_container(host, ref)
            return decide(host, c), c.id

        return self._execute(name, {"container": ref, **(args or {})}, run, owned=True)

    def start(self, ref: str) -> str:
        def decide(host: Host, c: Container) -> Decision:
            if c.state == _RUNNING:
                return []  # Docker answers 304: already running, nothing to do
            if c.state == _PAUSED:
                raise ContainerPausedError(
                    c.id, "cannot start a paused container, try unpause instead"
                )
            if c.state == _DEAD:
                raise ConflictError("container is marked for removal and cannot be started")
            out: Decision = []
            for m in c.mounts:
                # -v recreates a bind source that went missing, as the daemon does at start.
                if m.type == BIND and m.create_source and m.source not in host.host_files:
                    _host_mkdir_events(host, m.source, out)
            out.append(ev.ContainerStarted(container=c.id))
            return out

        return self._container_command("start", ref, decide)

    def stop(self, ref: str) -> str:
        def decide(host: Host, c: Container) -> Decision:
            if not c.running:
                return []  # 304: already stopped
            out: Decision = [ev.ContainerStopped(container=c.id, exit_code=STOP_EXIT_CODE)]
            return out + _auto_remove(host, c)

        return self._container_command("stop", ref, decide)

    def kill(self, ref: str, signal: str = "SIGKILL") -> str:
        name, num = parse_signal(signal)

        def decide(host: Host, c: Container) -> Decision:
            if not c.running:
                raise ContainerNotRunningError(c.id)
            out: Decision = [ev.ContainerKilled(container=c.id, signal=name, exit_code=128 + num)]
            return out + _auto_remove(host, c)

        return self._container_command("kill", ref, decide, {"signal": signal})

    def pause(self, ref: str) -> str:
        def decide(host: Host, c: Container) -> Decision:
            if c.state == _PAUSED:
                raise ConflictError(f"container {c.id} is already paused")
            if c.state != _RUNNING:
                raise ContainerNotRunningError(c.id)
            return [ev.ContainerPaused(container=c.id)]

        return self._container_command("pause", ref, decide)

    def unpause(self, ref: str) -> str:
        def decide(host: Host, c: Container) -> Decision:
            if c.state != _PAUSED:
                raise ContainerNotPausedError(c.id)
            return [ev.ContainerUnpaused(container=c.id)]

        return self._container_command("unpause", ref, decide)

    def restart(self, ref: str) -> str:
        def decide(host: Host, c: Container) -> Decision:
            if c.state == _DEAD:
                raise ConflictError(
                    f"Cannot restart container {ref}: container is marked for removal and "
                    "cannot be started"
                )
            out: Decision = []
            if c.running:
                out.append(ev.ContainerStopped(container=c.id, exit_code=STOP_EXIT_CODE))
            out.append(ev.ContainerRestarted(container=c.id))
            return out

        return self._container_command("restart", ref, decide)

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str:
        def decide(host: Host, c: Container) -> Decision:
            out: Decision = []
            if c.running:
                if not force:
                    raise ContainerRunningError(ref, paused=c.state == _PAUSED)
                out.append(ev.ContainerKilled(container=c.id, signal="SIGKILL", exit_code=137))
            out.append(ev.ContainerRemoved(container=c.id))
            if volumes:
                out += _anonymous_volume_removals(host, c)
            return out

        return self._container_command("rm", ref, decide, {"force": force, "volumes": volumes})

    # -- files inside a container -------------------------------------------------

    def _file_command(
        self,
        name: str,
        ref: str,
        args: Mapping[str, Any],
        decide: Callable[[Host, Container, WriteTxn], Decision],
    ) -> str:
        """Run a command on a running container's files; ``args`` begin with ``container``."""

        def run(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            c = find_container(host, ref)
            if c.state == _PAUSED:
                raise ContainerPausedError(
                    c.id, f"Container {c.id} is paused, unpause the container before exec"
                )
            if c.state != _RUNNING:
                raise ContainerNotRunningError(c.id)
            return decide(host, c, tx), c.id

        return self._execute(name, args, run, owned=True)

    def write_file(
        self, ref: str, path: str, data: bytes, *, append: bool = False, mode: int = 0o644
    ) -> str:
        """Write (or with ``append``, append) ``data`` to a file, making missing parents."""
        p = _check_path("write", path)
        op = "append" if append else "write"

        def decide(host: Host, c: Container, tx: WriteTxn) -> Decision:
            where = _writable(host, c, op, p)
            current = host.lookup(c, p)
            if current is None:
                _check_ancestors(host.lookup, c, op, p, create=True)  # _check_parents
            elif current.kind == DIR:
                raise FileSystemError(op, p, "Is a directory")
            # (A path that is there has parent dirs: the write or copy that made it
            # checked them, and a dir with something in it cannot become a file.)
            chunks = tuple(tx.put_blob(data))
            if append:
                return [
                    ev.FileAppended(container=c.id, path=p, chunks=chunks, size=len(data), **where)
                ]
            return [
                ev.FileWritten(
                    container=c.id, path=p, chunks=chunks, size=len(data), mode=mode, **where
                )
            ]

        # the bytes themselves are in the blob store; the command records their size
        return self._file_command(
            op, ref, {"container": ref, "path": p, "size": len(data), "mode": mode}, decide
        )

    def delete(self, ref: str, path: str, *, recursive: bool = False) -> str:
        p = _check_path("rm", path)

        def decide(host: Host, c: Container, tx: WriteTxn) -> Decision:
            current = host.lookup(c, p)
            if current is None:
                raise FileSystemError("rm", p, "No such file or directory")
            if current.kind == DIR and not recursive:
                raise FileSystemError("rm", p, "Is a directory")
            _check_not_mountpoint(c, "rm", p, below=recursive)
            where = _writable(host, c, "rm", p)
            return [ev.FileDeleted(container=c.id, path=p, **where)]

        return self._file_command(
            "rm", ref, {"container": ref, "path": p, "recursive": recursive}, decide
        )

    def mkdir(self, ref: str, path: str, *, parents: bool = False, mode: int = 0o755) -> str:
        p = _check_path("mkdir", path)

        def decide(host: Host, c: Container, tx: WriteTxn) -> Decision:
            current = host.lookup(c, p)
            if current is not None:
                if parents and current.kind == DIR:
                    return []
                raise FileSystemError("mkdir", p, "File exists")
            where = _writable(host, c, "mkdir", p)
            _check_parents(host, c, "mkdir", p, create=parents)
            return [ev.DirCreated(container=c.id, path=p, mode=mode, **where)]

        return self._file_command(
            "mkdir", ref, {"container": ref, "path": p, "parents": parents, "mode": mode}, decide
        )

    def rename(self, ref: str, src: str, dst: str) -> str:
        s, d = _check_path("mv", src), _check_path("mv", dst)

        def decide(host: Host, c: Container, tx: WriteTxn) -> Decision:
            entry = host.lookup(c, s)
            if entry is None:
                raise FileSystemError("mv", s, "No such file or directory")
            _check_not_mountpoint(c, "mv", s, below=True)
            _check_not_mountpoint(c, "mv", d, below=False)
            ms, md = c.mount_for(s), c.mount_for(d)
            if ms is not md:
                raise FileSystemError("mv", f"{s} -> {d}", "Invalid cross-device link")
            where = _writable(host, c, "mv", s)
            if fs.is_below(d, s) and d != s:
                raise FileSystemError("mv", f"{s} -> {d}", "Invalid argument")
            if ms is None and entry.kind == DIR and _lower_dir(host, c, s):
                # overlay2 without redirect_dir refuses to rename a lower directory.
                raise FileSystemError("mv", f"{s} -> {d}", "Invalid cross-device link")
            target = host.lookup(c, d)
            if target is not None and target.kind == DIR and entry.kind != DIR:
                raise FileSystemError("mv", d, "Is a directory")
            if target is not None and target.kind != DIR and entry.kind == DIR:
                raise FileSystemError("mv", d, "Not a directory")
            if target is not None and target.kind == DIR and _has_children(host, c, d):
                raise FileSystemError("mv", d, "Directory not empty")
            _check_parents(host, c, "mv", d, create=False)
            return [ev.FileRenamed(container=c.id, path=s, dest=d, **where)]

        return self._file_command("mv", ref, {"container": ref, "path": s, "dest": d}, decide)

    def chmod(self, ref: str, path: str, mode: int) -> str:
        p = _check_path("chmod", path)

        def decide(host: Host, c: Container, tx: WriteTxn) -> Decision:
            if host.lookup(c, p) is None:
                raise FileSystemError("chmod", p, "No such file or directory")
            where = _writable(host, c, "chmod", p)
            return [ev.FileModeChanged(container=c.id, path=p, mode=mode, **where)]

        return self._file_command("chmod", ref, {"container": ref, "path": p, "mode": mode}, decide)

    # -- volumes -------------------------------------------------------------

    def volume_create(
        self,
        name: str | None = None,
        *,
        driver: str = "local",
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> str:
        if name is not None:
            check_volume_name(name)
        args = {
            "name": name,
            "driver": driver,
            "labels": dict(labels or {}),
            "options": dict(options or {}),
        }

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            vname = name or self.ids.new_id()
            existing = host.volumes.get(vname)
            if existing is not None:
                if existing.driver != driver:
                    raise ConflictError(
                        f"create {vname}: volume name must be unique: driver "
                        f"'{existing.driver}' already has volume '{vname}'"
                    )
                return [], vname  # Docker returns the existing volume
            return [
                ev.VolumeCreated(
                    name=vname,
                    driver=driver,
                    labels=dict(labels or {}),
                    options=dict(options or {}),
                )
            ], vname

        return self._execute("volume create", args, decide)

    def volume_remove(self, names: Sequence[str], *, force: bool = False) -> list[str]:
        """``docker volume rm``; all named volumes go, or none (the first refusal wins)."""

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, list[str]]:
            out: Decision = []
            removed: list[str] = []
            for name in names:
                vol = host.volumes.get(name)
                if vol is None or name in removed:
                    if force:
                        continue
                    raise NoSuchVolumeError(name, "get")
                if vol.refs:
                    raise VolumeInUseError(name, list(vol.refs))
                out.append(ev.VolumeRemoved(name=name))
                removed.append(name)
            return out, removed

        return self._execute("volume rm", {"names": list(names), "force": force}, decide)

    def volume_prune(self, *, all_volumes: bool = False) -> tuple[list[str], int]:
        """Remove unused local volumes: anonymous ones only, unless ``all_volumes``.

        Returns the removed names and the bytes reclaimed.
        """

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, tuple[list[str], int]]:
            gone = [
                v
                for v in host.volumes.values()
                if not v.refs
                and v.driver == "local"
                and not v.options
                and (all_volumes or v.anonymous)
            ]
            size = sum(fs.tree_size(v.files) for v in gone)
            return [ev.VolumeRemoved(name=v.name) for v in gone], ([v.name for v in gone], size)

        return self._execute("volume prune", {"all": all_volumes}, decide)

    # -- the simulated host ----------------------------------------------------

    def host_mkdir(self, path: str, *, parents: bool = False) -> str:
        p = _check_path("mkdir", path)

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            current = host.host_files.get(p)
            if current is not None or p == "/":
                if parents and (p == "/" or (current is not None and current.kind == DIR)):
                    return [], p
                raise FileSystemError("mkdir", p, "File exists")
            _check_host_parents(host, "mkdir", p, create=parents)
            return [ev.HostDirCreated(path=p)], p

        return self._execute("host mkdir", {"path": p, "parents": parents}, decide)

    def host_write(self, path: str, data: bytes, *, append: bool = False) -> str:
        p = _check_path("write", path)

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, str]:
            current = host.host_files.get(p)
            if p == "/" or (current is not None and current.kind == DIR):
                raise FileSystemError("write", p, "Is a directory")
            _check_host_parents(host, "write", p, create=True)
            chunks = tuple(tx.put_blob(data))
            return [ev.HostFileWritten(path=p, chunks=chunks, size=len(data), append=append)], p

        return self._execute("host write", {"path": p, "size": len(data), "append": append}, decide)

    # -- settings ----------------------------------------------------------------

    def record(
        self,
        groups: Sequence[tuple[Command | None, str, Sequence[NewEvent]]],
        *,
        blobs: Iterable[bytes] = (),
    ) -> list[Envelope]:
        """Append events recorded elsewhere (an import, a replayed fact), all or nothing.

        Each group is one command's events with that command and its session. They
        are validated by folding them into the head state: an event the current state
        makes impossible (a second container with the same id, a lifecycle step the
        table forbids) refuses the whole batch, and nothing is appended.
        """

        def run(tx: WriteTxn) -> list[Envelope]:
            host = self._sync(tx)
            for content in blobs:
                tx.put_blob(content)
            out: list[Envelope] = []
            for cmd, session, events in groups:
                envs = tx.append(list(events), session=session, cmd=cmd)
                self._fold_own(host, tx, envs)
                out += envs
            return out

        return self.log.write(run)

    def set_default_discard(self, policy: str) -> None:
        if policy not in DISCARD_POLICIES:
            raise InvalidParameterError(
                f"invalid discard policy {policy!r}: use 'stop' or 'remove'"
            )

        def decide(host: Host, tx: WriteTxn) -> tuple[Decision, None]:
            if host.settings.get("discard_on", "stop") == policy:
                return [], None
            return [ev.SettingChanged(key="discard_on", value=policy)], None

        self._execute("config", {"discard_on": policy}, decide)


# -- helpers ------------------------------------------------------------------------


def _replace(m: Mount, **changes: Any) -> Mount:
    data = m.to_data()
    data.update(changes)
    return Mount.from_data(data)


def _populated_earlier(out: Decision, volume: str) -> bool:
    return any(isinstance(e, ev.VolumePopulated) and e.name == volume for e in out)


def _host_mkdir_events(host: Host, path: str, out: Decision) -> None:
    missing = [path]
    missing += [a for a in fs.ancestors(path) if a not in host.host_files]
    made = {e.path for e in out if isinstance(e, ev.HostDirCreated)}
    for p in reversed(missing):
        if p not in host.host_files and p not in made:
            out.append(ev.HostDirCreated(path=p))
            made.add(p)


def _auto_remove(host: Host, c: Container) -> Decision:
    """``--rm``: when the container exits it is removed with its anonymous volumes."""
    if not c.auto_remove:
        return []
    return [ev.ContainerRemoved(container=c.id), *_anonymous_volume_removals(host, c)]


def _anonymous_volume_removals(host: Host, c: Container) -> Decision:
    out: Decision = []
    for m in c.mounts:
        if m.type != VOLUME or not m.anonymous:
            continue
        vol = host.volumes.get(m.source)
        # "volume in use" is ignored here: a shared anonymous volume survives.
        if vol is not None and set(vol.refs) <= {c.id}:
            out.append(ev.VolumeRemoved(name=m.source))
    return out


def _writable(host: Host, c: Container, op: str, path: str) -> dict[str, str]:
    """Refuse writes to read-only mounts; say where the change lands (for the event)."""
    m = c.mount_for(path)
    if m is None:
        return {}
    if not m.rw:
        raise FileSystemError(op, path, "Read-only file system")
    if m.type == VOLUME:
        return {"volume": m.source}
    if m.type == BIND:
        return {"host_path": m.source}
    return {}


def _check_parents(host: Host, c: Container, op: str, path: str, *, create: bool) -> None:
    _check_ancestors(host.lookup, c, op, path, create=create)


def _check_host_parents(host: Host, op: str, path: str, *, create: bool) -> None:
    _check_ancestors(_host_lookup, host.host_files, op, path, create=create)


def _host_lookup(files: Mapping[str, Entry], path: str) -> Entry | None:
    return files.get(path)


def _check_ancestors(
    lookup: Callable[[W, str], Entry | None], where: W, op: str, path: str, *, create: bool
) -> None:
    """Refuse a path whose parent is missing (unless ``create``) or is not a directory.

    ``lookup(where, ancestor)`` finds each ancestor of the normalised ``path``.
    """
    # Nearest first, by slicing at each "/" (posixpath.dirname per level costs more;
    # every file write checks its parents).
    i = path.rfind("/")
    while i > 0:
        entry = lookup(where, path[:i])
        if entry is None:
            if not create:
                raise FileSystemError(op, path, "No such file or directory")
            i = path.rfind("/", 0, i)
            continue
        if entry.kind != DIR:
            raise FileSystemError(op, path, "Not a directory")
        # The nearest existing dir decides; everything above it exists too.
        return


def _check_not_mountpoint(c: Container, op: str, path: str, *, below: bool) -> None:
    for m in c.mounts:
        if m.target == path or (below and fs.is_below(m.target, path)):
            raise FileSystemError(op, path, "Device or resource busy")


def _lower_dir(host: Host, c: Container, path: str) -> bool:
    upper = c.rw.get(path)
    if upper is not None and upper.opaque:
        # Re-created over a whiteout: a pure upper dir, which overlayfs can rename.
        return False
    lower = host.lower(c)
    entry = lower.get(path)
    return entry is not None and entry.kind == DIR and rw_visible_in_lower(c.rw, lower, path)


def _has_children(host: Host, c: Container, path: str) -> bool:
    if any(m.target != path and fs.is_below(m.target, path) for m in c.mounts):
        return True  # a mount point below it
    m = c.mount_for(path)
    if m is not None:
        # inside a volume, bind or tmpfs: what the mount's tree holds below it
        tree, key = host.mount_tree(c, m, path)
        return any(p != key and fs.is_below(p, key) for p in tree)
    lower = host.lower(c)
    for p in (*c.rw, *lower):
        if p != path and fs.is_below(p, path) and host.lookup(c, p) is not None:
            return True
    return False
