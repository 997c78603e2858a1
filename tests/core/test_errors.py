"""Domain errors (core.errors): one root, Docker's categories, sentences built from facts."""

from __future__ import annotations

import inspect

import pytest

from dockstate.core import errors
from dockstate.core.errors import (
    AmbiguousReferenceError,
    ConflictError,
    ContainerRunningError,
    DockstateError,
    ImageInUseError,
    InvalidParameterError,
    LifecycleViolation,
    NoSuchVolumeError,
    NotFoundError,
    StorageError,
    VolumeInUseError,
)
from dockstate.core.state import InconsistentLogError

CATEGORIES = (NotFoundError, ConflictError, InvalidParameterError, StorageError)
#: Errors about the log or the simulated kernel rather than a Docker API category.
UNCATEGORISED = {"FileSystemError", "LifecycleViolation"}


def test_every_domain_error_descends_from_dockstate_error():
    """All exported errors share the root the CLI catches."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert inspect.isclass(cls)
        assert issubclass(cls, DockstateError), name
    assert issubclass(InconsistentLogError, DockstateError)


def test_every_refusal_has_one_of_dockers_categories():
    """Concrete refusals are not found, conflict, invalid parameter or storage errors."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls in CATEGORIES or cls is DockstateError or name in UNCATEGORISED:
            continue
        assert issubclass(cls, CATEGORIES), name


def test_errors_keep_their_facts():
    """The message is built from attributes a caller can read."""
    err = VolumeInUseError("data", ["a" * 64, "b" * 64])
    assert (err.name, err.container_ids) == ("data", ["a" * 64, "b" * 64])
    assert str(err) == f"remove data: volume is in use - [{'a' * 64}, {'b' * 64}]"

    err2 = ContainerRunningError("web", paused=False)
    assert (err2.ref, err2.paused) == ("web", False)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (NoSuchVolumeError("gone"), "get gone: no such volume"),
        (NoSuchVolumeError("gone", "remove"), "remove gone: no such volume"),
        (
            ImageInUseError("a" * 64, "c" * 64, running=False),
            f"conflict: unable to delete {'a' * 12} (must be forced) - image is being used by "
            f"stopped container {'c' * 12}",
        ),
        (
            AmbiguousReferenceError("container", "ab", ["ab" + "1" * 62, "ab" + "2" * 62]),
            "multiple IDs found with provided prefix: ab",
        ),
        (
            LifecycleViolation(7, "d" * 64, "ContainerPaused", "exited"),
            f"event 7 (ContainerPaused) is not possible for container {'d' * 12} in state exited",
        ),
    ],
)
def test_messages(error: DockstateError, message: str):
    """Each error's sentence says what was refused and why."""
    assert str(error) == message
