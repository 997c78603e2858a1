"""The time-travel API (`dockstate.tools.timetravel`), its script and ``dockstate bisect``.

A scripted history with known seqs and times (a fake clock) answers every question
of the API exactly; random histories check that `Timeline.first` agrees with a
linear scan of every seq.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockstate.core.commands import DockerHost
from dockstate.core.errors import DockstateError, FileSystemError, NoSuchContainerError
from dockstate.core.names import RandomIds
from dockstate.eventlog import InMemoryEventLog, LmdbEventLog
from dockstate.projections import asof, snapshot
from dockstate.projections.asof import Projector
from dockstate.tools import timetravel
from dockstate.tools.timetravel import Timeline, View
from tests.conftest import EPOCH, FakeClock
from tests.core.helpers import APP_IMAGE, register_image
from tests.tools.forensics_helpers import Run, cli

SECOND = 1_000_000_000
UTC = dt.UTC


def _utc(ns: int) -> dt.datetime:
    """The moment ``ns`` as an aware datetime (to the microsecond below it)."""
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class History:
    """A store with a scripted history: ``marks[step]`` is the seq after each step."""

    path: Path
    marks: dict[str, int]
    web: str
    job: str
    image: str


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Volumes, a bind, a tmpfs, writes, an append, a delete, a rename, stop and start,
    and a container that is created and removed; the clock jumps a minute between acts."""
    path = tmp_path_factory.mktemp("timetravel") / "store"
    clock = FakeClock()
    marks: dict[str, int] = {}
    with LmdbEventLog(path, clock=clock, durable=False) as log:
        h = DockerHost(log, ids=RandomIds(random.Random(7)), session="tt")

        def mark(step: str) -> None:
            marks[step] = log.head().seq

        image = register_image(h, APP_IMAGE)
        mark("image")
        h.volume_create("data")
        mark("volume")
        h.host_mkdir("/srv/www", parents=True)
        h.host_write("/srv/www/index.html", b"host\n")
        h.host_write("/srv/other.txt", b"other\n")
        mark("host")
        clock.set(EPOCH + 60 * SECOND)
        web = h.create(
            "app:1",
            name="web",
            volumes=["data:/var/lib/data", "/srv/www:/www"],
            tmpfs=["/tmp"],
            start=True,
        )
        mark("web")
        for step, file, data in [
            ("orders", "/var/lib/data/orders.db", b"o1\n"),
            ("x/a", "/var/lib/data/x/a", b"nested a\n"),
            ("a", "/var/lib/data/a", b"top a\n"),
            ("notes", "/app/notes.txt", b"notes\n"),
            ("page", "/www/page.html", b"page\n"),
            ("tmp", "/tmp/t", b"tmp\n"),
        ]:
            h.write_file("web", file, data)
            mark(step)
        clock.set(EPOCH + 120 * SECOND)
        h.write_file("web", "/var/lib/data/orders.db", b"o2\n", append=True)
        mark("append")
        h.delete("web", "/etc/hosts")
        mark("delete")
        h.rename("web", "/app/notes.txt", "/app/notes.old")
        mark("mv")
        h.stop("web")
        mark("stop")
        clock.set(EPOCH + 180 * SECOND)
        job = h.create("app:1", name="job", start=True)
        mark("job")
        h.write_file("job", "/app/out.txt", b"out\n")
        mark("job write")
        h.remove("job", force=True)
        mark("job rm")
        h.start("web")
        mark("web again")
    return History(path, marks, web, job, image)


@pytest.fixture
def tl(history: History) -> Iterator[Timeline]:
    with Timeline.open(history.path) as timeline:
        yield timeline


def test_the_scripted_history_has_the_seqs_the_tests_use(history: History) -> None:
    """The seqs below are read from this history; this pins them down."""
    assert history.marks == {
        "image": 4, "volume": 5, "host": 8, "web": 11, "orders": 12, "x/a": 13, "a": 14,
        "notes": 15, "page": 16, "tmp": 17, "append": 18, "delete": 19, "mv": 20, "stop": 21,
        "job": 23, "job write": 24, "job rm": 26, "web again": 27,
    }  # fmt: skip


