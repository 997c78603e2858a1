"""The facts dockstate records, one frozen class per kind of event.

An event's *tag* (``ContainerStarted``) is its stable name in the log, never a
module path. Events evolve additively: a new field gets a default and old
fields keep their name and type; anything else is a new tag or a versioned
upcaster in `UPCASTERS`. A record's data carries ``_v`` only when its version
is above 1.

Projections fold envelopes by tag over their plain ``data`` dicts, which is
what makes a million-event replay affordable; these classes are the typed view
of the same records for commands, tests and scripts (`to_record` /
`from_record` round-trip exactly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar

E = TypeVar("E", bound="Event")

#: tag -> class, filled by `_register`.
EVENT_TYPES: dict[str, type[Event]] = {}

#: (tag, version) -> function bringing that version's data to the next version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events; subclasses set `TAG` and are registered by tag."""

    TAG: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        if self.VERSION > 1:
            data["_v"] = self.VERSION
        return data

    def subjects(self) -> tuple[str, ...]:
        """The ids this event is indexed under (see `subject`)."""
        return ()


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    # dataclasses.fields() builds a tuple per call; every recorded event asks.
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def subject(kind: str, ident: str) -> str:
    """The index id of an object: ``c:<id>``, ``v:<name>``, ``i:<id>``, ``l:<chain>``, ``h:<path>``."""
    return f"{kind}:{ident}"


def _register(cls: type[E]) -> type[E]:
    if not cls.TAG or cls.TAG in EVENT_TYPES:
        raise ValueError(f"event tag {cls.TAG!r} is empty or taken")
    EVENT_TYPES[cls.TAG] = cls
    _compile(cls)
    return cls


#: Stands for "not given" where a field's default is made by a factory.
_NOT_GIVEN: Any = object()


