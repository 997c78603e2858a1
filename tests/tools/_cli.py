"""Running the installed ``dockstate`` CLI in a subprocess, for the end-to-end tests.

End-to-end tests call the real entry point (the ``dockstate`` script next to the
interpreter) exactly as a person would, and check exit code, stdout and stderr.
Every call also checks that stderr never carries a traceback: a user's mistake
is one ``Error: ...`` line, anything else is a bug.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockstate.eventlog import GENESIS_HASH, LmdbEventLog

_SCRIPT = Path(sys.executable).with_name("dockstate")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dockstate.tools"]

#: The test image's Dockerfile: two layers (COPY, RUN), an image VOLUME, and a CMD.
DOCKERFILE = """\
FROM scratch
COPY files/ /app/
RUN mkdir -p /data /etc && echo "seed" > /data/seed.txt && echo "conf" > /etc/app.conf
VOLUME /data
CMD ["/app/run"]
"""

#: What ``COPY files/ /app/`` puts in the image.
APP_FILES = {"hello.txt": "hello\n", "sub/deep.txt": "deep\n"}


@dataclass(frozen=True)
class Result:
    """What one ``dockstate`` invocation did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


def clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKSTATE_")}
    env.update(extra or {})
    return env


class Dockstate:
    """``dockstate --store STORE ...`` in a subprocess, plus the checks every test repeats."""

    def __init__(self, store: Path, workdir: Path) -> None:
        self.store = store
        self.workdir = workdir

    def argv(self, *args: str) -> list[str]:
        return [*COMMAND, "--store", str(self.store), *args]

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> Result:
        proc = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            input=stdin,
            env=clean_env(env),
            cwd=self.workdir,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run, expect exit 0 and a quiet stderr; return stdout."""
        r = self(*args, env=env)
        assert r.code == 0, f"dockstate {' '.join(args)} exited {r.code}: {r.err}"
        assert r.err == "", r.err
        return r.out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args))

    def json_lines(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self.ok(*args).splitlines()]

    def head(self) -> tuple[int, bytes]:
        """The log's head (seq, hash), read in this process: the whole log is fixed by it."""
        if not (self.store / "data.mdb").exists():
            return (0, GENESIS_HASH)  # what a store created now would say
        with LmdbEventLog(self.store, clock=time.time_ns, readonly=True) as log:
            h = log.head()
            return (h.seq, h.hash)

    def refused(self, *args: str, message: str, code: int = 1, out: str = "") -> Result:
        """Run a command Docker would refuse: one exact error line, the log untouched."""
        before = self.head()
        r = self(*args)
        assert (r.code, r.err, r.out) == (code, f"Error: {message}\n", out)
        assert self.head() == before, "a refused command changed the log"
        return r

    def usage_error(self, *args: str) -> Result:
        """argparse's refusal: exit 2, a usage line, no change."""
        before = self.head()
        r = self(*args)
        assert r.code == 2, r
        assert r.err.startswith("usage: dockstate"), r.err
        assert r.out == ""
        assert self.head() == before
        return r

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(None),
            cwd=self.workdir,
        )


def write_context(root: Path, dockerfile: str = DOCKERFILE) -> Path:
    """A build context with ``Dockerfile`` and the ``files/`` COPY reads."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in APP_FILES.items():
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def copy_store(template: Path, dest: Path) -> Path:
    """A copy of a closed store: cheaper than building its image again."""
    shutil.copytree(template, dest)
    return dest


def read_line(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """One line of a follower's stdout, failing after ``timeout`` instead of hanging."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            pytest.fail(f"no output within {timeout} s")
    return proc.stdout.readline()