# -- views -----------------------------------------------------------------------------


def test_a_view_lists_the_objects_that_existed_at_its_seq(history: History, tl: Timeline) -> None:
    """Containers, images, volumes and host paths as of a seq; seq 0 is the empty host."""
    m = history.marks
    empty = tl.at(0)
    assert (empty.seq, empty.containers, empty.images, empty.volumes, empty.host_paths) == (
        0, {}, {}, {}, {},
    )  # fmt: skip
    v = tl.at(m["host"])
    assert (v.seq, v.containers, list(v.images), list(v.volumes)) == (
        8,
        {},
        [history.image],
        ["data"],
    )
    assert sorted(v.host_paths) == ["/srv", "/srv/other.txt", "/srv/www", "/srv/www/index.html"]
    v = tl.at(m["job write"])
    assert {c.name: c.state for c in v.containers.values()} == {"web": "exited", "job": "running"}
    assert list(tl.at(m["job rm"]).containers) == [history.web]
    assert tl.at().seq == tl.head == 27
    assert tl.at(10**6).seq == 27


def test_a_container_state_through_time(history: History, tl: Timeline) -> None:
    """`view.state(ref)` is None before the container exists and after it is removed."""
    m = history.marks
    assert [tl.at(m[s]).state("web") for s in ("host", "web", "stop", "web again")] == [
        None, "running", "exited", "running",
    ]  # fmt: skip
    assert [tl.at(m[s]).state("job") for s in ("stop", "job", "job rm")] == [None, "running", None]
    assert tl.at(m["web"]).container("web").id == history.web


def test_files_read_as_they_were_at_each_moment(history: History, tl: Timeline) -> None:
    """read, stat and exists follow writes, appends, renames, deletes and the stop's discard."""
    m = history.marks
    orders = "/var/lib/data/orders.db"
    assert tl.at(m["orders"]).read("web", orders) == b"o1\n"
    assert tl.at(m["append"]).read("web", orders) == b"o1\no2\n"
    assert [tl.at(m[s]).stat("web", orders).size for s in ("orders", "append")] == [3, 6]
    assert tl.at(m["x/a"]).read("web", "/var/lib/data/x/a") == b"nested a\n"
    assert tl.at(m["tmp"]).read("web", "/tmp/t") == b"tmp\n"
    assert tl.at(m["page"]).read("web", "/www/page.html") == b"page\n"
    exists = {
        s: (
            tl.at(m[s]).exists("web", "/app/notes.txt"),
            tl.at(m[s]).exists("web", "/app/notes.old"),
            tl.at(m[s]).exists("web", "/etc/hosts"),
        )
        for s in ("web", "notes", "delete", "mv", "stop")
    }
    assert exists == {
        "web": (False, False, True),
        "notes": (True, False, True),
        "delete": (True, False, False),
        "mv": (False, True, False),
        # discard_on=stop: the writable layer (its files and whiteout) is gone
        "stop": (False, False, True),
    }
    assert tl.at(m["host"]).exists("web", "/etc/hosts") is False  # no such container yet
    with pytest.raises(FileSystemError, match="No such file or directory"):
        tl.at(m["stop"]).read("web", "/app/notes.old")
    with pytest.raises(NoSuchContainerError):
        tl.at(m["host"]).read("web", orders)


def test_ls_lists_a_directory_with_where_each_name_lives(history: History, tl: Timeline) -> None:
    """`view.ls` names each entry's layer or mount."""
    items = tl.at(history.marks["append"]).ls("web", "/var/lib/data")
    assert [(i.name, i.layer, i.entry.kind, i.entry.size) for i in items] == [
        ("a", "volume:data", "f", 6),
        ("orders.db", "volume:data", "f", 6),
        ("seed.txt", "volume:data", "f", 10),
        ("x", "volume:data", "d", 0),
    ]
    names = [i.name for i in tl.at(history.marks["notes"]).ls("web", "/app")]
    assert "notes.txt" in names


