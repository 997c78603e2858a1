"""The root of every error dockstate reports to a user.

It lives here, at the bottom of the import graph, so that every layer can raise
and catch it; `dockstate.core.errors` re-exports it with the domain's errors.
"""

from __future__ import annotations


class DockstateError(Exception):
    """Something a user asked for was refused or could not be done.

    The message is one sentence a user can act on; the CLI prints it as
    ``Error: <message>`` and exits 1.
    """


class NotFoundError(DockstateError):
    """The named object does not exist (Docker answers 404)."""


class ConflictError(DockstateError):
    """The request conflicts with the current state (Docker answers 409)."""


class InvalidParameterError(DockstateError):
    """The request itself is malformed (Docker answers 400)."""


class EmptySubjectError(InvalidParameterError):
    """An event names the empty string as one of its subjects."""

    def __init__(self) -> None:
        super().__init__("an event's subject id must not be empty")


class StorageError(DockstateError):
    """The store cannot be opened, read or written."""


class StoreFormatError(StorageError):
    """The store was written by a format this version does not read."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path, self.found, self.supported = path, found, supported
        super().__init__(
            f"store {path} was written by a newer dockstate (log format {found}); "
            f"this dockstate reads format {supported} and older: upgrade dockstate to open it"
        )


class CorruptStoreError(StorageError):
    """A stored record cannot be decoded."""
