"""The record end to end: events, audit, history, log, verify, sessions, config, store choice."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from dockstate.eventlog import LmdbEventLog
from dockstate.projections import snapshot
from dockstate.projections.asof import NAME as SNAPSHOT_NAME
from tests.tools._cli import COMMAND, Dockstate, copy_store, read_line

REFERENCE = Path("/work/shared/reference/docker-json")
ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _snapshot_seqs(ds: Dockstate) -> list[int]:
    """The seqs of the store's host snapshots of the current version, read in this process."""
    with LmdbEventLog(ds.store, clock=time.time_ns, readonly=True) as log:
        return log.snapshot_seqs(SNAPSHOT_NAME, snapshot.VERSION)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class Story:
    """A store with a recorded story, and the seqs and moments worth asking about."""

    def __init__(self, ds: Dockstate) -> None:
        self.ds = ds
        self.seq: dict[str, int] = {}
        self.moment: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def mark(self, name: str) -> None:
        self.seq[name] = self.ds.head()[0]
        time.sleep(0.02)
        self.moment[name] = _now_iso()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, image_template: Path) -> Story:
    """web loses a file at stop; db (discard_on=remove) loses tmpfs at stop and its layer at rm;
    the volume db wrote to is removed; all under session "s1" but the last step."""
    root = tmp_path_factory.mktemp("story")
    (root / "work").mkdir()
    ds = Dockstate(copy_store(image_template, root / "store"), root / "work")
    s = Story(ds)
    s.mark("empty")
    assert ds.ok("session", "start", "s1") == "s1\n"
    s.ids["web"] = ds.ok("run", "--name", "web", "app:1").strip()
    ds.ok("fs", "write", "web", "/app/notes.txt", "--data", "orders")
    s.mark("notes")
    ds.ok("fs", "write", "web", "/data/keep.txt", "--data", "kept")
    ds.ok("volume", "create", "vol")
    s.ids["db"] = ds.ok(
        "run",
        "--name",
        "db",
        "-v",
        "vol:/db",
        "--tmpfs",
        "/run/cache",
        "--discard-on",
        "remove",
        "app:1",
    ).strip()
    ds.ok("fs", "write", "db", "/run/cache/session", "--data", "in memory")
    ds.ok("fs", "write", "db", "/db/rows", "--data", "12345")
    ds.ok("fs", "write", "db", "/etc/cfg", "--data", "cfg")
    s.mark("before_stop")
    ds.ok("stop", "web", "db")
    s.mark("stopped")
    ds.ok("rm", "db")
    assert ds.ok("session", "stop") == "s1\n"
    ds.ok("volume", "rm", "vol")
    s.mark("end")
    return s


def _records(ds: Dockstate, *args: str) -> list[dict[str, Any]]:
    return ds.json("audit", *args, "--format", "json")