def test_view_diff_df_and_audit_answer_as_of_the_view(history: History, tl: Timeline) -> None:
    """docker diff, system df and the loss ledger, each as it was at the view's seq."""
    m = history.marks
    assert tl.at(m["mv"]).diff("web") == [
        ("C", "/app"), ("A", "/app/notes.old"), ("C", "/etc"), ("D", "/etc/hosts"),
    ]  # fmt: skip
    assert tl.at(m["stop"]).diff("web") == []
    df = tl.at(m["job write"]).df()
    assert (len(df.containers), df.containers_active, len(df.volumes)) == (2, 1, 1)
    assert {c.name: size for c, size in df.containers} == {"web": 0, "job": 4}
    assert tl.at(m["mv"]).audit() == []
    records = tl.at(m["stop"]).audit()
    assert [
        (r.event, r.seq, r.name, [(f.path, f.size, f.written_seq) for f in r.lost]) for r in records
    ] == [
        ("stop", 21, "web", [("/app/notes.old", 6, 20)]),
        ("tmpfs", 21, "web", [("/tmp/t", 4, 17)]),
    ]
    # rm -f kills first: the writable layer goes at the kill (discard_on=stop)
    assert [(r.event, [f.path for f in r.lost]) for r in tl.at().audit("job")] == [
        ("kill", ["/app/out.txt"]),
        ("rm", []),
    ]


# -- moments ---------------------------------------------------------------------------


def test_a_moment_may_be_a_seq_a_datetime_iso_text_or_a_time_ago(
    history: History, tl: Timeline
) -> None:
    """Every spelling of a moment names the last event recorded at or before it."""
    m = history.marks
    assert tl.at("17").seq == 17
    assert tl.at(_utc(EPOCH + 90 * SECOND)).seq == m["tmp"]
    assert tl.at(_utc(EPOCH + 30 * SECOND)).seq == m["host"]
    assert tl.at(_utc(EPOCH - SECOND)).seq == 0
    assert tl.at("2023-11-14T22:14:50Z").seq == m["tmp"]  # EPOCH + 90 s
    assert tl.at("2023-11-14T22:15:20+00:00").seq == m["append"]  # EPOCH + 120 s exactly
    assert tl.at("2023-11-14T22:15:50Z").seq == m["stop"]
    assert tl.at("-10m").seq == tl.head  # the whole history is years old
    naive = _utc(EPOCH + 90 * SECOND).astimezone().replace(tzinfo=None)  # local time
    assert tl.at(naive).seq == m["tmp"]


def test_a_datetime_at_an_event_s_exact_time_names_that_event(tl: Timeline) -> None:
    """Datetimes count in whole microseconds: the conversion to ns is exact, not a float's."""
    events = list(tl.events())
    for env in events:
        moment = _utc(env.ts)
        floor_ns = env.ts // 1000 * 1000
        expected = max(e.seq for e in events if e.ts <= floor_ns) if floor_ns >= events[0].ts else 0
        assert tl.seq(moment) == expected, env.seq


# -- diff between moments --------------------------------------------------------------


def test_diff_lists_containers_and_files_that_changed_between_two_moments(
    history: History, tl: Timeline
) -> None:
    """Created, removed and changed containers; files added, changed, removed with sizes, per
    container layer, tmpfs, volume and host path."""
    m = history.marks
    web = history.web[:12]
    assert tl.diff(m["host"], m["tmp"]).lines() == [
        f"container web ({web}) created, running",
        "container web rw: /app/notes.txt added (6B)",
        "container web tmpfs /tmp: /t added (4B)",
        "volume data: /a added (6B)",
        "volume data: /orders.db added (3B)",
        "volume data: /seed.txt added (10B)",
        "volume data: /x/a added (9B)",
        "host: /srv/www/page.html added (5B)",
    ]
    assert tl.diff(m["tmp"], m["stop"]).lines() == [
        f"container web ({web}) running -> exited",
        "container web rw: /app/notes.txt removed (was 6B)",
        "container web tmpfs /tmp: /t removed (was 4B)",
        "volume data: /orders.db changed (3B -> 6B)",
    ]
    job = history.job[:12]
    assert tl.diff(m["stop"], m["job write"]).lines() == [
        f"container job ({job}) created, running",
        "container job rw: /app/out.txt added (4B)",
    ]
    assert tl.diff(m["job write"], m["job rm"]).lines() == [
        f"container job ({job}) removed (was running)",
        "container job rw: /app/out.txt removed (was 4B)",
    ]
    assert tl.diff(0, m["image"]).lines() == [f"image {history.image} added"]
    assert tl.diff(m["web again"], m["web again"]).empty


