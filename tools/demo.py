"""``dockstate demo``: the storage story, told on real commands against a fresh store.

Each step prints the command it runs and that command's real output, with a
line or two of narrative: shared image layers, a writable layer lost at stop,
a volume that survives its containers, a bind mount that writes to the host,
and a look back in time at the file that was lost.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from dockstate.tools.context import Context

WIDTH = 88


@contextlib.contextmanager
def _context_dir() -> Iterator[Path]:
    """The bundled build context (Dockerfiles, rootfs, site) as a real directory."""
    with resources.as_file(resources.files("dockstate.tools") / "demo_context") as path:
        yield Path(path)


class _Story:
    def __init__(self, store: str, pause: bool) -> None:
        self.store, self.pause = store, pause

    def say(self, text: str) -> None:
        print()
        for para in text.strip().split("\n\n"):
            print(textwrap.fill(" ".join(para.split()), WIDTH))
        sys.stdout.flush()

    def heading(self, text: str) -> None:
        print()
        print(f"== {text} ".ljust(WIDTH, "="))
        if self.pause and sys.stdin.isatty():
            input("(press Enter) ")

    def run(self, *argv: str) -> int:
        from dockstate.tools.cli import main

        shown = " ".join(shlex.quote(a) for a in argv)
        print(f"\n$ dockstate {shown}")
        sys.stdout.flush()
        status = main(["--store", self.store, *argv])
        sys.stdout.flush()
        if status != 0:
            print(f"(exit status {status})")
        return status

    def head(self) -> int:
        from dockstate.tools.store import open_store

        with open_store(self.store) as log:
            return log.head().seq


def demo(ctx: Context) -> int:
    given = ctx.store_path
    store = tempfile.mkdtemp(prefix="dockstate-demo-") if given is None else given
    story = _Story(store, ctx.args.pause)
    with _context_dir() as context:
        return _tell(story, str(context), given is None)


def _tell(s: _Story, context: str, fresh: bool) -> int:
    print("dockstate demo: Docker's storage model, recorded event by event.")
    print(f"Store: {s.store}" + (" (a fresh temporary store)" if fresh else ""))
    print(f"Every command below runs as: dockstate --store {s.store} ...")

    s.heading("1. Images are stacks of read-only layers, shared between images")
    s.say(
        """Build a base image from a bundled Dockerfile. COPY and RUN make layers; CMD only
        changes the image's metadata (an empty_layer history entry)."""
    )
    s.run("build", "-t", "demo/base:1", "-f", f"{context}/base.Dockerfile", context)
    s.say("""A second image built FROM the first reuses its layers: they are stored once.""")
    s.run("build", "-t", "demo/web:1", "-f", f"{context}/web.Dockerfile", context)
    s.run("image", "history", "demo/web:1")
    s.say(
        """Save the web image as a docker-save archive, remove it, and load it back: the
        base layers are already in the store, so only the web layers are loaded."""
    )
    archive = str(Path(s.store) / "web.tar")
    s.run("image", "save", "-o", archive, "demo/web:1")
    s.run("image", "rm", "demo/web:1")
    s.run("image", "load", "-i", archive)
    s.run("system", "df", "-v")

    s.heading("2. A container's writable layer, and what a stop discards")
    s.say(
        """Run a container and write into /var/lib/web_data. The write lands in the
        container's writable layer, on top of the image's read-only layers."""
    )
    s.run("run", "--name", "web1", "demo/web:1")
    s.run("fs", "write", "web1", "/var/lib/web_data/notes.txt", "--data", "orders for tuesday")
    s.run("fs", "write", "web1", "/var/lib/web_data/status", "--data", "busy")
    s.run("diff", "web1")
    before_stop = s.head()
    s.say(
        """Stop it. dockstate's default policy is the seed's model, discard_on=stop: the
        writable layer is discarded when the container stops. The audit lists what went:
        every file that lived only in that layer, who wrote it and when. (status was
        copied up from the image on first write: that copy is lost, the image's file is not.)"""
    )
    s.run("stop", "web1")
    s.run("audit", "web1")
    s.say(
        """Real Docker keeps the writable layer until `docker rm`. Ask for that with
        --discard-on remove (or `dockstate config --discard-on remove` for the store):
        then a stop loses only tmpfs contents, and the audit says so."""
    )
    s.run("run", "--name", "web1b", "--discard-on", "remove", "--tmpfs", "/run/cache", "demo/web:1")
    s.run("fs", "write", "web1b", "/var/lib/web_data/notes.txt", "--data", "kept until rm")
    s.run("fs", "write", "web1b", "/run/cache/session", "--data", "in memory only")
    s.run("stop", "web1b")
    s.run("audit", "web1b")

    s.heading("3. A named volume outlives its containers")
    s.run("volume", "create", "Vol_A")
    s.run("run", "--name", "web2", "-v", "Vol_A:/var/lib/web_data", "demo/web:1")
    s.say(
        """The empty volume was populated from the image's /var/lib/web_data at create
        (Docker does this once, for empty volumes, unless nocopy). Now write to it."""
    )
    s.run("fs", "write", "web2", "/var/lib/web_data/orders.db", "--data", "order 1: 3 widgets")
    s.run("stop", "web2")
    s.run("rm", "web2")
    s.run("audit", "web2")
    s.say("""A new container on the same volume finds the data there.""")
    s.run("run", "--name", "web3", "-v", "Vol_A:/var/lib/web_data", "demo/web:1")
    s.run("fs", "cat", "web3", "/var/lib/web_data/orders.db")
    s.run("volume", "files", "Vol_A")

    s.heading("4. A bind mount writes straight to the host")
    s.run("host", "mkdir", "/backup")
    s.run(
        "run",
        "--name",
        "web4",
        "--mount",
        "type=bind,source=/backup,target=/var/lib/web_data",
        "demo/web:1",
    )
    s.run("fs", "write", "web4", "/var/lib/web_data/backup-1.tar", "--data", "a backup")
    s.run("host", "ls", "/backup")
    s.run("host", "cat", "/backup/backup-1.tar")

    s.heading("5. Time travel: the lost file is still in the record")
    s.say(
        f"""Every read command takes --at (a seq, an ISO time, or -10m). As of seq
        {before_stop}, just before web1 stopped, its notes were still there:"""
    )
    s.run("fs", "ls", "web1", "/var/lib/web_data", "--at", str(before_stop))
    s.run("fs", "cat", "web1", "/var/lib/web_data/notes.txt", "--at", str(before_stop))
    s.run("history", "web1:/var/lib/web_data/notes.txt")

    s.heading("6. The log is tamper-evident")
    s.say("""verify checks the hash chain and replays every event through the lifecycle.""")
    status = s.run("verify")
    s.say(
        """That was the whole story. Try `dockstate --store ... log`, `events --since 0
        --until now`, `ps -a`, or `audit --format json`."""
    )
    return status
