"""Mount specs: ``-v``, ``--mount`` and ``--tmpfs`` parsed with Docker's rules and messages.

Parsing is pure: it says what the user asked for. Whether a named volume or a
bind source exists, and what to create, is decided by the ``create`` command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from dockstate.core.errors import InvalidMountError, InvalidVolumeNameError
from dockstate.core.fs import PathError, normalize
from dockstate.core.names import NAME_PATTERN

VOLUME: Final = "volume"
BIND: Final = "bind"
TMPFS: Final = "tmpfs"

_RW_MODES: Final = {"rw", "ro"}
_LABEL_MODES: Final = {"z", "Z"}
_PROPAGATION: Final = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_CONSISTENCY: Final = {"consistent", "cached", "delegated"}
_TRUE: Final = {"1", "t", "T", "TRUE", "true", "True", ""}
_FALSE: Final = {"0", "f", "F", "FALSE", "false", "False"}


class Mount(msgspec.Struct, frozen=True, kw_only=True):
    """One mount of a container.

    A frozen msgspec Struct (hashable, compared field by field, like a frozen dataclass):
    a snapshot holds every container's mounts, and msgspec builds a Struct in C about ten
    times faster than a dataclass.

    Attributes:
        type: ``volume``, ``bind`` or ``tmpfs``.
        source: the volume name, the host path, or "" (anonymous volume not yet named; tmpfs).
        target: the absolute path inside the container.
        rw: writable (``ro``/``readonly`` make it False).
        mode: what ``docker inspect`` shows as ``Mode``.
        nocopy: do not populate an empty volume from the image.
        propagation: bind propagation (``rprivate`` by default for binds).
        anonymous: the volume had no source (``-v /path``, image VOLUME): ``rm -v`` removes it.
        create_source: a missing bind source is created (``-v``), not refused (``--mount``).
        size: tmpfs size in bytes, 0 for no limit.
        tmpfs_mode: tmpfs root directory mode.
        flag: where the spec came from (``-v``, ``--mount``, ``--tmpfs``, ``image``).
    """

    type: str
    source: str
    target: str
    rw: bool = True
    mode: str = ""
    nocopy: bool = False
    propagation: str = ""
    anonymous: bool = False
    create_source: bool = False
    size: int = 0
    tmpfs_mode: int = 0o1777
    flag: str = "-v"

    def to_data(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__struct_fields__}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Mount:
        names = cls.__struct_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def check_volume_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidVolumeNameError(name)


def _destination(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidMountError(f"invalid mount path: '{path}' mount path must be absolute")
    try:
        dest = normalize(path)
    except PathError as exc:
        raise InvalidMountError(str(exc)) from exc
    if dest == "/":
        raise InvalidMountError("invalid specification: destination can't be '/'")
    return dest


def _valid_mode(mode: str) -> bool:
    groups = [_RW_MODES, _LABEL_MODES, _PROPAGATION, {"nocopy"}, _CONSISTENCY]
    seen = [0] * len(groups)
    for opt in mode.split(","):
        for i, group in enumerate(groups):
            if opt in group:
                seen[i] += 1
                break
        else:
            return False
    return all(n <= 1 for n in seen)


def parse_volume_flag(spec: str) -> Mount:
    """``-v [SRC:]DST[:OPTS]`` as Docker's Linux parser reads it."""
    parts = spec.split(":")
    if len(parts) > 3 or not spec:
        raise InvalidMountError(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        source, dest, mode = "", parts[0], ""
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            # "/foo:ro": an anonymous volume cannot take options through -v.
            raise InvalidMountError(f"invalid volume specification: '{spec}'")
        source, dest, mode = parts[0], parts[1], ""
    else:
        source, dest, mode = parts
        if not _valid_mode(mode):
            raise InvalidMountError(f"invalid mode: {mode}")
    target = _destination(dest)
    opts = set(mode.split(",")) if mode else set()
    rw = "ro" not in opts
    propagation = next((o for o in opts if o in _PROPAGATION), "")
    if not source:
        return Mount(type=VOLUME, source="", target=target, anonymous=True, flag="-v")
    if source.startswith("/") or source.startswith("."):
        host = normalize(source if source.startswith("/") else "/" + source)
        return Mount(
            type=BIND,
            source=host,
            target=target,
            rw=rw,
            mode=mode,
            propagation=propagation or "rprivate",
            create_source=True,
            flag="-v",
        )
    check_volume_name(source)
    return Mount(
        type=VOLUME,
        source=source,
        target=target,
        rw=rw,
        # The daemon labels a local named volume "z" when -v gave no mode.
        mode=mode or "z",
        nocopy="nocopy" in opts,
        flag="-v",
    )


def _bool(key: str, value: str | None, field: str) -> bool:
    if value is None or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidMountError(f"invalid value for '{key}' in '{field}': {value}")


_MOUNT_KEYS: Final = {
    "type",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "consistency",
    "bind-propagation",
    "bind-recursive",
    "bind-create-src",
    "bind-nonrecursive",
    "volume-nocopy",
    "volume-subpath",
    "volume-driver",
    "volume-label",
    "volume-opt",
    "tmpfs-size",
    "tmpfs-mode",
}


def parse_mount_flag(spec: str) -> Mount:
    """``--mount type=...,source=...,target=...[,readonly][,volume-nocopy]...``."""
    kind, source, target = VOLUME, "", ""
    rw, nocopy, propagation, create_src = True, False, "", False
    size, tmode = 0, 0o1777
    kinds_used: set[str] = set()
    for field in spec.split(","):
        if not field:
            continue
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if key not in _MOUNT_KEYS:
            if not eq:
                raise InvalidMountError(f"invalid field '{field}' must be a key=value pair")
            raise InvalidMountError(f"unknown option '{key}' in '{field}'")
        if not eq and key not in {"readonly", "ro", "volume-nocopy", "bind-create-src"}:
            raise InvalidMountError(f"invalid field '{field}' must be a key=value pair")
        val = value if eq else None
        if key == "type":
            if value not in {VOLUME, BIND, TMPFS}:
                raise InvalidMountError(f'invalid mount config: mount type unknown: "{value}"')
            kind = value
        elif key in {"source", "src"}:
            source = value
        elif key in {"target", "dst", "destination"}:
            target = value
        elif key in {"readonly", "ro"}:
            rw = not _bool(key, val, field)
        elif key == "volume-nocopy":
            nocopy = _bool(key, val, field)
            kinds_used.add(VOLUME)
        elif key == "bind-propagation":
            if value not in _PROPAGATION:
                raise InvalidMountError(f"invalid value for '{key}' in '{field}': {value}")
            propagation = value
            kinds_used.add(BIND)
        elif key == "bind-create-src":
            create_src = _bool(key, val, field)
            kinds_used.add(BIND)
        elif key.startswith("bind-"):
            kinds_used.add(BIND)
        elif key.startswith("volume-"):
            kinds_used.add(VOLUME)
        elif key == "tmpfs-size":
            size = parse_size(value)
            kinds_used.add(TMPFS)
        elif key == "tmpfs-mode":
            try:
                tmode = int(value, 8)
            except ValueError:
                raise InvalidMountError(
                    f"invalid value for '{key}' in '{field}': {value}"
                ) from None
            kinds_used.add(TMPFS)
    for other in kinds_used - {kind}:
        raise InvalidMountError(f"cannot mix '{other}-*' options with mount type '{kind}'")
    if not target:
        raise InvalidMountError(
            f'invalid mount config for type "{kind}": field Target must not be empty'
        )
    dest = _destination(target)
    if kind == BIND:
        if not source:
            raise InvalidMountError(
                'invalid mount config for type "bind": field Source must not be empty'
            )
        if not source.startswith("/"):
            raise InvalidMountError(
                f"invalid mount config for type \"bind\": invalid mount path: '{source}' "
                "mount path must be absolute"
            )
        return Mount(
            type=BIND,
            source=normalize(source),
            target=dest,
            rw=rw,
            mode="" if rw else "ro",
            propagation=propagation or "rprivate",
            create_source=create_src,
            flag="--mount",
        )
    if kind == TMPFS:
        if source:
            raise InvalidMountError(
                'invalid mount config for type "tmpfs": field Source must not be specified'
            )
        return Mount(
            type=TMPFS, source="", target=dest, rw=rw, size=size, tmpfs_mode=tmode, flag="--mount"
        )
    if source:
        check_volume_name(source)
    return Mount(
        type=VOLUME,
        source=source,
        target=dest,
        rw=rw,
        mode="z" if source else "",
        nocopy=nocopy,
        anonymous=not source,
        flag="--mount",
    )


_SIZE: Final = re.compile(r"^(\d+)([kmgKMG]?)[bB]?$")


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise InvalidMountError(f"invalid size: '{text}'")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def parse_tmpfs_flag(spec: str) -> Mount:
    """``--tmpfs /path[:opts]`` where opts are ``mount -t tmpfs -o`` options."""
    dest, _, opts = spec.partition(":")
    target = _destination(dest)
    rw, size, tmode = True, 0, 0o1777
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        if key == "ro":
            rw = False
        elif key == "size":
            size = parse_size(value)
        elif key == "mode":
            try:
                tmode = int(value, 8)
            except ValueError:
                raise InvalidMountError(f"invalid tmpfs mode: '{value}'") from None
    return Mount(
        type=TMPFS, source="", target=target, rw=rw, size=size, tmpfs_mode=tmode, flag="--tmpfs"
    )


def check_duplicates(mounts: Iterable[Mount]) -> None:
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidMountError(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