def test_diff_of_a_deleted_image_file_gives_its_size_in_the_image(
    history: History, tl: Timeline
) -> None:
    """Deleting an image file leaves a whiteout: the diff reports the file the process no
    longer sees, with the image's size, and its return when the writable layer goes."""
    m = history.marks
    hosts = len(b"127.0.0.1 localhost\n")
    assert tl.diff(m["tmp"], m["delete"]).lines()[-2:] == [
        f"container web rw: /etc/hosts removed (was {hosts}B)",
        "volume data: /orders.db changed (3B -> 6B)",
    ]
    assert (
        f"container web rw: /etc/hosts added ({hosts}B)" in tl.diff(m["delete"], m["stop"]).lines()
    )


# -- history and events ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "seqs"),
    [
        ("web", [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 27]),
        ("web:/var/lib/data/orders.db", [9, 10, 11, 12, 18, 21, 27]),
        ("web:/app", [9, 10, 11, 15, 20, 21, 27]),
        ("web:/app/notes.old", [9, 10, 11, 20, 21, 27]),
        ("job", [22, 23, 24, 25, 26]),
        ("volume:data", [5, 9, 10, 12, 13, 14, 18]),
        ("volume:data:/orders.db", [5, 9, 10, 12, 18]),
        ("volume:data:/a", [5, 9, 10, 14]),
        ("volume:data:/x", [5, 9, 10, 13]),
        ("host:/srv/www/index.html", [6, 7, 9]),
        ("host:/srv/www/page.html", [6, 9, 16]),
        ("host:/srv/other.txt", [8]),
        # a dir: the host files below it and the container writes through a bind inside it
        ("host:/srv", [6, 7, 8, 9, 16]),
        ("host:/", [6, 7, 8, 9, 16]),
    ],
)
def test_history_lists_every_event_that_touched_a_target(
    tl: Timeline, target: str, seqs: list[int]
) -> None:
    """A container (removed ones too), a path in it, a volume, a path in a volume (through
    the container's mount), a host path (through binds too); whole-object events included."""
    assert [e.seq for e in tl.history(target)] == seqs


def test_events_filter_by_moment_type_and_subject(history: History, tl: Timeline) -> None:
    """`events(since=, until=, type=, subject=)`: since is exclusive, until inclusive."""
    m = history.marks
    assert [e.seq for e in tl.events(since=m["web"], until=m["a"])] == [12, 13, 14]
    assert [e.seq for e in tl.events(type="FileWritten")] == [12, 13, 14, 15, 16, 17, 24]
    assert [e.seq for e in tl.events(type=["ContainerStopped", "ContainerKilled"])] == [21, 25]
    assert [e.seq for e in tl.events(subject="v:data", since=m["x/a"])] == [14, 18]
    assert [e.seq for e in tl.events(since=_utc(EPOCH + 150 * SECOND))] == [22, 23, 24, 25, 26, 27]
    assert [e.type for e in tl.events(since="-10m")] == []
    assert len(list(tl.events())) == 27


# -- first -------------------------------------------------------------------------------


def test_first_finds_when_a_condition_started_to_hold(history: History, tl: Timeline) -> None:
    """Monotone conditions bisect; `monotone=False` scans; None when it never held."""
    m = history.marks
    orders = "/var/lib/data/orders.db"
    assert tl.first(lambda v: v.exists("web", orders)) == m["orders"]
    assert tl.first(lambda v: v.seq >= 13) == 13
    assert tl.first(lambda v: len(v.volumes) > 0) == m["volume"]
    assert tl.first(lambda v: v.state("job") == "running", monotone=False) == 23
    assert tl.first(lambda v: v.state("job") == "running") is None  # not true at the head
    assert tl.first(lambda v: v.exists("web", "/nope")) is None
    assert tl.first(lambda v: v.exists("web", orders), lo=15, hi=20) == 15
    assert tl.first(lambda v: v.state("web") == "exited", lo=22, monotone=False) == 22
    assert tl.first(lambda v: True, lo=20, hi=10) is None


