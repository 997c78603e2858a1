"""The packages import one way only, tools -> projections -> core -> eventlog, and the library never prints."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each package and how far down the stack it sits: a package may import only
#: packages at its own level or below.
LAYERS = {"eventlog": 0, "core": 1, "projections": 2, "tools": 3}

#: Packages whose code must never print: only tools talks to the user.
SILENT = ("eventlog", "core", "projections")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(tree: ast.AST, package: str, module: str) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every dockstate module or name imported in ``tree``."""
    here = ["dockstate", package, *Path(module).parent.parts]  # the importing module's package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield node.lineno, target
            if target == "dockstate":  # from dockstate import core
                for alias in node.names:
                    yield node.lineno, f"dockstate.{alias.name}"


def violations(source: str, package: str, module: str = "mod.py") -> list[str]:
    """Imports in ``source`` (a module of ``package``) that point up the stack."""
    found = []
    for line, name in imported(ast.parse(source), package, module):
        parts = name.split(".")
        if parts[0] != "dockstate" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        if LAYERS[parts[1]] > LAYERS[package]:
            found.append(f"{package}/{module}:{line} imports {name}")
    return found


def print_calls(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]


@pytest.mark.parametrize("package", list(LAYERS))
def test_no_package_imports_one_above_it(package: str):
    """eventlog imports no other layer, core only eventlog, projections not tools."""
    assert modules(package), f"no modules found under {package}/"
    found = []
    for path in modules(package):
        module = path.relative_to(ROOT / package).as_posix()
        found += violations(path.read_text(), package, module)

    assert found == []


@pytest.mark.parametrize("package", SILENT)
def test_library_packages_never_print(package: str):
    """Only tools prints: eventlog, core and projections have no print call."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules(package)
        for line in print_calls(path.read_text())
    ]

    assert found == []


@pytest.mark.parametrize(
    ("source", "package", "bad"),
    [
        ("import dockstate.core.events", "eventlog", True),
        ("from dockstate.projections import layers", "core", True),
        ("from dockstate import tools", "projections", True),
        ("from ..tools import cli", "core", True),
        ("from .. import tools", "projections", True),
        ("if TYPE_CHECKING:\n    from dockstate.tools.cli import main", "eventlog", True),
        ("def f():\n    import dockstate.core", "eventlog", True),
        ("from dockstate.eventlog import LmdbEventLog", "tools", False),
        ("from dockstate.core.events import Event", "projections", False),
        ("from . import blobs", "eventlog", False),
        ("from .. import eventlog", "core", False),
        ("from .errors import StorageError", "core", False),
        ("import lmdb, structlog", "eventlog", False),
    ],
)
def test_the_import_check_tells_a_wrong_import_from_a_right_one(
    source: str, package: str, bad: bool
):
    """The checker itself flags upward imports, relative or absolute, and passes the rest."""
    assert bool(violations(source, package)) is bad


def test_relative_imports_are_resolved_from_the_module_s_own_package():
    """``..`` in a subpackage module climbs to its package, not to dockstate."""
    assert violations("from ...tools import cli", "core", "sub/mod.py")
    assert not violations("from ..errors import StorageError", "core", "sub/mod.py")


def test_the_print_check_finds_print_calls_but_not_the_word():
    """A call to print is found; a method or a string named print is not."""
    assert print_calls("def f():\n    print('x')") == [2]
    assert print_calls("obj.print()\nx = 'print'\nprinter(1)") == []