class TestAudit:
    def test_audit_json_has_every_loss_with_what_persisted(self, story: Story):
        """Each loss: container, name, event, seq, time, policy, lost files, bytes, what persisted."""
        records = _records(story.ds)
        stop = story.seq["before_stop"] + 1
        assert [(r["name"], r["event"], r["seq"], r["policy"]) for r in records] == [
            ("web", "stop", stop, "stop"),
            ("db", "stop", stop + 1, "remove"),
            ("db", "tmpfs", stop + 1, "remove"),
            ("db", "rm", stop + 2, "remove"),
            ("vol", "volume-rm", stop + 3, ""),
        ]
        assert [r["container"] for r in records] == [story.ids["web"]] + [story.ids["db"]] * 3 + [
            ""
        ]
        assert all(re.fullmatch(ISO_MS, r["time"]) for r in records)
        web = records[0]
        (lost,) = web["lost"]
        assert {k: lost[k] for k in ("path", "size", "digest", "written_seq", "session")} == {
            "path": "/app/notes.txt",
            "size": 6,
            "digest": "sha256:" + hashlib.sha256(b"orders").hexdigest(),
            "written_seq": story.seq["notes"],
            "session": "s1",
        }
        assert web["lost_bytes"] == 6
        anon = web["persisted"][0]["source"]
        assert [{k: p[k] for k in ("path", "type", "source")} for p in web["persisted"]] == [
            {"path": "/data/keep.txt", "type": "volume", "source": anon},
            {"path": "/data/seed.txt", "type": "volume", "source": anon},
        ]
        assert [(r["lost"], r["lost_bytes"]) for r in records[1:2]] == [([], 0)]
        assert [f["path"] for r in records[2:] for f in r["lost"]] == [
            "/run/cache/session",
            "/etc/cfg",
            "/rows",
        ]
        assert [r["lost_bytes"] for r in records] == [6, 0, 9, 3, 5]
        assert {p["path"]: p["source"] for p in records[3]["persisted"]}["/db/rows"] == "vol"

    def test_audit_table_groups_by_container_with_totals(self, story: Story):
        """The table: one block per container, a line per lost file, and the totals."""
        out = story.ds.ok("audit", "web").splitlines()
        assert out[0] == f"container web ({story.ids['web'][:12]})"
        assert re.fullmatch(
            rf"  stop at seq {story.seq['before_stop'] + 1} \({ISO_MS}\), policy stop: 1 file\(s\), 6B lost",
            out[1],
        ), out[1]
        assert out[2] == "    writable layer discarded at stop (discard_on=stop, the seed's model)"
        assert re.fullmatch(
            rf"    lost       /app/notes\.txt  6B  written at seq {story.seq['notes']} session s1  sha256:[0-9a-f]{{12}}",
            out[3],
        ), out[3]
        assert out[4].startswith("    persisted  /data/keep.txt  -> volume ")
        assert out[-1] == "Total: 1 file(s), 6B lost"

    def test_audit_since_until_and_at(self, story: Story):
        """--since/--until bound the events by seq or time; --at answers as of then."""
        ds = story.ds
        assert ds.ok("audit", "--at", str(story.seq["before_stop"])) == "No data was lost.\n"
        assert ds.ok("audit", "--at", story.moment["before_stop"]) == "No data was lost.\n"
        assert _records(ds, "--at", str(story.seq["before_stop"])) == []
        every = [r["event"] for r in _records(ds)]
        after = _records(ds, "--since", story.moment["stopped"])
        assert [r["event"] for r in after] == every[3:] == ["rm", "volume-rm"]
        from_seq = _records(ds, "--since", str(story.seq["stopped"]))  # a seq bound is inclusive
        assert [r["event"] for r in from_seq] == every[1:]
        upto = _records(ds, "--until", story.moment["stopped"])
        assert [r["event"] for r in upto] == every[:3]
        ds.refused("audit", "nope", message="No such container: nope")


class TestHistory:
    def test_history_of_a_container_path(self, story: Story):
        """history CONTAINER:PATH: the events that touched that path, and the container's lifecycle."""
        rows = story.ds.json("history", "web:/app/notes.txt", "--format", "json")
        assert [r["type"] for r in rows] == [
            "ContainerCreated",
            "VolumePopulated",  # the image VOLUME's anonymous volume, filled at create
            "ContainerStarted",
            "FileWritten",
            "ContainerStopped",
        ]
        assert {r["session"] for r in rows} == {"s1"}
        assert rows[3]["seq"] == story.seq["notes"]
        assert rows[3]["data"]["path"] == "/app/notes.txt"
        whole = story.ds.json("history", "web", "--format", "json")
        assert len(whole) > len(rows)
        table = story.ds.ok("history", "web:/app/notes.txt").splitlines()
        assert table[0].split() == ["SEQ", "TIME", "SESSION", "TYPE", "DETAILS"]
        assert re.fullmatch(
            rf"{story.seq['notes']} +{ISO_MS} +s1 +FileWritten +container={story.ids['web'][:12]} path=/app/notes\.txt size=6",
            table[4],
        ), table[4]

    def test_history_of_a_removed_container_and_a_removed_volume(self, story: Story):
        """history still answers for things that are gone: db was removed, vol too."""
        rows = story.ds.json("history", "db", "--format", "json")
        assert rows[-1]["type"] == "ContainerRemoved"
        vol = story.ds.json("history", "volume:vol", "--format", "json")
        assert vol[0]["type"] == "VolumeCreated"
        assert vol[-1]["type"] == "VolumeRemoved"
        assert vol[-1]["session"] == ""
        path = story.ds.json("history", "volume:vol:/rows", "--format", "json")
        assert "FileWritten" in [r["type"] for r in path]
        assert all(r["data"].get("path", "/db/rows") == "/db/rows" for r in path)
        before = story.ds.json(
            "history", "web", "--at", str(story.seq["notes"]), "--format", "json"
        )
        assert before[-1]["seq"] == story.seq["notes"]

    def test_history_refusals(self, story: Story):
        story.ds.refused("history", "nope", message="No such container: nope")
        story.ds.refused("history", "volume:nope", message="get nope: no such volume")


