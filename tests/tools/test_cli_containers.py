"""Container verbs end to end: create, run, start, stop, restart, pause, unpause, kill, rm, ps,
inspect, diff and cp, on the installed CLI, with Docker's shapes and Docker's refusals."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest

from tests.tools._cli import Dockstate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "docker"
PS_HEADER = "CONTAINER ID   IMAGE   COMMAND      CREATED                  STATUS"


def _docker_ps_keys() -> set[str]:
    line = (FIXTURES / "containers" / "ps-a.jsonl").read_text().splitlines()[0]
    return set(json.loads(line))


def _docker_mount_keys() -> dict[str, set[str]]:
    """The keys real Docker gives each kind of entry in ``Mounts``."""
    (inspect,) = json.loads((FIXTURES / "containers" / "inspect-mounts.json").read_text())
    return {m["Type"]: set(m) for m in inspect["Mounts"]}


def _types(ds: Dockstate, since: int) -> list[str]:
    return [e["type"] for e in ds.json("log", "--from", str(since), "--format", "json")]


class TestLifecycle:
    def test_each_verb_prints_its_ref_and_records_its_event(self, app: Dockstate):
        """Every lifecycle verb prints the reference it was given and appends its event."""
        cid = app.ok("create", "--name", "web", "app:1").strip()
        assert re.fullmatch(r"[0-9a-f]{64}", cid)
        created = app.head()[0]
        assert app.ok("start", "web") == "web\n"
        assert app.ok("pause", cid[:12]) == f"{cid[:12]}\n"
        assert app.ok("unpause", "web") == "web\n"
        assert app.ok("restart", "-t", "1", "web") == "web\n"
        assert app.ok("kill", "web") == "web\n"
        assert app.ok("start", "web") == "web\n"
        assert app.ok("stop", "web") == "web\n"
        stopped = app.head()
        # as Docker: stop of an exited container prints its name, exits 0, records nothing
        assert app.ok("stop", "web") == "web\n"
        assert app.head() == stopped

        assert _types(app, created + 1) == [
            "ContainerStarted",
            "ContainerPaused",
            "ContainerUnpaused",
            "ContainerStopped",
            "ContainerRestarted",
            "ContainerKilled",
            "ContainerStarted",
            "ContainerStopped",
        ]

    def test_inspect_state_follows_the_lifecycle(self, app: Dockstate):
        """State.Status/Running/Paused/ExitCode as inspect shows them after each step."""
        app.ok("create", "--name", "web", "app:1")
        created = app.head()[0]
        app.ok("start", "web")
        app.ok("pause", "web")
        paused = app.head()[0]
        app.ok("unpause", "web")
        app.ok("kill", "web")

        states = [
            app.json("inspect", "--at", str(seq), "web")[0]["State"] for seq in (created, paused)
        ]
        states.append(app.json("inspect", "web")[0]["State"])
        assert [(s["Status"], s["Running"], s["Paused"], s["ExitCode"]) for s in states] == [
            ("created", False, False, 0),
            ("paused", True, True, 0),
            ("exited", False, False, 137),
        ]
        assert states[0]["StartedAt"] == states[0]["FinishedAt"] == "0001-01-01T00:00:00Z"
        assert states[2]["FinishedAt"] != "0001-01-01T00:00:00Z"

    def test_run_rm_removes_the_container_and_its_anonymous_volume_at_stop(self, app: Dockstate):
        """``run --rm``: the container and the image VOLUME's anonymous volume go at stop."""
        app.ok("run", "--rm", "--name", "tmp", "app:1")
        assert app.ok("volume", "ls", "-q") != ""
        app.ok("stop", "tmp")
        assert app.ok("ps", "-a", "-q") == ""
        assert app.ok("volume", "ls", "-q") == ""