# -- the script and `dockstate bisect` ------------------------------------------------------


def _script(history: History, *args: str, capsys: pytest.CaptureFixture[str]) -> Run:
    code = timetravel.main([str(history.path), *args])
    out, err = capsys.readouterr()
    return Run(code, out, err)


def test_script_at_prints_a_file_as_it_was(history: History) -> None:
    """`python -m dockstate.tools.timetravel STORE at SEQ CONTAINER:PATH` prints the bytes."""
    proc = subprocess.run(
        [sys.executable, "-m", "dockstate.tools.timetravel", str(history.path), "at", "12",
         "web:/var/lib/data/orders.db"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"o1\n", b"")


def test_script_at_lists_the_host_or_a_directory(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a path, `at` lists containers and volumes; with a directory, its entries."""
    web = history.web[:12]
    assert _script(history, "at", "23", capsys=capsys) == Run(
        0,
        "as of seq 23\n"
        f"  container web                  {web}  exited\n"
        f"  container job                  {history.job[:12]}  running\n"
        "  volume    data\n",
        "",
    )
    assert _script(history, "at", "14", "web:/var/lib/data", capsys=capsys) == Run(
        0,
        "as of seq 14\n"
        "  f          6  volume:data          /var/lib/data/a\n"
        "  f          3  volume:data          /var/lib/data/orders.db\n"
        "  f         10  volume:data          /var/lib/data/seed.txt\n"
        "  d          0  volume:data          /var/lib/data/x\n",
        "",
    )
    assert _script(history, "at", "8", "web:/app", capsys=capsys) == Run(
        1, "", "Error: No such container: web\n"
    )


def test_script_diff_and_history(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    """`diff A B` prints the diff's lines; `history TARGET` one line per event."""
    r = _script(history, "diff", "21", "27", capsys=capsys)
    assert r == Run(0, f"container web ({history.web[:12]}) exited -> running\n", "")
    r = _script(history, "history", "host:/srv/other.txt", capsys=capsys)
    assert r == Run(
        0, "       8  2023-11-14T22:13:20.000004+00:00  tt         HostFileWritten\n", ""
    )


def _bisect_out(seq: int, ts: int, command: str, evaluations: int) -> str:
    return (
        f"first seq: {seq}\n"
        f"time:      {_utc(ts).isoformat()}\n"
        f"command:   {command}\n"
        "session:   tt\n"
        f"(after {evaluations} evaluations)\n"
    )


def test_bisect_prints_the_first_seq_its_time_command_and_session(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--exists`, `--absent` and `--state`, in the script and in `dockstate bisect`."""
    with Timeline.open(history.path) as tl:
        ts = {e.seq: e.ts for e in tl.events()}
    exists = _script(history, "bisect", "--exists", "web:/var/lib/data/orders.db", capsys=capsys)
    lines = exists.out.splitlines()
    assert (exists.code, exists.err) == (0, "")
    assert lines[:4] == [
        "first seq: 12",
        f"time:      {_utc(ts[12]).isoformat()}",
        'command:   write {"container": "web", "path": "/var/lib/data/orders.db", "size": 3, '
        '"mode": 420}',
        "session:   tt",
    ]
    assert re.fullmatch(r"\(after \d+ evaluations\)", lines[4])
    assert cli(history.path, "bisect", "--exists", "web:/var/lib/data/orders.db") == exists
    # web exists and notes.txt is absent from the moment web is created
    absent = cli(history.path, "bisect", "--absent", "web:/app/notes.txt")
    assert absent.out.splitlines()[:3] == [
        "first seq: 9",
        f"time:      {_utc(ts[9]).isoformat()}",
        'command:   run {"image": "app:1", "name": "web", "volumes": ["data:/var/lib/data", '
        '"/srv/www:/www"], "mounts": [], "tmpfs": ["/tmp"], "auto_remove": false, '
        '"discard_on": null, "command": ""}',
    ]
    # exited came and went (web runs again at the head): found by scanning
    state = cli(history.path, "bisect", "--state", "web=exited")
    assert state.out.splitlines()[:4] == [
        "first seq: 21",
        f"time:      {_utc(ts[21]).isoformat()}",
        'command:   stop {"container": "web"}',
        "session:   tt",
    ]


def test_bisect_of_a_condition_that_never_held(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 and a sentence; a malformed condition is an error."""
    assert cli(history.path, "bisect", "--exists", "web:/nope") == Run(
        1, "never: the condition held at no point of the history\n", ""
    )
    assert cli(history.path, "bisect", "--state", "web") == Run(
        1, "", "Error: give CONTAINER=STATE\n"
    )
    assert _script(history, "bisect", "--absent", "web", capsys=capsys) == Run(
        1, "", "Error: give CONTAINER:PATH\n"
    )


def test_the_real_dockstate_bisect(history: History) -> None:
    """The installed script, in a subprocess."""
    script = Path(sys.executable).with_name("dockstate")
    proc = subprocess.run(
        [str(script), "--store", str(history.path), "bisect", "--state", "job=running"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines()[0] == "first seq: 23"


# -- first() agrees with a linear scan -----------------------------------------------------

CONTAINERS = ("c1", "c2")
FILES = ("/f1", "/d/f2", "/app/main.py")

ops = st.one_of(
    st.tuples(st.just("run"), st.sampled_from(CONTAINERS)),
    st.tuples(st.just("write"), st.sampled_from(CONTAINERS), st.sampled_from(FILES), st.binary(max_size=4)),
    st.tuples(st.just("delete"), st.sampled_from(CONTAINERS), st.sampled_from(FILES)),
    st.tuples(st.sampled_from(["stop", "start", "rm"]), st.sampled_from(CONTAINERS)),
    st.tuples(st.just("volume"), st.sampled_from(["v1", "v2"])),
    st.tuples(st.just("volume rm"), st.sampled_from(["v1", "v2"])),
)  # fmt: skip


def _apply(h: DockerHost, op: tuple[object, ...]) -> None:
    kind, *args = op
    with contextlib.suppress(DockstateError):
        if kind == "run":
            h.create("app:1", name=str(args[0]), volumes=[f"v1:/data{args[0]}"], start=True)
        elif kind == "write":
            h.write_file(str(args[0]), str(args[1]), bytes(args[2]))  # type: ignore[arg-type]
        elif kind == "delete":
            h.delete(str(args[0]), str(args[1]))
        elif kind == "stop":
            h.stop(str(args[0]))
        elif kind == "start":
            h.start(str(args[0]))
        elif kind == "rm":
            h.remove(str(args[0]), force=True)
        elif kind == "volume":
            h.volume_create(str(args[0]))
        else:
            h.volume_remove([str(args[0])])


def _timeline(history_ops: list[tuple[object, ...]], every: int = 3) -> Timeline:
    """A store with both containers running, then the ops applied (those Docker refuses
    leave no event), and a snapshot left every ``every`` events."""
    log = InMemoryEventLog(clock=FakeClock())
    h = DockerHost(log, ids=RandomIds(random.Random(3)), session="h")
    register_image(h, APP_IMAGE)
    for op in [("run", "c1"), ("run", "c2"), *history_ops]:
        _apply(h, op)
    Projector(log, every=every).state_at()
    return Timeline(log)


def _ever_created(name: str) -> Callable[[View], bool]:
    def p(v: View) -> bool:
        return any(c.name == name for c in [*v.host.containers.values(), *v.host.removed.values()])

    return p


def _monotone(kind: int, k: int) -> Callable[[View], bool]:
    """Predicates that, once true, stay true for ever after (removed containers are kept
    in `Host.removed`, so "ever created" and "ever removed" only grow)."""
    c2_created = _ever_created("c2")
    return [
        lambda v: v.seq >= k,
        lambda v: len(v.host.removed) >= 1,
        lambda v: c2_created(v) and v.seq >= k,
        lambda v: len(v.host.containers) + len(v.host.removed) >= 2 + k % 2,
        lambda v: len(v.host.removed) >= 1 or v.seq >= k,
    ][kind]


def _any(kind: int, k: int) -> Callable[[View], bool]:
    """Predicates that may come and go."""
    return [
        lambda v: v.state("c1") == "running",
        lambda v: v.exists("c2", "/f1"),
        lambda v: "v2" in v.volumes,
        lambda v: v.exists("c1", "/app/main.py") and v.seq % 2 == 0,
        lambda v: len(v.containers) == k % 3,
    ][kind]


def _linear(tl: Timeline, p: Callable[[View], bool], lo: int | None, hi: int | None) -> int | None:
    start = 0 if lo is None else max(0, min(lo, tl.head))
    end = tl.head if hi is None else max(0, min(hi, tl.head))
    return next((s for s in range(start, end + 1) if p(tl.at(s))), None)


bounds = st.one_of(st.none(), st.integers(0, 50))
histories = st.lists(ops, min_size=10, max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history_ops=histories,
    kind=st.integers(0, 4),
    k=st.integers(0, 40),
    lo=bounds,
    hi=bounds,
)
def test_first_of_a_monotone_predicate_agrees_with_a_linear_scan(
    history_ops: list[tuple[object, ...]], kind: int, k: int, lo: int | None, hi: int | None
) -> None:
    """Bisection over snapshots, then a scan of one stretch, finds the seq a scan finds."""
    tl = _timeline(history_ops)
    p = _monotone(kind, k)
    assert tl.first(p, lo, hi) == _linear(tl, p, lo, hi)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history_ops=histories,
    kind=st.integers(0, 4),
    k=st.integers(0, 40),
    lo=bounds,
    hi=bounds,
)
def test_first_without_monotony_agrees_with_a_linear_scan_for_any_predicate(
    history_ops: list[tuple[object, ...]], kind: int, k: int, lo: int | None, hi: int | None
) -> None:
    """`monotone=False` folds forward once and tests every seq, whatever the predicate."""
    tl = _timeline(history_ops)
    p = _any(kind, k)
    assert tl.first(p, lo, hi, monotone=False) == _linear(tl, p, lo, hi)


def test_first_on_a_long_history_with_many_snapshots_needs_few_evaluations() -> None:
    """300 writes, a snapshot every 3 events: a monotone question takes < 30 views."""
    history_ops = [("write", "c1", f"/f{i}", b"x") for i in range(300)]
    tl = _timeline(history_ops, every=3)
    assert len(tl._snapshot_seqs()) >= 100
    written = {e.data["path"]: e.seq for e in tl.events(type="FileWritten")}
    for i in (0, 137, 299):
        seq = tl.first(lambda v, i=i: v.exists("c1", f"/f{i}"))
        assert seq == written[f"/f{i}"]
        assert 0 < tl.evaluations < 30


def test_a_timeline_folds_with_the_stores_snapshot_interval() -> None:
    """`Timeline` reads the store's interval (``config --snapshot-every``): a view folded
    from the start leaves a snapshot every N events, as the CLI's reads do."""
    log = InMemoryEventLog(clock=FakeClock())
    h = DockerHost(log, ids=RandomIds(random.Random(3)), session="h")
    register_image(h, APP_IMAGE)
    for name in ("c1", "c2", "c3"):
        _apply(h, ("run", name))
    assert Timeline(log).reader.projector.every == asof.DEFAULT_EVERY
    log.set_meta(asof.EVERY_META, b"4")
    tl = Timeline(log)
    assert tl.reader.projector.every == 4
    assert sorted(c.name for c in tl.at(log.head().seq).containers.values()) == ["c1", "c2", "c3"]
    assert log.snapshot_seqs(asof.NAME, snapshot.VERSION) == list(range(4, log.head().seq, 4))
