"""The domain's refusals, in Docker's words where Docker has them.

Each error keeps its facts as attributes and builds its sentence in
``__init__``. The categories are Docker's: not found (404), conflict (409),
invalid parameter (400).
"""

from __future__ import annotations

from collections.abc import Sequence

from dockstate.eventlog.errors import (
    ConflictError,
    DockstateError,
    InvalidParameterError,
    NotFoundError,
    StorageError,
)

__all__ = [
    "AmbiguousReferenceError",
    "BindSourceMissingError",
    "ConflictError",
    "ContainerNotPausedError",
    "ContainerNotRunningError",
    "ContainerPausedError",
    "ContainerRunningError",
    "DockstateError",
    "FileSystemError",
    "ImageInUseError",
    "InvalidContainerNameError",
    "InvalidMountError",
    "InvalidParameterError",
    "InvalidVolumeNameError",
    "LifecycleViolation",
    "NameInUseError",
    "NoSuchContainerError",
    "NoSuchImageError",
    "NoSuchVolumeError",
    "NotFoundError",
    "StorageError",
    "VolumeInUseError",
]


class NoSuchContainerError(NotFoundError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"No such container: {ref}")


class NoSuchImageError(NotFoundError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"No such image: {ref}")


class NoSuchVolumeError(NotFoundError):
    def __init__(self, name: str, op: str = "get") -> None:
        self.name = name
        super().__init__(f"{op} {name}: no such volume")


class AmbiguousReferenceError(InvalidParameterError):
    """An id prefix matches more than one object; moby's ``errAmbiguous`` wording."""

    def __init__(self, kind: str, ref: str, matches: Sequence[str]) -> None:
        self.kind, self.ref, self.matches = kind, ref, list(matches)
        super().__init__(f"multiple IDs found with provided prefix: {ref}")


class ContainerNotRunningError(ConflictError):
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"container {container_id} is not running")


class ContainerPausedError(ConflictError):
    """An operation that needs a running, unpaused container met a paused one."""

    def __init__(self, container_id: str, message: str) -> None:
        self.container_id = container_id
        super().__init__(message)


class ContainerNotPausedError(ConflictError):
    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        super().__init__(f"Container {container_id} is not paused")


class ContainerRunningError(ConflictError):
    """``rm`` without ``-f`` of a running or paused container (Docker >= 28 wording)."""

    def __init__(self, ref: str, paused: bool) -> None:
        self.ref, self.paused = ref, paused
        why = (
            "container is paused and must be unpaused first"
            if paused
            else "container is running: stop the container before removing or force remove"
        )
        super().__init__(f'cannot remove container "{ref}": {why}')


class NameInUseError(ConflictError):
    def __init__(self, name: str, container_id: str) -> None:
        self.name, self.container_id = name, container_id
        super().__init__(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{container_id}". You have to remove (or rename) that container to be able '
            "to reuse that name."
        )


class InvalidContainerNameError(InvalidParameterError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )


class InvalidVolumeNameError(InvalidParameterError):
    def __init__(self, name: str) -> None:
        self.name = name
        if len(name) == 1:  # Docker checks the length before the characters
            why = "volume name is too short, names should be at least two alphanumeric characters"
        else:
            why = (
                f'"{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path"
            )
        super().__init__(f"create {name}: {why}")


class VolumeInUseError(ConflictError):
    def __init__(self, name: str, container_ids: Sequence[str]) -> None:
        self.name, self.container_ids = name, list(container_ids)
        super().__init__(f"remove {name}: volume is in use - [{', '.join(container_ids)}]")


class InvalidMountError(InvalidParameterError):
    """A ``-v``, ``--mount`` or ``--tmpfs`` spec Docker would refuse."""


class BindSourceMissingError(InvalidMountError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f'invalid mount config for type "bind": bind source path does not exist: {path}'
        )


class ImageInUseError(ConflictError):
    def __init__(self, image_id: str, container_id: str, running: bool) -> None:
        self.image_id, self.container_id = image_id, container_id
        how = "cannot be forced" if running else "must be forced"
        state = "running" if running else "stopped"
        super().__init__(
            f"conflict: unable to delete {image_id[:12]} ({how}) - image is being used by "
            f"{state} container {container_id[:12]}"
        )


class FileSystemError(DockstateError):
    """A file operation inside a container failed as the kernel would fail it.

    The message ends in the errno text a shell would print
    (``Read-only file system``, ``No such file or directory``, ...).
    """

    def __init__(self, op: str, path: str, reason: str) -> None:
        self.op, self.path, self.reason = op, path, reason
        super().__init__(f"{op} {path}: {reason}")


class LifecycleViolation(DockstateError):
    """A recorded event the lifecycle forbids: the log is not a possible history."""

    def __init__(self, seq: int, container_id: str, event: str, state: str) -> None:
        self.seq, self.container_id, self.event, self.state = seq, container_id, event, state
        super().__init__(
            f"event {seq} ({event}) is not possible for container {container_id[:12]} "
            f"in state {state}"
        )
