"""``dockstate replay``: a recorded session re-executed through the current code.

Equal behaviour gives equal events, so a faithful replay reproduces the recording
byte for byte; a change of behaviour (the code patched here, or a destination in
a different state) is reported at the recorded seq of the first event that differs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dockstate.core import commands
from dockstate.core.commands import DockerHost
from dockstate.eventlog import LmdbEventLog
from dockstate.eventlog.envelope import Envelope
from dockstate.tools import exportfile
from dockstate.tools.replay import Report, command_groups, replay
from tests.tools.forensics_helpers import (
    Run,
    cli,
    envelopes,
    head,
    log_json,
    new_store,
    ok,
    projections,
    real_cli,
    session_store,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded store (``app:1`` at seq 1..4, session s1 after it): read only."""
    return session_store(tmp_path_factory)


@pytest.fixture(scope="module")
def session_file(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "s1.dsx"
    ok(source, "export", "--session", "s1", "-o", str(path))
    return path


@pytest.fixture(scope="module")
def source_reads(source: Path) -> dict[str, Run]:
    return projections(source)


@pytest.fixture(scope="module")
def recorded(source: Path) -> list[Envelope]:
    """The source's events (index = seq - 1)."""
    return envelopes(source)


def _groups(recorded: list[Envelope]) -> list[list[Envelope]]:
    return list(command_groups(recorded[4:]))


def _first(recorded: list[Envelope], type_: str, command: str | None = None) -> Envelope:
    return next(
        e
        for e in recorded
        if e.type == type_ and (command is None or (e.cmd and e.cmd[0] == command))
    )


def _replay_api(session_file: Path, dest: Path, **kwargs: Any) -> Report:
    with LmdbEventLog(dest, clock=time.time_ns, durable=False) as log:
        return replay(exportfile.read(session_file), log, **kwargs)


# -- a faithful replay ----------------------------------------------------------------------


def test_a_recorded_session_replays_without_divergence_byte_for_byte(
    session_file: Path,
    source: Path,
    source_reads: dict[str, Run],
    recorded: list[Envelope],
    tmp_path: Path,
) -> None:
    """Every command of the session (containers with volumes, binds and tmpfs; file writes,
    appends, deletes, mkdir, mv, chmod; the lifecycle; volumes; the host side) replays to the
    recorded events: the replay store's log is the source's."""
    dest = tmp_path / "dest"
    r = real_cli(source, "replay", str(session_file), "--store", str(dest))
    groups = _groups(recorded)
    assert (r.code, r.err) == (0, "")
    assert (
        r.out
        == f"replay matched: {len(groups)} commands, {len(recorded) - 4} events (into {dest})\n"
    )
    assert {g[0].cmd[0] for g in groups if g[0].cmd} >= {
        "run", "create", "write", "append", "rm", "mkdir", "mv", "chmod", "stop", "start",
        "restart", "pause", "unpause", "kill", "volume create", "volume rm", "volume prune",
        "host mkdir", "host write", "config", "image tag",
    }  # fmt: skip
    assert head(dest) == head(source)
    assert log_json(dest) == log_json(source)
    assert projections(dest) == source_reads


def test_replay_from_seq_1_records_the_image_build_as_a_fact(
    source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """A build's inputs (its context) are not in the log: its recorded events are appended as
    they are, and the commands after it run on the image they register."""
    everything = tmp_path / "all.dsx"
    ok(source, "export", "--from", "1", "-o", str(everything))
    dest = tmp_path / "dest"
    out = ok(source, "replay", str(everything), "--store", str(dest))
    groups = list(command_groups(recorded))
    assert groups[0][0].cmd is not None
    assert groups[0][0].cmd[0] == "image build"
    assert out == f"replay matched: {len(groups)} commands, {len(recorded)} events (into {dest})\n"
    assert head(dest) == head(source)


def test_replay_json_reports_the_match(
    session_file: Path, source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """`--json`: matched, command and event counts, no divergence, where it replayed."""
    dest = tmp_path / "dest"
    r = cli(source, "replay", str(session_file), "--store", str(dest), "--json")
    assert (r.code, r.err) == (0, "")
    assert json.loads(r.out) == {
        "matched": True,
        "commands": len(_groups(recorded)),
        "events": len(recorded) - 4,
        "divergence": None,
        "dest": str(dest),
    }


def test_replay_until_a_seq_stops_after_the_command_that_recorded_it(
    session_file: Path, source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """`--until SEQ` replays the commands up to the one that recorded SEQ, included."""
    run = _first(recorded, "ContainerCreated")  # mid-command: the run's second event
    dest = tmp_path / "dest"
    out = ok(source, "replay", str(session_file), "--store", str(dest), "--until", str(run.seq))
    # volume create, host mkdir, host write, run (whose last event is ContainerStarted)
    started = _first(recorded, "ContainerStarted")
    assert out == f"replay matched: 4 commands, {started.seq - 4} events (into {dest})\n"
    assert head(dest)[0] == started.seq


def test_replay_step_without_a_terminal_prints_each_command_and_its_events(
    session_file: Path, source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """`--step` with stdin not a terminal does not wait: it prints each command, then the
    events it produced, then the verdict."""
    dest = tmp_path / "dest"
    r = real_cli(
        source, "replay", str(session_file), "--store", str(dest), "--step", "--until", "12"
    )
    run = _first(recorded, "ContainerCreated")
    anon = recorded[run.seq - 2].data["name"]
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [
        '[seq 5] volume create {"name": "orders", "driver": "local", "labels": {}, "options": {}}',
        "    VolumeCreated name=orders",
        '[seq 6] host mkdir {"path": "/srv/www", "parents": true}',
        "    HostDirCreated path=/srv/www",
        '[seq 7] host write {"path": "/srv/www/index.html", "size": 14, "append": false}',
        "    HostFileWritten path=/srv/www/index.html size=14",
        '[seq 8] run {"image": "app:1", "name": "web", "volumes": ["orders:/var/lib/orders", '
        '"/srv/www:/www"], "mounts": [], "tmpfs": ["/tmp"], "auto_remove": false, '
        '"discard_on": null, "command": ""}',
        f"    VolumeCreated name={anon}",
        "    ContainerCreated name=web",
        f"    VolumePopulated name={anon}",
        "    ContainerStarted",
        '[seq 12] write {"container": "web", "path": "/var/lib/orders/orders.db", "size": 8, '
        '"mode": 420}',
        "    FileWritten path=/var/lib/orders/orders.db size=8 volume=orders",
        f"replay matched: 5 commands, 8 events (into {dest})",
    ]


def test_replay_of_a_tampered_export_is_refused(
    session_file: Path, source: Path, tmp_path: Path
) -> None:
    """The file is verified before anything is replayed."""
    bad = tmp_path / "bad.dsx"
    bad.write_bytes(session_file.read_bytes()[:-1])
    dest = tmp_path / "dest"
    r = cli(source, "replay", str(bad), "--store", str(dest))
    assert r == Run(1, "", f"Error: {bad}: truncated export (no end record)\n")
    assert head(dest)[0] == 0


# -- the code under test changed --------------------------------------------------------------


def test_a_changed_stop_exit_code_diverges_at_the_first_stop(
    session_file: Path,
    recorded: list[Envelope],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `stop` recording exit code 137, the replay stops at the recorded seq of the first
    ContainerStopped, showing both events and the containers' different exit codes."""
    monkeypatch.setattr(commands, "STOP_EXIT_CODE", 137)
    stopped = _first(recorded, "ContainerStopped", "stop")
    web = stopped.data["container"]
    dest = tmp_path / "dest"
    r = cli(dest, "replay", str(session_file), "--store", str(dest))
    commands_before = sum(1 for g in _groups(recorded) if g[0].seq <= stopped.seq)
    assert (r.code, r.err) == (1, "")
    assert r.out == (
        f'replay diverged at seq {stopped.seq}, in command: stop {{"container": "web"}}\n'
        "  expected:\n"
        f'    {stopped.seq:>6} ContainerStopped {{"container": "{web}", "exit_code": 143}}\n'
        "  got:\n"
        f'    {stopped.seq:>6} ContainerStopped {{"container": "{web}", "exit_code": 137}}\n'
        "  state difference (expected -> got):\n"
        f"    container web ({web[:12]}) exited (143) -> exited (137)\n"
        f"(after {commands_before} commands; replay store {dest})\n"
    )


def test_a_write_that_drops_a_byte_diverges_at_the_first_write_with_the_size_difference(
    session_file: Path,
    recorded: list[Envelope],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Patched `write_file` loses the last byte: the report (API and --json) names the first
    FileWritten's seq, the expected and actual events, and the file's two sizes."""
    original = DockerHost.write_file

    def lossy(self: DockerHost, ref: str, path: str, data: bytes, **kw: Any) -> str:
        return original(self, ref, path, data[:-1], **kw)

    monkeypatch.setattr(DockerHost, "write_file", lossy)
    written = _first(recorded, "FileWritten")
    report = _replay_api(session_file, tmp_path / "dest")
    d = report.divergence
    assert d is not None
    assert (d.seq, d.command, d.error) == (written.seq, "write", None)
    assert d.args == {
        "container": "web",
        "path": "/var/lib/orders/orders.db",
        "size": 8,
        "mode": 420,
    }
    assert [(e["seq"], e["type"], e["data"]["size"]) for e in d.expected] == [
        (written.seq, "FileWritten", 8)
    ]
    assert [(e["seq"], e["type"], e["data"]["size"]) for e in d.got] == [
        (written.seq, "FileWritten", 7)
    ]
    assert d.expected[0]["data"]["chunks"] != d.got[0]["data"]["chunks"]
    assert d.state == ["volume orders: /orders.db changed (8B -> 7B)"]
    assert report.to_json()["matched"] is False
    r = cli(tmp_path, "replay", str(session_file), "--store", str(tmp_path / "dest2"), "--json")
    assert r.code == 1
    assert json.loads(r.out)["divergence"] == json.loads(json.dumps(report.to_json()["divergence"]))


def test_a_command_that_records_nothing_diverges_with_no_events(
    session_file: Path,
    recorded: list[Envelope],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Patched `chmod` does nothing: divergence at the recorded FileModeChanged, "(no events)",
    and the mode change shows as a changed file in the state difference."""
    monkeypatch.setattr(DockerHost, "chmod", lambda self, ref, path, mode: ref)
    chmod = _first(recorded, "FileModeChanged")
    dest = tmp_path / "dest"
    r = cli(dest, "replay", str(session_file), "--store", str(dest))
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0] == (
        f"replay diverged at seq {chmod.seq}, in command: chmod "
        '{"container": "web", "path": "/app/logs/cache.txt", "mode": 384}'
    )
    assert lines[lines.index("  got:") + 1] == "    (no events)"
    assert lines[lines.index("  state difference (expected -> got):") + 1 :][:1] == [
        "    container web rw: /app/logs/cache.txt changed (7B -> 7B)"
    ]


def test_a_patched_behaviour_after_the_until_seq_is_not_reached(
    session_file: Path,
    recorded: list[Envelope],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--until` before the first stop: the changed stop is never replayed, so it matches."""
    monkeypatch.setattr(commands, "STOP_EXIT_CODE", 137)
    stopped = _first(recorded, "ContainerStopped", "stop")
    report = _replay_api(session_file, tmp_path / "dest", until=stopped.seq - 1)
    assert report.matched
    assert report.events == stopped.seq - 1 - 4


# -- the destination in another state --------------------------------------------------------


def test_replay_into_a_store_where_the_name_is_taken_diverges_at_the_create(
    session_file: Path,
    recorded: list[Envelope],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Session B (another `web`) recorded in DEST first: replaying session A's `run --name web`
    is refused there, reported at the run's first recorded seq with Docker's message."""
    dest = new_store(tmp_path_factory, tmp_path / "dest")
    ok(dest, "run", "--name", "web", "app:1", env={"DOCKSTATE_SESSION": "b"})
    other = next(e for e in envelopes(dest) if e.type == "ContainerCreated").data["container"]
    run_group = next(g for g in _groups(recorded) if g[0].cmd and g[0].cmd[0] == "run")
    web = run_group[1].data["container"]
    anon = run_group[0].data["name"]
    before = head(dest)
    report = _replay_api(session_file, dest)
    d = report.divergence
    assert d is not None
    assert (d.seq, d.command, d.got) == (run_group[0].seq, "run", [])
    assert d.error == (
        f'Conflict. The container name "/web" is already in use by container "{other}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert [e["seq"] for e in d.expected] == [e.seq for e in run_group]
    # only what the refused command would have made differs; B's own container does not
    assert d.state == [
        f"container web ({web[:12]}) removed (was running)",
        f"volume {anon} removed",
        f"volume {anon}: /seed.txt removed (was 5B)",
    ]
    # the three commands before the run were replayed into DEST
    assert head(dest)[0] == before[0] + 3


def test_replay_into_a_store_that_already_has_the_volume_diverges_at_once(
    session_file: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`volume create orders` on a store that has it records nothing (Docker's create is
    idempotent): the first recorded event is the divergence, with no refusal."""
    dest = new_store(tmp_path_factory, tmp_path / "dest")
    ok(dest, "volume", "create", "orders")
    r = cli(dest, "replay", str(session_file), "--store", str(dest))
    assert r == Run(
        1,
        'replay diverged at seq 5, in command: volume create {"name": "orders", "driver": '
        '"local", "labels": {}, "options": {}}\n'
        "  expected:\n"
        '         5 VolumeCreated {"name": "orders", "anonymous": false, "driver": "local", '
        '"labels": {}, "options": {}}\n'
        "  got:\n"
        "    (no events)\n"
        "  state difference (expected -> got):\n"
        "    (none)\n"
        f"(after 1 commands; replay store {dest})\n",
        "",
    )


def test_replay_of_a_stretch_that_starts_mid_session_diverges_at_its_first_command(
    source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """An export from the first write on, into a fresh store: `web` does not exist there, so
    the write is refused and reported (not a crash of the replay)."""
    written = _first(recorded, "FileWritten")
    part = tmp_path / "part.dsx"
    ok(source, "export", "--from", str(written.seq), "-o", str(part))
    dest = tmp_path / "dest"
    r = cli(dest, "replay", str(part), "--store", str(dest), "--json")
    assert (r.code, r.err) == (1, "")
    d = json.loads(r.out)["divergence"]
    assert (d["seq"], d["command"], d["error"], d["got"]) == (
        written.seq,
        "write",
        "No such container: web",
        [],
    )
    web = written.data["container"][:12]
    assert d["state"] == [
        f"the recorded events do not apply to the destination: event {written.seq}: "
        f"no container {web} to act on"
    ]


def test_replay_of_the_rest_of_a_session_on_top_of_its_beginning_matches(
    source: Path, recorded: list[Envelope], tmp_path: Path
) -> None:
    """Import seq 1..N, then replay N+1..head into that store: it continues where it was."""
    written = _first(recorded, "FileWritten")
    start, rest = tmp_path / "start.dsx", tmp_path / "rest.dsx"
    ok(source, "export", "--from", "1", "--to", str(written.seq - 1), "-o", str(start))
    ok(source, "export", "--from", str(written.seq), "-o", str(rest))
    dest = tmp_path / "dest"
    ok(dest, "import", str(start))
    out = ok(dest, "replay", str(rest), "--store", str(dest))
    assert out.startswith("replay matched: ")
    assert head(dest) == head(source)


def test_the_real_replay_exits_1_on_divergence(
    session_file: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The installed script's exit code on a divergence is 1."""
    dest = new_store(tmp_path_factory, tmp_path / "dest")
    ok(dest, "volume", "create", "orders")
    r = real_cli(dest, "replay", str(session_file), "--store", str(dest))
    assert (r.code, r.err) == (1, "")
    assert r.out.startswith("replay diverged at seq 5, in command: volume create")
