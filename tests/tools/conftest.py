"""Fixtures for the end-to-end CLI tests: temporary stores, empty or holding ``app:1``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools._cli import Dockstate, copy_store, write_context


@pytest.fixture
def ds(tmp_path: Path) -> Dockstate:
    """An empty store (not created yet) for one test."""
    work = tmp_path / "work"
    work.mkdir()
    return Dockstate(tmp_path / "store", work)


@pytest.fixture(scope="session")
def image_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding ``app:1``, built once by ``dockstate build`` for the whole run."""
    root = tmp_path_factory.mktemp("template")
    ds = Dockstate(root / "store", root)
    out = ds.ok("build", "-t", "app:1", str(write_context(root / "ctx")))
    assert out.endswith("naming to docker.io/library/app:1 done\n")
    return ds.store


@pytest.fixture
def app(tmp_path: Path, image_template: Path) -> Dockstate:
    """A store of one test's own holding the image ``app:1`` (and nothing else)."""
    work = tmp_path / "work"
    work.mkdir()
    return Dockstate(copy_store(image_template, tmp_path / "store"), work)