class TestLog:
    def test_log_json_objects_and_range(self, story: Story):
        """log --format json: a JSON array of {seq, time, type, session, data}; --from/--to bound it."""
        out = story.ds.ok("log", "--format", "json")
        events = json.loads(out)
        assert out.startswith("[\n")
        assert [e["seq"] for e in events] == list(range(1, story.seq["end"] + 1))
        for e in events:
            assert {"seq", "time", "type", "session", "data"} <= set(e)
            assert re.fullmatch(ISO_MS, e["time"])
        first = story.seq["empty"] + 1
        some = story.ds.json(
            "log", "--from", str(first), "--to", str(first + 2), "--format", "json"
        )
        assert [e["seq"] for e in some] == [first, first + 1, first + 2]
        assert some[0]["type"] == "VolumeCreated"  # the anonymous volume of run web
        assert some[0]["session"] == "s1"
        assert story.ds.json("log", "--at", str(first), "--format", "json")[-1]["seq"] == first

        table = story.ds.ok("log", "--from", "1", "--to", "2").splitlines()
        assert table[0].split() == ["SEQ", "TIME", "SESSION", "TYPE", "DETAILS"]
        assert re.fullmatch(rf"1 +{ISO_MS} +- +LayerRegistered +size=11", table[1]), table[1]


class TestVerify:
    def test_verify_passes_then_names_a_tampered_event(self, story: Story, tmp_path: Path):
        """verify: ok with the head hash; after one stored byte changes, exit 1 naming that seq."""
        out = story.ds.ok("verify")
        assert re.fullmatch(rf"ok: {story.seq['end']} events, head [0-9a-f]{{64}}\n", out)
        assert out.split()[-1] == story.ds.head()[1].hex()

        copy = Dockstate(copy_store(story.ds.store, tmp_path / "tampered"), story.ds.workdir)
        target = story.seq["notes"]
        env = lmdb.open(str(copy.store), max_dbs=8)
        try:
            events = env.open_db(b"events")
            with env.begin(write=True) as txn:
                key = struct.pack(">Q", target)
                raw = bytes(txn.get(key, db=events))
                assert b"/app/notes.txt" in raw
                txn.put(key, raw.replace(b"/app/notes.txt", b"/app/NOTES.txt"), db=events)
        finally:
            env.close()
        r = copy("verify")
        assert r.code == 1
        assert (
            r.out
            == f"bad: event {target}: content does not match the hash recorded by event {target + 1}\n"
        )


