"""Helpers for the forensics tests: the CLI run in this process, an image store, a session.

Most forensics tests need a store with a recorded session in it, and running every
recording command in a subprocess would cost half a second each. So sessions are
recorded through the real entry point, ``dockstate.tools.cli.main``, called in this
process; the behaviours a user sees from a terminal (session verbs, ``--step``, exit
codes of ``verify``/``replay``) are also checked in a subprocess by the tests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import msgpack
import pytest

from dockstate.eventlog import LmdbEventLog
from dockstate.eventlog.envelope import Envelope
from dockstate.tools.cli import main
from tests.tools._cli import APP_FILES, DOCKERFILE, Result

# The same test image and result shape as the subprocess tests use.
Run = Result


@contextmanager
def _environment(extra: Mapping[str, str] | None) -> Iterator[None]:
    """No ``DOCKSTATE_*`` variable but ``extra`` while the CLI runs."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DOCKSTATE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(extra or {})
    try:
        yield
    finally:
        for key in extra or {}:
            os.environ.pop(key, None)
        os.environ.update(saved)


def cli(store: Path, *args: str, env: Mapping[str, str] | None = None) -> Run:
    """``dockstate --store STORE ARGS``, through the real entry point, in this process."""
    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(raw_out, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(raw_err, encoding="utf-8", write_through=True)
    with _environment(env), redirect_stdout(out), redirect_stderr(err):
        code = main(["--store", str(store), *args])
    return Run(code, raw_out.getvalue().decode(), raw_err.getvalue().decode())


def ok(store: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run, expect exit 0 and a quiet stderr; return stdout."""
    r = cli(store, *args, env=env)
    assert r.code == 0, f"dockstate {' '.join(args)} exited {r.code}: {r.err}"
    assert r.err == "", r.err
    return r.out


_SCRIPT = Path(sys.executable).with_name("dockstate")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dockstate.tools"]


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKSTATE_")}
    env.update(extra or {})
    return env


def real_cli(store: Path, *args: str, env: Mapping[str, str] | None = None, stdin: str = "") -> Run:
    """``dockstate --store STORE ARGS`` in a subprocess, stdin a pipe (not a terminal)."""
    proc = subprocess.run(
        [*COMMAND, "--store", str(store), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=_clean_env(env),
        timeout=120,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Run(proc.returncode, proc.stdout, proc.stderr)


def real_ok(store: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """`real_cli`, expecting exit 0 and a quiet stderr; returns stdout."""
    r = real_cli(store, *args, env=env)
    assert r.code == 0, f"dockstate {' '.join(args)} exited {r.code}: {r.err}"
    assert r.err == "", r.err
    return r.out


def write_context(root: Path) -> Path:
    """A build context: the Dockerfile above and the files its COPY reads."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    for name, text in APP_FILES.items():
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


_IMAGE_STORES: dict[Path, Path] = {}


def image_store(factory: pytest.TempPathFactory) -> Path:
    """A closed store holding ``app:1`` built by ``dockstate build``, once per test run.

    Copy it (`copy_store`) before writing to it.
    """
    base = factory.getbasetemp()
    if base not in _IMAGE_STORES:
        root = factory.mktemp("forensics-image")
        store = root / "store"
        out = ok(store, "build", "-t", "app:1", str(write_context(root / "ctx")))
        assert out.endswith("naming to docker.io/library/app:1 done\n")
        _IMAGE_STORES[base] = store
    return _IMAGE_STORES[base]


def new_store(factory: pytest.TempPathFactory, dest: Path) -> Path:
    """A store of a test's own at ``dest``, holding ``app:1`` only."""
    return copy_store(image_store(factory), dest)


def copy_store(src: Path, dest: Path) -> Path:
    """A copy of a closed store."""
    shutil.copytree(src, dest)
    return dest


#: A session touching every kind of storage and every recorded verb of the domain:
#: a named volume, a bind mount, a tmpfs, an image VOLUME (anonymous volume); writes,
#: appends, deletes (of an image file: a whiteout), mkdir, mv, chmod; the lifecycle;
#: volume create/rm/prune; the host side of a bind; a setting and an image tag.
SESSION_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("volume", "create", "orders"),
    ("host", "mkdir", "-p", "/srv/www"),
    ("host", "write", "/srv/www/index.html", "--data", "<h1>host</h1>\n"),
    ("run", "--name", "web", "-v", "orders:/var/lib/orders", "-v", "/srv/www:/www",
     "--tmpfs", "/tmp", "app:1"),
    ("fs", "write", "web", "/var/lib/orders/orders.db", "--data", "order 1\n"),
    ("fs", "write", "--append", "web", "/var/lib/orders/orders.db", "--data", "order 2\n"),
    ("fs", "write", "web", "/app/cache.txt", "--data", "cached\n"),
    ("fs", "mkdir", "-p", "web", "/app/logs/old"),
    ("fs", "mv", "web", "/app/cache.txt", "/app/logs/cache.txt"),
    ("fs", "chmod", "web", "0600", "/app/logs/cache.txt"),
    ("fs", "rm", "web", "/app/hello.txt"),
    ("fs", "write", "web", "/tmp/scratch", "--data", "scratch\n"),
    ("fs", "write", "web", "/www/page.html", "--data", "<p>page</p>\n"),
    ("fs", "write", "web", "/data/state.json", "--data", "{}\n"),
    ("stop", "web"),
    ("start", "web"),
    ("fs", "write", "web", "/app/again.txt", "--data", "again\n"),
    ("restart", "web"),
    ("pause", "web"),
    ("unpause", "web"),
    ("kill", "web"),
    ("create", "--name", "worker", "app:1"),
    ("start", "worker"),
    ("fs", "write", "worker", "/data/w.txt", "--data", "w\n"),
    ("fs", "rm", "-r", "worker", "/app/sub"),
    ("stop", "worker"),
    ("rm", "-v", "worker"),
    ("volume", "create", "scratch"),
    ("volume", "rm", "scratch"),
    ("volume", "create", "spare"),
    ("volume", "prune", "-a", "-f"),
    ("config", "--discard-on", "remove"),
    ("run", "--name", "keeper", "app:1"),
    ("fs", "write", "keeper", "/app/kept.txt", "--data", "kept\n"),
    ("stop", "keeper"),
    ("image", "tag", "app:1", "app:latest"),
    ("host", "write", "/srv/www/index.html", "--append", "--data", "<p>more</p>\n"),
)  # fmt: skip


def record_session(store: Path, name: str = "s1") -> None:
    """Record `SESSION_COMMANDS` in ``store`` as session ``name``."""
    ok(store, "session", "start", name)
    for args in SESSION_COMMANDS:
        ok(store, *args)
    ok(store, "session", "stop")


# -- export files, record by record -------------------------------------------------------


def records(path: Path) -> list[list[Any]]:
    """The records of an export file, as msgpack lists (``["event", bytes]``...)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
    unpacker.feed(path.read_bytes())
    return list(unpacker)


def record_offsets(path: Path) -> list[tuple[str, int, int]]:
    """(kind, start, end) byte range of every record of an export file."""
    data = path.read_bytes()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
    unpacker.feed(data)
    out = []
    pos = 0
    for item in unpacker:
        end = unpacker.tell()
        out.append((item[0], pos, end))
        pos = end
    return out


def pack_records(items: list[list[Any]]) -> bytes:
    """Records packed as the export writer packs them."""
    packer = msgpack.Packer(use_bin_type=True)
    return b"".join(packer.pack(item) for item in items)


# -- reading a store ----------------------------------------------------------------------


def head(store: Path) -> tuple[int, bytes]:
    """The log's head (seq, hash): the whole log is fixed by it."""
    if not (store / "data.mdb").exists():
        return (0, b"")
    with LmdbEventLog(store, clock=time.time_ns, readonly=True) as log:
        h = log.head()
        return (h.seq, h.hash)


def envelopes(store: Path) -> list[Envelope]:
    """Every event of a store."""
    with LmdbEventLog(store, clock=time.time_ns, readonly=True) as log:
        return list(log.read(1))


def log_json(store: Path) -> list[dict[str, Any]]:
    """``dockstate log --format json``."""
    out: list[dict[str, Any]] = json.loads(ok(store, "log", "--format", "json"))
    return out


_SESSION_STORES: dict[Path, Path] = {}


def session_store(factory: pytest.TempPathFactory) -> Path:
    """A closed store: ``app:1`` built (seq 1..4), then session s1 of `SESSION_COMMANDS`.

    Built once per test run and shared: copy it before writing to it.
    """
    base = factory.getbasetemp()
    if base not in _SESSION_STORES:
        root = factory.mktemp("forensics-session")
        store = copy_store(image_store(factory), root / "store")
        record_session(store)
        _SESSION_STORES[base] = store
    return _SESSION_STORES[base]


def session_span(store: Path, name: str = "s1") -> tuple[int, int]:
    """The first and last seq of a session, as ``session ls`` reports them."""
    rows = json.loads(ok(store, "session", "ls", "--format", "json"))
    row = next(r for r in rows if r["name"] == name)
    return row["first_seq"], row["last_seq"]


def projections(store: Path) -> dict[str, Any]:
    """What a user can read from a store, as of its head (``--at`` keeps "ago" fixed)."""
    at = str(head(store)[0])
    reads: dict[str, tuple[str, ...]] = {
        "ps": ("ps", "-a", "--format", "json", "--at", at),
        "volumes": ("volume", "ls", "--format", "json", "--at", at),
        "images": ("image", "ls", "--format", "json", "--at", at),
        "audit": ("audit", "--format", "json"),
        "df": ("system", "df", "-v", "--format", "json", "--at", at),
        "kept": ("fs", "cat", "keeper", "/app/kept.txt"),
        "lost": ("fs", "cat", "web", "/app/logs/cache.txt"),
        "orders": ("volume", "cat", "orders", "/orders.db"),
        "host": ("host", "cat", "/srv/www/index.html"),
        "host ls": ("host", "ls", "/srv/www", "--format", "json", "--at", at),
        "diff": ("diff", "web", "--format", "json"),
        "sessions": ("session", "ls", "--format", "json"),
    }
    return {name: cli(store, *args) for name, args in reads.items()}
