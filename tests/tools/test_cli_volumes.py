"""Volume verbs end to end: create, ls, inspect, rm, prune, files, cat, in Docker's shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.tools._cli import Dockstate

REFERENCE = Path("/work/shared/reference/docker-json")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "docker"
NAME_CHARS = (
    '"{name}" includes invalid characters for a local volume name, only '
    '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
    "use absolute path"
)


def _docker_volume_keys() -> set[str]:
    return set(json.loads((FIXTURES / "volumes" / "volume-inspect.json").read_text())[0])


class TestCreateAndList:
    def test_create_ls_and_inspect(self, ds: Dockstate):
        """Named and generated names, labels and options, and Docker's ls and inspect shapes."""
        assert ds.ok("volume", "create", "data", "--label", "team=web", "-o", "size=1m") == "data\n"
        generated = ds.ok("volume", "create").strip()
        assert re.fullmatch(r"[0-9a-f]{64}", generated)
        assert ds.ok("volume", "create", "data") == "data\n"  # Docker: an existing name is a no-op

        names = sorted([generated, "data"])
        assert ds.ok("volume", "ls").splitlines() == [
            "DRIVER   VOLUME NAME",
            *(f"local    {n}" for n in names),
        ]
        assert ds.ok("volume", "ls", "-q").split() == names
        rows = ds.json_lines("volume", "ls", "--format", "json")
        assert rows[names.index("data")] == {
            "Driver": "local",
            "Labels": "team=web",
            "Links": "N/A",
            "Mountpoint": "/var/lib/docker/volumes/data/_data",
            "Name": "data",
            "Scope": "local",
            "Size": "N/A",
        }
        docker_ls_keys = set(
            json.loads((REFERENCE / "engine-volume-ls.jsonl").read_text().splitlines()[0])
        )
        assert set(rows[0]) == docker_ls_keys

        out = ds.ok("volume", "inspect", "data")
        assert out.startswith("[\n    {\n")
        (vol,) = json.loads(out)
        assert set(vol) == _docker_volume_keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", vol.pop("CreatedAt"))
        assert vol == {
            "Driver": "local",
            "Labels": {"team": "web"},
            "Mountpoint": "/var/lib/docker/volumes/data/_data",
            "Name": "data",
            "Options": {"size": "1m"},
            "Scope": "local",
        }
        (plain,) = ds.json("volume", "inspect", generated)
        assert (plain["Labels"], plain["Options"]) == (None, None)

    def test_create_refuses_names_docker_refuses(self, ds: Dockstate):
        """Too short, and characters outside Docker's set, in Docker's words."""
        ds.refused(
            "volume",
            "create",
            "a",
            message="create a: volume name is too short, names should be at least two alphanumeric characters",
        )
        for name in ("bad!name", "bad/name", "_ab"):
            ds.refused(
                "volume", "create", name, message=f"create {name}: " + NAME_CHARS.format(name=name)
            )
        ds.refused(
            "volume", "create", "--label", "=x", "vv", message="invalid label '=x': use KEY=VALUE"
        )
        ds.refused(
            "volume",
            "create",
            "--at",
            "1",
            "vv",
            message="--at is for read commands: 'volume create' changes the store and always acts now",
        )

    def test_ls_at_an_earlier_moment(self, ds: Dockstate):
        """volume ls --at shows the volumes that existed then."""
        ds.ok("volume", "create", "first")
        seq = ds.head()[0]
        ds.ok("volume", "create", "second")
        ds.ok("volume", "rm", "first")
        assert ds.ok("volume", "ls", "-q") == "second\n"
        assert ds.ok("volume", "ls", "-q", "--at", str(seq)) == "first\n"
        assert ds.ok("volume", "ls", "-q", "--at", "-10m") == ""
        (then,) = ds.json("volume", "inspect", "--at", str(seq), "first")
        assert then["Name"] == "first"