class TestEvents:
    def test_events_in_dockers_shapes_with_since_until_and_filters(self, story: Story):
        """events --since/--until print and exit; JSON lines carry Docker's message keys."""
        ds = story.ds
        since, until = str(story.seq["before_stop"]), str(story.seq["stopped"])
        lines = ds.json_lines("events", "--since", since, "--until", until, "--format", "json")
        golden = json.loads(
            (REFERENCE / "upstream-docker-cli-events-json.golden.jsonl").read_text().splitlines()[0]
        )
        assert all(set(m) == set(golden) for m in lines)
        web, db = story.ids["web"], story.ids["db"]
        assert [
            (m["Type"], m["Action"], m["Actor"]["ID"]) for m in lines if m["Type"] == "container"
        ] == [
            ("container", "kill", web),
            ("container", "die", web),
            ("container", "stop", web),
            ("container", "kill", db),
            ("container", "die", db),
            ("container", "stop", db),
        ]
        assert lines[0]["Actor"]["Attributes"] == {"image": "app:1", "name": "web", "signal": "15"}
        assert lines[0]["time"] == lines[0]["timeNano"] // 1_000_000_000

        text = ds.ok("events", "--since", since, "--until", until).splitlines()
        assert len(text) == len(lines)
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{9}}Z container kill {web} \(image=app:1, name=web, signal=15\)",
            text[0],
        ), text[0]

        stops = ds.json_lines(
            "events", "--since", "0", "--until", "now", "--filter", "event=stop", "--format", "json"
        )
        assert [m["Actor"]["Attributes"]["name"] for m in stops] == ["web", "db"]
        mine = ds.json_lines(
            "events",
            "--since",
            story.moment["empty"],
            "--until",
            story.moment["end"],
            "-f",
            "container=db",
            "--format",
            "json",
        )
        assert {m["Actor"]["ID"] for m in mine} == {db}
        assert [m["Action"] for m in mine][-1] == "destroy"
        volumes = ds.json_lines(
            "events",
            "--since",
            "0",
            "--until",
            "now",
            "--filter",
            "type=volume",
            "--filter",
            "volume=vol",
            "--format",
            "json",
        )
        assert [m["Action"] for m in volumes] == ["create", "mount", "unmount", "destroy"]
        ds.refused(
            "events", "--filter", "bogus=1", "--until", "now", message="invalid filter 'bogus'"
        )
        ds.refused(
            "events",
            "--filter",
            "bogus",
            "--until",
            "now",
            message="bad format of filter (expected name=value): bogus",
        )

    def test_events_without_until_follows_new_events(self, app: Dockstate):
        """Without --until, events prints from --since and then each new event as it is appended."""
        app.ok("volume", "create", "before")
        with app.popen("events", "--since", "0", "--filter", "type=volume") as follower:
            try:
                first = read_line(follower)
                assert re.fullmatch(r"\S+Z volume create before \(driver=local\)\n", first), first
                app.ok("volume", "create", "after")
                line = read_line(follower)
                assert re.fullmatch(r"\S+Z volume create after \(driver=local\)\n", line), line
                assert follower.poll() is None  # still following
                follower.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
                assert follower.wait(timeout=10) == 0
            finally:
                if follower.poll() is None:
                    follower.terminate()
            assert follower.stderr is not None
            assert follower.stderr.read() == ""


class TestSessions:
    def test_sessions_tag_events_and_list(self, ds: Dockstate):
        """session start/stop and DOCKSTATE_SESSION tag the events; session ls counts them."""
        assert ds.ok("session", "start", "alpha") == "alpha\n"
        ds.ok("volume", "create", "v1")
        ds.ok("volume", "create", "v2", env={"DOCKSTATE_SESSION": "beta"})
        ds.refused("session", "start", "a b", message="invalid session name 'a b'")
        assert ds.ok("session", "stop") == "alpha\n"
        ds.refused("session", "stop", message="no session is started")
        ds.ok("volume", "create", "v3")

        assert [(e["seq"], e["session"]) for e in ds.json("log", "--format", "json")] == [
            (1, "alpha"),
            (2, "beta"),
            (3, ""),
        ]
        rows = ds.json("session", "ls", "--format", "json")
        assert [
            (r["name"], r["first_seq"], r["last_seq"], r["events"], r["commands"]) for r in rows
        ] == [
            ("alpha", 1, 1, 1, 1),
            ("beta", 2, 2, 1, 1),
            ("", 3, 3, 1, 1),
        ]
        assert rows[0]["command_counts"] == {"volume create": 1}
        table = ds.ok("session", "ls").splitlines()
        assert table[0].split()[:2] == ["SESSION", "FIRST"]
        assert [line.split()[0] for line in table[1:]] == ["alpha", "beta", "(none)"]
        assert [r["name"] for r in ds.json("session", "ls", "--at", "1", "--format", "json")] == [
            "alpha"
        ]