def _compile(cls: type[Event]) -> None:
    """Give a registered event class an ``__init__`` and a ``to_data`` of its own fields.

    Every recorded event is built and turned into data once per command, which made
    the generic versions a measurable part of a replay: a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, and the generic
    `Event.to_data` walks the field names. These are what the dataclass would make,
    spelled out per class: the same keyword-only parameters and defaults (a default
    factory is called when its field is not given), fields set through their slots,
    and the same data dict, keys in field order.
    """
    fields = dataclasses.fields(cls)
    env: dict[str, Any] = {"_NOT_GIVEN": _NOT_GIVEN}
    params, sets = [], []
    for i, f in enumerate(fields):
        env[f"_set{i}"] = getattr(cls, f.name).__set__  # the slot's member descriptor
        if f.default is not dataclasses.MISSING:
            env[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_factory{i}"] = f.default_factory
            params.append(f"{f.name}=_NOT_GIVEN")
            sets.append(f"    if {f.name} is _NOT_GIVEN:\n        {f.name} = _factory{i}()\n")
        else:
            params.append(f.name)
        sets.append(f"    _set{i}(self, {f.name})\n")
    items = [f"{f.name!r}: self.{f.name}" for f in fields]
    if cls.VERSION > 1:
        items.append(f"'_v': {cls.VERSION!r}")
    body = "".join(sets) or "    pass\n"
    source = (
        f"def __init__(self, *, {', '.join(params)}):\n{body}"
        f"def to_data(self):\n    return {{{', '.join(items)}}}\n"
    )
    exec(source, env)  # generated from the class's own field names
    for name in ("__init__", "to_data"):
        fn = env[name]
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        fn.__module__ = cls.__module__
        setattr(cls, name, fn)


def from_record(tag: str, data: Mapping[str, Any]) -> Event:
    """The typed event of a stored record, upcast to the current version."""
    cls = EVENT_TYPES[tag]
    fields = dict(data)
    version = int(fields.pop("_v", 1))
    while version < cls.VERSION:
        fields = UPCASTERS[(tag, version)](fields)
        version += 1
    names = cls.__dataclass_fields__
    return cls(**{k: _thaw(v) for k, v in fields.items() if k in names})


def _thaw(value: Any) -> Any:
    # The log returns arrays as tuples; events hold tuples too, so only
    # containers nested in lists need converting.
    if isinstance(value, list):
        return tuple(_thaw(v) for v in value)
    return value


# -- images -------------------------------------------------------------------


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LayerRegistered(Event):
    """A read-only layer entered the layer store (``Loading layer``)."""

    TAG: ClassVar[str] = "LayerRegistered"
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    #: blob digests of the msgpack table of the layer's entries (see `core.fs`).
    table: tuple[bytes, ...]
    entries: int
    #: blob digests of the layer tar's split (its bytes other than file contents, see
    #: `dockstate.tools.tarstream`), so that ``image save`` writes the tar back byte for byte.
    tar_split: tuple[bytes, ...] = ()

    def subjects(self) -> tuple[str, ...]:
        return (subject("l", self.chain_id),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageRegistered(Event):
    """An image config was stored; its id is the sha256 of the config bytes."""

    TAG: ClassVar[str] = "ImageRegistered"
    image_id: str
    #: blob digests of the raw config JSON.
    config: tuple[bytes, ...]
    diff_ids: tuple[str, ...]
    chain_id: str | None
    volumes: tuple[str, ...] = ()
    created: str = ""
    size: int = 0

    def subjects(self) -> tuple[str, ...]:
        return (subject("i", self.image_id),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageTagged(Event):
    TAG: ClassVar[str] = "ImageTagged"
    image_id: str
    ref: str

    def subjects(self) -> tuple[str, ...]:
        return (subject("i", self.image_id),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageUntagged(Event):
    TAG: ClassVar[str] = "ImageUntagged"
    image_id: str
    ref: str

    def subjects(self) -> tuple[str, ...]:
        return (subject("i", self.image_id),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImageRemoved(Event):
    TAG: ClassVar[str] = "ImageRemoved"
    image_id: str

    def subjects(self) -> tuple[str, ...]:
        return (subject("i", self.image_id),)


# -- containers ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerEvent(Event):
    """An event about one container."""

    container: str

    def subjects(self) -> tuple[str, ...]:
        return ("c:" + self.container,)  # subject("c", ...), spelled out: asked per event


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerCreated(ContainerEvent):
    """``docker create``: a container with a fresh writable layer and its mounts."""

    TAG: ClassVar[str] = "ContainerCreated"
    name: str
    image_id: str
    image_ref: str
    #: one dict per mount: type, source, target, rw, mode, nocopy (see `core.mounts.Mount`).
    mounts: tuple[Mapping[str, Any], ...] = ()
    #: tmpfs mounts: target, size, mode.
    tmpfs: tuple[Mapping[str, Any], ...] = ()
    #: when the writable layer is discarded: "stop" (the seed's model) or "remove" (Docker).
    discard_on: str = "stop"
    auto_remove: bool = False
    command: str = ""

    def subjects(self) -> tuple[str, ...]:
        vols = tuple(subject("v", m["source"]) for m in self.mounts if m["type"] == "volume")
        binds = tuple(subject("h", m["source"]) for m in self.mounts if m["type"] == "bind")
        return (subject("c", self.container), subject("i", self.image_id), *vols, *binds)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerStarted(ContainerEvent):
    """``docker start``: the process runs."""

    TAG: ClassVar[str] = "ContainerStarted"


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPaused(ContainerEvent):
    """``docker pause``: its processes are frozen."""

    TAG: ClassVar[str] = "ContainerPaused"


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerUnpaused(ContainerEvent):
    """``docker unpause``."""

    TAG: ClassVar[str] = "ContainerUnpaused"


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerStopped(ContainerEvent):
    """``docker stop``: SIGTERM (then SIGKILL); the process exited."""

    TAG: ClassVar[str] = "ContainerStopped"
    exit_code: int = 0


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerKilled(ContainerEvent):
    """``docker kill``: a signal ended the process."""

    TAG: ClassVar[str] = "ContainerKilled"
    signal: str = "SIGKILL"
    exit_code: int = 137


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerDied(ContainerEvent):
    """The process exited by itself (observed on a real engine)."""

    TAG: ClassVar[str] = "ContainerDied"
    exit_code: int = 0


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerRestarted(ContainerEvent):
    """``docker restart``: started again (after a stop if it was running)."""

    TAG: ClassVar[str] = "ContainerRestarted"


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ContainerRemoved(ContainerEvent):
    """``docker rm``: the container and its writable layer are gone."""

    TAG: ClassVar[str] = "ContainerRemoved"


# -- files inside a container ---------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileEvent(ContainerEvent):
    """A change to a path inside a container.

    ``volume`` / ``host_path`` name where the change landed (the volume, or the
    bind's host path); both empty means the writable layer or a tmpfs.
    """

    path: str
    volume: str = ""
    host_path: str = ""

    def subjects(self) -> tuple[str, ...]:
        # `subject` spelled out: asked once per recorded file event
        if not self.volume and not self.host_path:
            return ("c:" + self.container,)
        out = ["c:" + self.container]
        if self.volume:
            out.append("v:" + self.volume)
        if self.host_path:
            out.append("h:" + self.host_path)
        return tuple(out)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileWritten(FileEvent):
    """A file was created or overwritten with the content of ``chunks``."""

    TAG: ClassVar[str] = "FileWritten"
    chunks: tuple[bytes, ...] = ()
    size: int = 0
    mode: int = 0o644


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileAppended(FileEvent):
    """Bytes were appended to a file: ``chunks`` hold the new bytes only."""

    TAG: ClassVar[str] = "FileAppended"
    chunks: tuple[bytes, ...] = ()
    size: int = 0


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileDeleted(FileEvent):
    """A file, or a directory and everything below it, was deleted."""

    TAG: ClassVar[str] = "FileDeleted"


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DirCreated(FileEvent):
    """A directory was made, with any missing parents."""

    TAG: ClassVar[str] = "DirCreated"
    mode: int = 0o755


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileRenamed(FileEvent):
    """``path`` was renamed to ``dest``."""

    TAG: ClassVar[str] = "FileRenamed"
    dest: str = ""


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FileModeChanged(FileEvent):
    """chmod."""

    TAG: ClassVar[str] = "FileModeChanged"
    mode: int = 0o644


# -- volumes and the host -------------------------------------------------------


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VolumeCreated(Event):
    TAG: ClassVar[str] = "VolumeCreated"
    name: str
    anonymous: bool = False
    driver: str = "local"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def subjects(self) -> tuple[str, ...]:
        return (subject("v", self.name),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VolumeRemoved(Event):
    TAG: ClassVar[str] = "VolumeRemoved"
    name: str

    def subjects(self) -> tuple[str, ...]:
        return (subject("v", self.name),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VolumePopulated(Event):
    """An empty volume received the image's content under its mount target at create."""

    TAG: ClassVar[str] = "VolumePopulated"
    name: str
    container: str
    target: str

    def subjects(self) -> tuple[str, ...]:
        return (subject("v", self.name), subject("c", self.container))


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostFileWritten(Event):
    """A file on the (simulated) host was written, e.g. the source side of a bind."""

    TAG: ClassVar[str] = "HostFileWritten"
    path: str
    chunks: tuple[bytes, ...] = ()
    size: int = 0
    mode: int = 0o644
    append: bool = False

    def subjects(self) -> tuple[str, ...]:
        return (subject("h", self.path),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HostDirCreated(Event):
    TAG: ClassVar[str] = "HostDirCreated"
    path: str
    mode: int = 0o755

    def subjects(self) -> tuple[str, ...]:
        return (subject("h", self.path),)


@_register
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SettingChanged(Event):
    """A store-wide setting (e.g. the default ``discard_on``) changed."""

    TAG: ClassVar[str] = "SettingChanged"
    key: str
    value: str


CONTAINER_TRIGGERS: Final[Mapping[str, str]] = {
    "ContainerStarted": "start",
    "ContainerPaused": "pause",
    "ContainerUnpaused": "unpause",
    "ContainerStopped": "stop",
    "ContainerKilled": "kill",
    "ContainerDied": "die",
    "ContainerRestarted": "restart",
    "ContainerRemoved": "destroy",
}
