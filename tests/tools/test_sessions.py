"""Recording sessions: ``dockstate session start|stop|ls`` and ``DOCKSTATE_SESSION``.

The session verbs run in a subprocess through the installed ``dockstate`` script,
as a person types them; what they recorded is then read back from the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tools.forensics_helpers import (
    cli,
    head,
    log_json,
    new_store,
    ok,
    real_cli,
    real_ok,
)


@dataclass(frozen=True)
class Recorded:
    store: Path
    started: str
    stopped: str
    listing_while_started: str
    #: seqs of the events of each step, by step name.
    seqs: dict[str, list[int]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A store where session s1 was started, overridden once by DOCKSTATE_SESSION=s2,
    stopped, and followed by commands in s2 (from the environment) and in no session."""
    base = tmp_path_factory.mktemp("sessions")
    store = new_store(tmp_path_factory, base / "store")
    seqs: dict[str, list[int]] = {}

    def step(name: str, *args: str, env: dict[str, str] | None = None, real: bool = False) -> None:
        before = head(store)[0]
        (real_ok if real else ok)(store, *args, env=env)
        seqs[name] = list(range(before + 1, head(store)[0] + 1))

    # the session verbs and one command of each kind run as separate processes; the
    # other commands run in this process (through the same entry point) to save time
    started = real_ok(store, "session", "start", "s1")
    step("volume create", "volume", "create", "v1")
    step("run", "run", "--name", "web", "-v", "v1:/v", "app:1", real=True)
    step("write", "fs", "write", "web", "/v/a.txt", "--data", "a")
    listing = real_ok(store, "session", "ls")
    step("env over started", "volume", "create", "v2", env={"DOCKSTATE_SESSION": "s2"})
    stopped = real_ok(store, "session", "stop")
    step("env", "stop", "web", env={"DOCKSTATE_SESSION": "s2"}, real=True)
    step("none", "volume", "create", "v3")
    return Recorded(store, started, stopped, listing, seqs)


def _by_seq(store: Path) -> dict[int, dict[str, Any]]:
    return {e["seq"]: e for e in log_json(store)}


def test_start_and_stop_print_the_session_name(recorded: Recorded) -> None:
    """`session start NAME` and `session stop` each print the session's name."""
    assert recorded.started == "s1\n"
    assert recorded.stopped == "s1\n"


def test_events_carry_the_started_session_until_it_is_stopped(recorded: Recorded) -> None:
    """Every event recorded between start and stop carries the session; after stop, none."""
    events = _by_seq(recorded.store)
    for step in ("volume create", "run", "write"):
        assert recorded.seqs[step]
        assert {events[s]["session"] for s in recorded.seqs[step]} == {"s1"}
    assert [events[s]["session"] for s in recorded.seqs["none"]] == [""]
    # the image was built before any session was started
    assert {events[s]["session"] for s in range(1, 5)} == {""}


def test_dockstate_session_variable_tags_events_and_wins_over_a_started_session(
    recorded: Recorded,
) -> None:
    """DOCKSTATE_SESSION names the session of a command, whether or not one is started."""
    events = _by_seq(recorded.store)
    assert [events[s]["session"] for s in recorded.seqs["env over started"]] == ["s2"]
    assert [events[s]["session"] for s in recorded.seqs["env"]] == ["s2"]


def test_every_event_carries_the_command_that_produced_it(recorded: Recorded) -> None:
    """Each event names its command and arguments; the events of one command share them."""
    events = _by_seq(recorded.store)
    assert all(e["command"] is not None for e in events.values())
    names = {
        step: {events[s]["command"]["name"] for s in seqs} for step, seqs in recorded.seqs.items()
    }
    assert names == {
        "volume create": {"volume create"},
        "run": {"run"},
        "write": {"write"},
        "env over started": {"volume create"},
        "env": {"stop"},
        "none": {"volume create"},
    }
    assert {events[s]["command"]["name"] for s in range(1, 5)} == {"image build"}
    run_args = events[recorded.seqs["run"][0]]["command"]["args"]
    assert (run_args["image"], run_args["name"], run_args["volumes"]) == ("app:1", "web", ["v1:/v"])
    write = events[recorded.seqs["write"][0]]
    assert write["command"]["args"] == {
        "container": "web",
        "path": "/v/a.txt",
        "size": 1,
        "mode": 420,
    }


def test_session_ls_json_gives_each_session_its_span_counts_and_commands(
    recorded: Recorded,
) -> None:
    """`session ls --format json`: name, first and last seq and time, events, commands."""
    events = _by_seq(recorded.store)
    rows = {
        r["name"]: r for r in real_cli(recorded.store, "session", "ls", "--format", "json").json()
    }
    s = recorded.seqs
    s1 = s["volume create"] + s["run"] + s["write"]
    s2 = s["env over started"] + s["env"]
    none = [1, 2, 3, 4, *s["none"]]
    assert rows == {
        name: {
            "name": name,
            "first_seq": seqs[0],
            "last_seq": seqs[-1],
            "first_time": events[seqs[0]]["time"],
            "last_time": events[seqs[-1]]["time"],
            "events": len(seqs),
            "commands": commands,
            "command_counts": counts,
        }
        for name, seqs, commands, counts in [
            ("", none, 2, {"image build": 1, "volume create": 1}),
            ("s1", s1, 3, {"volume create": 1, "run": 1, "write": 1}),
            ("s2", s2, 2, {"volume create": 1, "stop": 1}),
        ]
    }


def test_session_ls_table_marks_the_started_session(recorded: Recorded) -> None:
    """The table lists sessions in order of first event; a star marks the started one."""
    before = [line.split() for line in recorded.listing_while_started.splitlines()]
    assert before[0] == [
        "SESSION", "FIRST", "SEQ", "LAST", "SEQ", "FIRST", "TIME", "LAST", "TIME", "EVENTS", "COMMANDS",
    ]  # fmt: skip
    s1 = recorded.seqs["volume create"] + recorded.seqs["run"] + recorded.seqs["write"]
    assert [row[:3] for row in before[1:]] == [["(none)", "1", "4"], ["s1", "*", str(s1[0])]]
    assert before[2][4:] == [before[2][4], before[2][5], str(len(s1)), "3"]
    after = [line.split() for line in real_ok(recorded.store, "session", "ls").splitlines()]
    assert [row[0] for row in after[1:]] == ["(none)", "s1", "s2"]
    assert "*" not in {cell for row in after for cell in row}


def test_session_ls_at_a_seq_counts_only_the_events_up_to_it(recorded: Recorded) -> None:
    """`session ls --at SEQ` answers as of that seq."""
    at = recorded.seqs["run"][-1]
    rows = cli(recorded.store, "session", "ls", "--format", "json", "--at", str(at)).json()
    assert [(r["name"], r["first_seq"], r["last_seq"], r["commands"]) for r in rows] == [
        ("", 1, 4, 1),
        ("s1", recorded.seqs["volume create"][0], at, 2),
    ]


def test_stopping_when_no_session_is_started_is_refused(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`session stop` without a started session: one error line, exit 1."""
    store = new_store(tmp_path_factory, tmp_path / "store")
    r = real_cli(store, "session", "stop")
    assert (r.code, r.out, r.err) == (1, "", "Error: no session is started\n")


def test_a_session_name_with_whitespace_is_refused(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Names are single words (they appear in tables); nothing is started."""
    store = new_store(tmp_path_factory, tmp_path / "store")
    r = cli(store, "session", "start", "two words")
    assert (r.code, r.out, r.err) == (1, "", "Error: invalid session name 'two words'\n")
    assert cli(store, "session", "stop").err == "Error: no session is started\n"