class TestSettings:
    def test_config_discard_on_sets_the_default_policy(self, app: Dockstate):
        """config --discard-on remove: new containers keep their writable layer at stop."""
        assert app.ok("config") == "discard-on: stop\nsnapshot-every: 10000\n"
        app.refused(
            "config",
            "--at",
            "1",
            "--discard-on",
            "remove",
            message="--at is for read commands: 'config' changes the store and always acts now",
        )
        assert app.ok("config", "--discard-on", "remove").startswith("discard-on: remove\n")
        assert app.ok("config").startswith("discard-on: remove\n")
        app.ok("run", "--name", "web", "app:1")
        assert app.json("inspect", "web")[0]["DockstateDiscardOn"] == "remove"
        app.ok("fs", "write", "web", "/kept.txt", "--data", "kept")
        app.ok("stop", "web")
        assert app.ok("fs", "cat", "web", "/kept.txt") == "kept"
        (record,) = _records(app)
        assert (record["event"], record["lost"], record["policy"]) == ("stop", [], "remove")
        app.usage_error("config", "--discard-on", "never")

    def test_snapshots_on_demand_and_every_n_events(self, app: Dockstate):
        """`snapshot` writes one now (or as of --at) and says where; `config --snapshot-every N`
        makes reads leave one every N events; a bad interval is refused and changes nothing;
        answers are the same whatever the snapshots."""
        app.ok("run", "--name", "web", "app:1")
        for i in range(6):
            app.ok("fs", "write", "web", f"/f{i}", "--data", str(i))
        head = app.head()[0]
        before = app.ok("fs", "ls", "web", "/", "--at", str(head - 2))
        out = app.ok("snapshot")
        assert re.fullmatch(rf"snapshot at seq {head} \(version \d+, [\d.]+k?B\)\n", out), out
        assert app.ok("snapshot", "--at", str(head - 3)).startswith(f"snapshot at seq {head - 3} ")
        assert _snapshot_seqs(app) == [head - 3, head]
        assert app.ok("snapshot", "--at", "0") == (
            "nothing to snapshot: no event at or before that point\n"
        )
        app.refused(
            "config",
            "--snapshot-every",
            "-1",
            message="invalid snapshot interval -1: use 0 (never) or more",
        )
        app.usage_error("config", "--snapshot-every", "many")
        assert app.ok("config", "--snapshot-every", "2").endswith("snapshot-every: 2\n")
        assert app.head()[0] == head  # a store setting: no event
        assert app.ok("fs", "ls", "web", "/", "--at", str(head - 2)) == before
        app.ok("ps", "-a", "--at", str(head - 4))  # folds from 0: leaves one every 2 events
        assert _snapshot_seqs(app) == [*range(2, head - 4, 2), head - 3, head]
        assert app.ok("config").endswith("snapshot-every: 2\n")

    def test_the_store_comes_from_the_flag_then_the_environment_then_home(self, tmp_path: Path):
        """--store, else $DOCKSTATE_STORE, else ~/.local/share/dockstate, created on first use."""
        env_store, home = tmp_path / "env-store", tmp_path / "home"

        def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*COMMAND, *args],
                capture_output=True,
                text=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env},
                check=True,
                timeout=60,
            )

        run("volume", "create", "in-env", DOCKSTATE_STORE=str(env_store))
        run("volume", "create", "in-home")
        assert (env_store / "data.mdb").exists()
        assert (home / ".local" / "share" / "dockstate" / "data.mdb").exists()
        assert run("volume", "ls", "-q", DOCKSTATE_STORE=str(env_store)).stdout == "in-env\n"
        assert run("--store", str(env_store), "volume", "ls", "-q").stdout == "in-env\n"
        assert run("volume", "ls", "-q").stdout == "in-home\n"