class TestContents:
    def test_volume_data_outlives_its_containers(self, app: Dockstate):
        """Write through a container, remove it, read the volume; a new container sees the data."""
        app.ok("run", "--name", "one", "-v", "store:/var/lib/db", "app:1")
        app.ok("fs", "write", "one", "/var/lib/db/orders.db", "--data", "order 1")
        app.ok("fs", "mkdir", "one", "/var/lib/db/sub")
        app.ok("fs", "write", "one", "/var/lib/db/sub/x", "--data", "x")
        app.ok("rm", "-f", "one")

        assert app.ok("volume", "cat", "store", "/orders.db") == "order 1"
        assert app.ok("volume", "cat", "store", "/sub/x") == "x"
        files = app.json("volume", "files", "store", "--format", "json")
        assert [(f["name"], f["path"], f["type"], f["size"]) for f in files] == [
            ("orders.db", "/orders.db", "file", 7),
            ("sub", "/sub", "dir", 0),
        ]
        table = app.ok("volume", "files", "store", "/sub").splitlines()
        assert table[0] == "MODE         SIZE   MODIFIED                   NAME"
        assert re.fullmatch(r"-rw-r--r--   1      \S+Z   x", table[1]), table[1]

        app.ok("run", "--name", "two", "-v", "store:/srv", "app:1")
        assert app.ok("fs", "cat", "two", "/srv/orders.db") == "order 1"

    def test_an_empty_volume_is_populated_from_the_image(self, app: Dockstate):
        """A new empty volume mounted over an image directory gets the image's files copied in."""
        app.ok("volume", "create", "fresh")
        app.ok("create", "--name", "web", "-v", "fresh:/app", "app:1")
        names = [f["name"] for f in app.json("volume", "files", "fresh", "--format", "json")]
        assert names == ["hello.txt", "sub"]
        assert app.ok("volume", "cat", "fresh", "/hello.txt") == "hello\n"

    def test_cat_at_a_seq_before_the_file_was_overwritten(self, app: Dockstate):
        """volume cat and volume files take --at."""
        app.ok("run", "--name", "web", "-v", "vol:/v", "app:1")
        app.ok("fs", "write", "web", "/v/f", "--data", "old")
        seq = app.head()[0]
        app.ok("fs", "write", "web", "/v/f", "--data", "new")
        assert app.ok("volume", "cat", "vol", "/f") == "new"
        assert app.ok("volume", "cat", "vol", "/f", "--at", str(seq)) == "old"

    def test_contents_refusals(self, ds: Dockstate):
        """Unknown volumes and paths."""
        ds.ok("volume", "create", "vol")
        ds.refused(
            "volume",
            "cat",
            "vol",
            "/nope",
            message="cat volume vol:/nope: No such file or directory",
        )
        ds.refused("volume", "cat", "nope", "/x", message="get nope: no such volume")
        ds.refused("volume", "files", "nope", message="get nope: no such volume")
        ds.refused(
            "volume", "cat", "vol", "rel/x", message="invalid path 'rel/x': must be absolute"
        )


class TestRemove:
    def test_rm_refuses_a_volume_in_use_and_an_unknown_one(self, app: Dockstate):
        """In use by a container (even a stopped one) or unknown: refused, nothing removed."""
        cid = app.ok("create", "--name", "web", "-v", "busy:/busy", "app:1").strip()
        app.ok("volume", "create", "idle")
        app.refused("volume", "rm", "busy", message=f"remove busy: volume is in use - [{cid}]")
        app.refused("volume", "rm", "nope", message="get nope: no such volume")
        r = app("volume", "inspect", "nope")
        assert (r.code, r.out, r.err) == (1, "[]\n", "Error: get nope: no such volume\n")

        assert app.ok("volume", "rm", "-f", "idle", "nope") == "idle\n"
        app.ok("rm", "web")
        assert app.ok("volume", "rm", "busy") == "busy\n"
        assert "busy" not in app.ok("volume", "ls", "-q")

    def test_prune_removes_unused_anonymous_volumes_and_all_with_a(self, app: Dockstate):
        """prune: unused anonymous volumes; -a: every unused local volume without options."""
        app.ok("create", "--name", "gone", "app:1")  # an anonymous volume for /data
        (c,) = app.json("inspect", "gone")
        anon = c["Mounts"][0]["Name"]
        app.ok("rm", "gone")
        app.ok("run", "--name", "user", "-v", "used:/u", "app:1")
        app.ok("volume", "create", "named")
        app.ok("volume", "create", "opts", "-o", "type=tmpfs")

        assert app.ok("volume", "prune", "-f").splitlines() == [
            "Deleted Volumes:",
            anon,
            "",
            "Total reclaimed space: 5B",
        ]
        assert app.ok("volume", "prune", "-a").splitlines() == [
            "Deleted Volumes:",
            "named",
            "",
            "Total reclaimed space: 0B",
        ]
        assert app.ok("volume", "prune") == "Total reclaimed space: 0B\n"
        in_use = {m["Name"] for m in app.json("inspect", "user")[0]["Mounts"]}
        assert set(app.ok("volume", "ls", "-q").split()) == {"opts", *in_use}
        assert "used" in in_use