class TestRm:
    def test_rm_of_a_running_container_is_refused_then_forced(self, app: Dockstate):
        """rm without -f refuses a running container; rm -f kills and removes it."""
        app.ok("run", "--name", "web", "app:1")
        app.refused(
            "rm",
            "web",
            message='cannot remove container "web": container is running: '
            "stop the container before removing or force remove",
        )
        app.ok("pause", "web")
        app.refused(
            "rm",
            "web",
            message='cannot remove container "web": container is paused and must be unpaused first',
        )
        assert app.ok("rm", "-f", "web") == "web\n"
        assert app.ok("ps", "-a", "-q") == ""

    def test_rm_v_removes_anonymous_volumes_and_keeps_named_ones(self, app: Dockstate):
        """Plain rm keeps the anonymous volume; rm -v removes it; a named volume stays either way."""
        app.ok("run", "--name", "keep", "-v", "named:/named", "app:1")
        app.ok("run", "--name", "drop", "app:1")
        (keep,) = app.json("inspect", "keep")
        (drop,) = app.json("inspect", "drop")
        keep_anon = next(m["Name"] for m in keep["Mounts"] if m["Destination"] == "/data")
        drop_anon = next(m["Name"] for m in drop["Mounts"] if m["Destination"] == "/data")

        assert app.ok("rm", "-f", "keep") == "keep\n"
        assert app.ok("rm", "-f", "-v", "drop") == "drop\n"

        assert sorted(app.ok("volume", "ls", "-q").split()) == sorted([keep_anon, "named"])
        assert drop_anon not in app.ok("volume", "ls", "-q")

    def test_rm_of_several_reports_each_failure_and_removes_the_rest(self, app: Dockstate):
        """As Docker: each ref is tried; failures are printed after, exit 1."""
        app.ok("create", "--name", "one", "app:1")
        r = app("rm", "nope", "one")
        assert (r.code, r.out, r.err) == (1, "one\n", "Error: No such container: nope\n")
        assert app.ok("ps", "-a", "-q") == ""


class TestPs:
    def test_ps_lists_running_containers_and_ps_a_all_newest_first(self, app: Dockstate):
        """ps shows running containers only; -a adds the others; -q prints short ids."""
        a = app.ok("create", "--name", "first", "app:1").strip()
        b = app.ok("run", "--name", "second", "app:1").strip()

        running = app.ok("ps").splitlines()
        assert running[0] == (
            "CONTAINER ID   IMAGE   COMMAND      CREATED                  STATUS"
            "                  PORTS   NAMES"
        )
        assert len(running) == 2
        assert re.fullmatch(
            rf"{b[:12]}   app:1   \"/app/run\"   .+ ago +Up .+ +second", running[1]
        ), running[1]

        every = app.ok("ps", "-a").splitlines()
        assert [line[:12] for line in every[1:]] == [b[:12], a[:12]]
        assert every[2].split()[-2:] == ["Created", "first"]
        assert app.ok("ps", "-a", "-q") == f"{b[:12]}\n{a[:12]}\n"
        assert app.ok("ps", "-q") == f"{b[:12]}\n"

    def test_ps_format_json_has_dockers_keys_one_object_per_line(self, app: Dockstate):
        """``ps --format json``: one object per line, with the keys real Docker prints."""
        cid = app.ok("run", "--name", "web", "-v", "named:/named", "app:1").strip()
        app.ok("create", "--name", "idle", "app:1")

        (line,) = app.json_lines("ps", "--format", "json")
        assert set(line) == _docker_ps_keys()
        assert line["ID"] == cid[:12]
        assert (line["Names"], line["Image"], line["State"]) == ("web", "app:1", "running")
        assert line["Command"] == '"/app/run"'
        assert line["LocalVolumes"] == "2"
        assert line["Status"].startswith("Up ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC", line["CreatedAt"])
        # Docker's Mounts column: volume names (ellipsized to 15), bind sources
        anon = next(
            m for m in app.json("inspect", "web")[0]["Mounts"] if m["Destination"] == "/data"
        )
        assert sorted(line["Mounts"].split(",")) == sorted([anon["Name"][:14] + "…", "named"])

        rows = app.json_lines("ps", "-a", "--format", "json")
        assert [r["Names"] for r in rows] == ["idle", "web"]
        assert rows[0]["Status"] == "Created"

    def test_ps_at_a_moment_before_a_container_existed(self, app: Dockstate):
        """--at SEQ, --at an ISO time and --at -10m answer as of that moment."""
        app.ok("create", "--name", "early", "app:1")
        seq = app.head()[0]
        time.sleep(0.05)
        moment = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        time.sleep(0.05)
        app.ok("create", "--name", "late", "app:1")

        assert [r["Names"] for r in app.json_lines("ps", "-a", "--format", "json")] == [
            "late",
            "early",
        ]
        for at in (str(seq), moment):
            rows = app.json_lines("ps", "-a", "--format", "json", "--at", at)
            assert [r["Names"] for r in rows] == ["early"], at
        assert app.ok("ps", "-a", "-q", "--at", "-10m") == ""
        assert app.ok("ps", "-a", "-q", "--at", "0") == ""


