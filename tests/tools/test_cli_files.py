"""File verbs end to end: ``fs`` inside a container and the simulated ``host`` of bind mounts."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from tests.tools._cli import Dockstate

FILLER = b"dockstate filler data\n"


@pytest.fixture
def web(app: Dockstate) -> Dockstate:
    """``app:1`` running as ``web``."""
    app.ok("run", "--name", "web", "app:1")
    return app


class TestWrite:
    def test_data_from_size_and_append(self, web: Dockstate):
        """Content from --data, a local file, stdin, N filler bytes, and appended to."""
        local = web.workdir / "local.bin"
        local.write_bytes(b"\x00\x01binary\xff")

        assert web.ok("fs", "write", "web", "/notes/a.txt", "--data", "first") == ""
        web.ok("fs", "write", "web", "/notes/a.txt", "--data", " second", "--append")
        web.ok("fs", "write", "web", "/bin.dat", "--from", str(local))
        r = web("fs", "write", "web", "/stdin.txt", "--from", "-", stdin="piped\n")
        assert (r.code, r.err) == (0, "")
        web.ok("fs", "write", "web", "/filler", "--size", "50")
        web.ok("fs", "write", "web", "/app/hello.txt", "--data", "more\n", "--append")

        assert web.ok("fs", "cat", "web", "/notes/a.txt") == "first second"
        assert web.ok("fs", "cat", "web", "/stdin.txt") == "piped\n"
        assert web.ok("fs", "cat", "web", "/filler") == (FILLER * 3)[:50].decode()
        assert web.ok("fs", "cat", "web", "/app/hello.txt") == "hello\nmore\n"
        out = web.workdir / "bin.out"
        web.ok("cp", "web:/bin.dat", str(out))
        assert out.read_bytes() == b"\x00\x01binary\xff"

    def test_write_refusals(self, web: Dockstate):
        """Not exactly one content flag, a missing --from file, a directory, a bad mode."""
        one = "give exactly one of --data, --from or --size"
        web.refused("fs", "write", "web", "/x", message=one)
        web.refused("fs", "write", "web", "/x", "--data", "a", "--size", "3", message=one)
        web.refused(
            "fs", "write", "web", "/x", "--from", "missing", message="--from missing: no such file"
        )
        web.refused(
            "fs", "write", "web", "/x", "--size", "-3", message="--size must not be negative"
        )
        web.refused(
            "fs", "write", "web", "/app", "--data", "a", message="write /app: Is a directory"
        )
        web.refused(
            "fs",
            "write",
            "web",
            "/x",
            "--data",
            "a",
            "--mode",
            "rw",
            message="invalid mode: rw (use octal, e.g. 0644)",
        )
        web.refused(
            "fs",
            "write",
            "--at",
            "1",
            "web",
            "/x",
            "--data",
            "a",
            message="--at is for read commands: 'fs write' changes the store and always acts now",
        )
        web.refused("fs", "write", "nope", "/x", "--data", "a", message="No such container: nope")

    def test_read_only_mounts_refuse_writes(self, app: Dockstate):
        """A :ro volume and a readonly bind answer Read-only file system, as the kernel does."""
        app.ok("host", "mkdir", "/srv")
        app.ok(
            "run",
            "--name",
            "ro",
            "-v",
            "vol:/vol:ro",
            "--mount",
            "type=bind,source=/srv,target=/srv,readonly",
            "app:1",
        )
        app.refused(
            "fs",
            "write",
            "ro",
            "/vol/x",
            "--data",
            "1",
            message="write /vol/x: Read-only file system",
        )
        app.refused(
            "fs",
            "write",
            "ro",
            "/srv/x",
            "--data",
            "1",
            message="write /srv/x: Read-only file system",
        )
        app.refused("fs", "mkdir", "ro", "/srv/d", message="mkdir /srv/d: Read-only file system")


class TestTree:
    def test_mkdir_mv_chmod_rm(self, web: Dockstate):
        """mkdir [-p], mv (rename(2)), chmod, rm [-r], with the kernel's errors in between."""
        web.refused("fs", "mkdir", "web", "/a/b", message="mkdir /a/b: No such file or directory")
        web.ok("fs", "mkdir", "-p", "web", "/a/b")
        web.refused("fs", "mkdir", "web", "/a/b", message="mkdir /a/b: File exists")
        web.ok("fs", "write", "web", "/a/b/f.txt", "--data", "f")
        web.ok("fs", "mv", "web", "/a/b/f.txt", "/a/g.txt")
        web.ok("fs", "chmod", "web", "0600", "/a/g.txt")
        web.refused(
            "fs", "mv", "web", "/a/none", "/a/x", message="mv /a/none: No such file or directory"
        )
        web.refused(
            "fs",
            "chmod",
            "web",
            "0600",
            "/a/none",
            message="chmod /a/none: No such file or directory",
        )

        listing = web.json("fs", "ls", "web", "/a", "--format", "json")
        assert [(e["name"], e["type"], e["mode"], e["size"], e["layer"]) for e in listing] == [
            ("b", "dir", "0755", 0, "rw"),
            ("g.txt", "file", "0600", 1, "rw"),
        ]
        table = web.ok("fs", "ls", "web", "/a").splitlines()
        assert table[0] == "MODE         SIZE   MODIFIED                   FROM   NAME"
        assert re.fullmatch(r"drwxr-xr-x   0      \S+Z   rw     b/", table[1]), table[1]
        assert re.fullmatch(r"-rw-------   1      \S+Z   rw     g.txt", table[2]), table[2]

        web.refused("fs", "rm", "web", "/a", message="rm /a: Is a directory")
        web.refused("fs", "rm", "web", "/nope", message="rm /nope: No such file or directory")
        web.ok("fs", "rm", "-r", "web", "/a")
        web.ok("fs", "rm", "web", "/app/hello.txt")
        names = [e["name"] for e in web.json("fs", "ls", "web", "/", "--format", "json")]
        assert names == ["app", "data", "etc"]
        assert web.ok("diff", "web").splitlines() == ["C /app", "D /app/hello.txt"]

    def test_ls_shows_which_layer_each_entry_comes_from(self, web: Dockstate):
        """fs ls: image entries, the writable layer, and a volume mounted over /data."""
        web.ok("fs", "write", "web", "/data/v.txt", "--data", "in the volume")
        web.ok("fs", "write", "web", "/app/new.txt", "--data", "rw")
        (c,) = web.json("inspect", "web")
        volume = c["Mounts"][0]["Name"]

        root = {e["name"]: e["layer"] for e in web.json("fs", "ls", "web", "--format", "json")}
        assert root == {"app": "image", "data": f"volume:{volume}", "etc": "image"}
        app_dir = {
            e["name"]: e["layer"] for e in web.json("fs", "ls", "web", "/app", "--format", "json")
        }
        assert app_dir == {"hello.txt": "image", "new.txt": "rw", "sub": "image"}
        data = [e["name"] for e in web.json("fs", "ls", "web", "/data", "--format", "json")]
        assert data == ["seed.txt", "v.txt"]
        web.refused("fs", "ls", "web", "/nope", message="ls /nope: No such file or directory")

    def test_stat_says_who_wrote_a_path_and_when(self, web: Dockstate):
        """fs stat: kind, mode, size, the layer, and the event that last wrote it."""
        web.ok("fs", "write", "web", "/app/new.txt", "--data", "12345", "--mode", "0640")
        seq = web.head()[0]
        info = web.json("fs", "stat", "web", "/app/new.txt", "--format", "json")
        assert {
            k: info[k] for k in ("name", "path", "type", "mode", "size", "written_seq", "layer")
        } == {
            "name": "new.txt",
            "path": "/app/new.txt",
            "type": "file",
            "mode": "0640",
            "size": 5,
            "written_seq": seq,
            "layer": "rw",
        }
        assert info["written_by"] == "write"
        assert info["session"] == ""
        table = web.ok("fs", "stat", "web", "/app/new.txt").splitlines()
        assert table[:5] == [
            "name:         new.txt",
            "path:         /app/new.txt",
            "type:         file",
            "mode:         0640",
            "size:         5",
        ]
        image_file = web.json("fs", "stat", "web", "/app/hello.txt", "--format", "json")
        assert (image_file["layer"], image_file["written_seq"]) == ("image", None)
        web.refused("fs", "stat", "web", "/nope", message="stat /nope: No such file or directory")