class TestInspect:
    def test_inspect_uses_dockers_field_names(self, app: Dockstate, tmp_path: Path):
        """Id, Name as "/name", State, Image, and Mounts entries keyed as real Docker keys them."""
        app.ok("host", "mkdir", "/srv")
        cid = app.ok(
            "run",
            "--name",
            "web",
            "-v",
            "named:/named:ro",
            "--mount",
            "type=bind,source=/srv,target=/mnt/srv",
            "app:1",
        ).strip()
        (image,) = app.json("image", "inspect", "app:1")

        out = app.ok("inspect", "web")
        assert out.startswith("[\n    {\n")
        (c,) = json.loads(out)
        assert c["Id"] == cid
        assert c["Name"] == "/web"
        assert (c["State"]["Status"], c["State"]["Running"]) == ("running", True)
        assert c["Image"] == image["Id"]
        assert c["Config"]["Image"] == "app:1"

        mounts = {m["Destination"]: m for m in c["Mounts"]}
        assert mounts["/named"] == {
            "Type": "volume",
            "Name": "named",
            "Source": "/var/lib/docker/volumes/named/_data",
            "Destination": "/named",
            "Driver": "local",
            "Mode": "ro",
            "RW": False,
            "Propagation": "",
        }
        assert mounts["/mnt/srv"] == {
            "Type": "bind",
            "Source": "/srv",
            "Destination": "/mnt/srv",
            "Mode": "",
            "RW": True,
            "Propagation": "rprivate",
        }
        anon = mounts["/data"]
        assert re.fullmatch(r"[0-9a-f]{64}", anon["Name"])
        assert (anon["Mode"], anon["RW"]) == ("", True)
        docker = _docker_mount_keys()
        assert set(mounts["/named"]) == docker["volume"]
        assert set(mounts["/mnt/srv"]) == docker["bind"]

    def test_inspect_finds_containers_images_and_volumes_and_reports_unknowns(self, app: Dockstate):
        """``inspect`` searches containers, then images, then volumes; an unknown is an error."""
        app.ok("volume", "create", "vol")
        app.ok("create", "--name", "web", "app:1")
        container, image, volume = app.json("inspect", "web", "app:1", "vol")
        assert (container["Name"], container["State"]["Status"]) == ("/web", "created")
        assert (image["RepoTags"], image["RootFS"]["Type"]) == (["app:1"], "layers")
        assert (volume["Name"], volume["Mountpoint"]) == (
            "vol",
            "/var/lib/docker/volumes/vol/_data",
        )

        r = app("inspect", "web", "nope")
        assert r.code == 1
        assert r.err == "Error: No such object: nope\n"
        assert [x["Name"] for x in json.loads(r.out)] == ["/web"]
        r = app("inspect", "nope")
        assert (r.code, r.out, r.err) == (1, "[]\n", "Error: No such object: nope\n")