class TestTimeTravel:
    def test_cat_at_a_seq_before_the_file_was_deleted(self, web: Dockstate):
        """A file written then deleted: gone now, readable --at a seq or a time in between."""
        web.ok("fs", "write", "web", "/tmp/report.txt", "--data", "v1")
        v1 = web.head()[0]
        time.sleep(0.02)
        moment = dt.datetime.now(dt.UTC).isoformat()  # ISO 8601 with an offset, +00:00
        time.sleep(0.02)
        web.ok("fs", "write", "web", "/tmp/report.txt", "--data", "v2")
        v2 = web.head()[0]
        web.ok("fs", "rm", "web", "/tmp/report.txt")

        web.refused(
            "fs",
            "cat",
            "web",
            "/tmp/report.txt",
            message="cat /tmp/report.txt: No such file or directory",
        )
        assert web.ok("fs", "cat", "web", "/tmp/report.txt", "--at", str(v1)) == "v1"
        assert web.ok("fs", "cat", "web", "/tmp/report.txt", "--at", moment) == "v1"
        assert web.ok("fs", "cat", "--at", str(v2), "web", "/tmp/report.txt") == "v2"
        names = [
            e["name"]
            for e in web.json("fs", "ls", "web", "/tmp", "--at", str(v2), "--format", "json")
        ]
        assert names == ["report.txt"]
        stat = web.json("fs", "stat", "web", "/tmp/report.txt", "--at", str(v2), "--format", "json")
        assert stat["written_seq"] == v2

    def test_files_of_a_stopped_container_are_gone_but_not_from_the_past(self, web: Dockstate):
        """After a stop discards the writable layer, --at before the stop still reads it."""
        web.ok("fs", "write", "web", "/app/notes.txt", "--data", "orders")
        before = web.head()[0]
        web.ok("stop", "web")
        web.refused(
            "fs",
            "cat",
            "web",
            "/app/notes.txt",
            message="cat /app/notes.txt: No such file or directory",
        )
        assert web.ok("fs", "cat", "web", "/app/notes.txt", "--at", str(before)) == "orders"
        assert web.ok("fs", "cat", "web", "/data/seed.txt") == "seed\n"