class TestDiff:
    def test_diff_lists_added_changed_and_deleted_paths(self, app: Dockstate):
        """Docker's A/C/D lines, parents included; writes into a volume are not in diff."""
        app.ok("run", "--name", "web", "app:1")
        started = app.head()[0]
        app.ok("fs", "write", "web", "/app/new.txt", "--data", "new")
        app.ok("fs", "write", "web", "/app/hello.txt", "--data", "again", "--append")
        app.ok("fs", "rm", "web", "/app/sub/deep.txt")
        app.ok("fs", "write", "web", "/data/in-volume", "--data", "v")

        lines = app.ok("diff", "web").splitlines()
        assert sorted(lines) == sorted(
            [
                "C /app",
                "A /app/new.txt",
                "C /app/hello.txt",
                "C /app/sub",
                "D /app/sub/deep.txt",
            ]
        )
        kinds = {d["Path"]: d["Kind"] for d in app.json("diff", "web", "--format", "json")}
        assert kinds == {
            "/app": 0,
            "/app/new.txt": 1,
            "/app/hello.txt": 0,
            "/app/sub": 0,
            "/app/sub/deep.txt": 2,
        }
        assert app.ok("diff", "web", "--at", str(started)) == ""
        assert app.ok("diff", "web", "--at", str(started + 1)) == "C /app\nA /app/new.txt\n"


class TestCp:
    def test_cp_copies_files_and_directories_both_ways(self, app: Dockstate):
        """Into a container (a file, a directory into a directory) and back out to this machine."""
        local = app.workdir / "local"
        (local / "d" / "e").mkdir(parents=True)
        (local / "d" / "one").write_text("1")
        (local / "d" / "e" / "two").write_text("2")
        (local / "single").write_text("single file")
        app.ok("run", "--name", "web", "app:1")

        assert app.ok("cp", str(local / "single"), "web:/app/copied") == ""
        assert app.ok("cp", str(local / "d"), "web:/app") == ""
        assert app.ok("fs", "cat", "web", "/app/copied") == "single file"
        assert app.ok("fs", "cat", "web", "/app/d/e/two") == "2"

        out = app.workdir / "out"
        out.mkdir()
        app.ok("cp", "web:/app", str(out))
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert files == [
            "app/copied",
            "app/d/e/two",
            "app/d/one",
            "app/hello.txt",
            "app/sub/deep.txt",
        ]
        assert (out / "app" / "hello.txt").read_text() == "hello\n"
        app.ok("cp", "web:/app/hello.txt", str(out / "renamed.txt"))
        assert (out / "renamed.txt").read_text() == "hello\n"

    def test_cp_out_at_an_earlier_seq_gets_a_file_since_deleted(self, app: Dockstate):
        """cp from a container takes --at: a deleted file can still be copied out of the past."""
        app.ok("run", "--name", "web", "app:1")
        app.ok("fs", "write", "web", "/gone.txt", "--data", "was here")
        seq = app.head()[0]
        app.ok("fs", "rm", "web", "/gone.txt")
        dest = app.workdir / "gone.txt"
        app.refused(
            "cp",
            "web:/gone.txt",
            str(dest),
            message="Could not find the file /gone.txt in container web",
        )
        app.ok("cp", "--at", str(seq), "web:/gone.txt", str(dest))
        assert dest.read_text() == "was here"

    def test_cp_refusals(self, app: Dockstate):
        """A missing local source, two local paths, and --at on a copy into a container."""
        app.ok("run", "--name", "web", "app:1")
        (app.workdir / "f").write_text("x")
        app.refused("cp", "missing", "web:/x", message="stat missing: no such file or directory")
        app.refused(
            "cp",
            "f",
            "g",
            message="copying between containers or between local paths is not supported: "
            "one of SRC and DEST must be CONTAINER:PATH",
        )
        app.refused(
            "cp",
            "--at",
            "1",
            "f",
            "web:/x",
            message="--at is for read commands: 'cp' changes the store and always acts now",
        )