class TestHost:
    def test_host_mkdir_write_ls_cat(self, ds: Dockstate):
        """The simulated host: directories, files, appends, listings."""
        ds.refused("host", "mkdir", "/srv/a", message="mkdir /srv/a: No such file or directory")
        assert ds.ok("host", "mkdir", "-p", "/srv/a") == ""
        ds.refused("host", "mkdir", "/srv/a", message="mkdir /srv/a: File exists")
        ds.ok("host", "write", "/srv/a/f.txt", "--data", "one")
        ds.ok("host", "write", "/srv/a/f.txt", "--data", "+two", "--append")
        (ds.workdir / "local").write_text("from a file")
        ds.ok("host", "write", "/srv/g.txt", "--from", "local")
        ds.refused("host", "write", "/srv/a", "--data", "x", message="write /srv/a: Is a directory")
        ds.refused(
            "host", "write", "/srv/x", message="give exactly one of --data, --from or --size"
        )

        assert ds.ok("host", "cat", "/srv/a/f.txt") == "one+two"
        assert ds.ok("host", "cat", "/srv/g.txt") == "from a file"
        listing = ds.json("host", "ls", "/srv", "--format", "json")
        assert [(e["name"], e["path"], e["type"], e["size"]) for e in listing] == [
            ("a", "/srv/a", "dir", 0),
            ("g.txt", "/srv/g.txt", "file", 11),
        ]
        table = ds.ok("host", "ls", "/srv").splitlines()
        assert table[0] == "MODE         SIZE   MODIFIED                   NAME"
        assert re.fullmatch(r"drwxr-xr-x   0      \S+Z   a/", table[1]), table[1]
        ds.refused("host", "cat", "/nope", message="cat host:/nope: No such file or directory")
        ds.refused("host", "ls", "/nope", message="ls host:/nope: No such file or directory")
        ds.refused(
            "host",
            "write",
            "--at",
            "1",
            "/srv/x",
            "--data",
            "x",
            message="--at is for read commands: 'host write' changes the store and always acts now",
        )

    def test_a_bind_mount_writes_to_the_host(self, app: Dockstate):
        """A file written under a bind mount's target appears on the host; missing -v sources are made."""
        app.ok("host", "mkdir", "/backup")
        app.ok(
            "run",
            "--name",
            "bk",
            "--mount",
            "type=bind,source=/backup,target=/mnt",
            "-v",
            "/made/here:/made",
            "app:1",
        )
        app.ok("fs", "write", "bk", "/mnt/dump.sql", "--data", "dump")
        app.ok("fs", "write", "bk", "/made/x", "--data", "x")
        assert app.ok("host", "cat", "/backup/dump.sql") == "dump"
        assert app.ok("host", "cat", "/made/here/x") == "x"
        touched = app.json("history", "host:/backup/dump.sql", "--format", "json")
        assert [e["type"] for e in touched] == ["HostDirCreated", "ContainerCreated", "FileWritten"]
        assert touched[2]["data"]["path"] == "/mnt/dump.sql"
        app.ok("stop", "bk")
        app.ok("rm", "bk")
        assert app.ok("host", "cat", "/backup/dump.sql") == "dump"
        app.refused(
            "host",
            "ls",
            "--at",
            "1",
            "/backup",
            message="ls host:/backup: No such file or directory",
        )