class TestRefusals:
    def test_unknown_containers(self, app: Dockstate):
        """Every verb names the unknown container in Docker's words and appends nothing."""
        for verb in ("start", "stop", "restart", "pause", "unpause", "rm", "diff"):
            app.refused(verb, "nope", message="No such container: nope")
        r = app("stop", "nope", "nope2")
        assert (r.code, r.out) == (1, "")
        assert r.err == "Error: No such container: nope\nError: No such container: nope2\n"

    def test_lifecycle_refusals(self, app: Dockstate):
        """Pause, unpause, kill and file writes refused in the states Docker refuses them."""
        cid = app.ok("create", "--name", "idle", "app:1").strip()
        app.refused("pause", "idle", message=f"container {cid} is not running")
        app.refused("unpause", "idle", message=f"Container {cid} is not paused")
        app.refused(
            "kill", "idle", message=f"Cannot kill container: idle: container {cid} is not running"
        )
        app.refused(
            "fs", "write", "idle", "/x", "--data", "1", message=f"container {cid} is not running"
        )
        app.ok("start", "idle")
        app.ok("pause", "idle")
        app.refused("pause", "idle", message=f"container {cid} is already paused")
        app.refused("start", "idle", message="cannot start a paused container, try unpause instead")

    def test_create_refusals(self, app: Dockstate):
        """Bad names, a taken name, an unknown image and a missing bind source are refused."""
        cid = app.ok("create", "--name", "web", "app:1").strip()
        log_before = app.ok("log", "--format", "json")
        app.refused(
            "create",
            "--name",
            "web",
            "app:1",
            message=f'Conflict. The container name "/web" is already in use by container "{cid}". '
            "You have to remove (or rename) that container to be able to reuse that name.",
        )
        app.refused(
            "run",
            "--name",
            "bad name!",
            "app:1",
            message="Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        )
        app.refused("create", "nosuch:2", message="No such image: nosuch:2")
        app.refused(
            "run",
            "--mount",
            "type=bind,source=/missing,target=/m",
            "app:1",
            message='invalid mount config for type "bind": bind source path does not exist: /missing',
        )
        app.refused("kill", "nope", message="Cannot kill container: nope: No such container: nope")
        app.refused(
            "kill",
            "-s",
            "BOGUS",
            "web",
            message="Cannot kill container: web: Invalid signal: BOGUS",
        )
        assert app.ok("log", "--format", "json") == log_before

    def test_a_write_command_given_at_is_refused(self, app: Dockstate):
        """--at belongs to reads: a write given one changes nothing."""
        app.ok("create", "--name", "web", "app:1")
        for argv in (
            ["create", "--at", "1", "app:1"],
            ["start", "--at", "1", "web"],
            ["rm", "--at", "1", "web"],
        ):
            app.refused(
                *argv,
                message=f"--at is for read commands: '{argv[0]}' changes the store and always acts now",
            )

    def test_usage_errors_exit_2(self, app: Dockstate):
        """argparse's mistakes exit 2 with a usage line, and change nothing."""
        app.usage_error("ps", "--format", "xml")
        app.usage_error("start")
        app.usage_error("frobnicate")
        r = app.usage_error("rm", "--bogus", "x")
        assert r.err.endswith("dockstate: error: unrecognized arguments: --bogus\n")


@pytest.mark.parametrize("args", [["ps", "--at", "nonsense"], ["ps", "--at", "-1"]])
def test_a_bad_at_value_is_one_error_line(ds: Dockstate, args: list[str]):
    """An --at that is neither a seq nor a time is refused with how to write one."""
    ds.refused(
        *args,
        message=f"invalid time '{args[-1]}': use a seq, ISO 8601 (2026-11-29T10:02:00Z), "
        "a time of day (10:02) or a duration back from now (-10m)",
    )
