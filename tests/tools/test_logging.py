"""Logging set-up: structured lines on the chosen stream, JSON or console, never on stdout."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from dockstate.tools.logging import configure


class TerminalIO(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Each test configures structlog afresh and leaves the defaults behind."""
    yield
    structlog.reset_defaults()


def emit(stream: io.StringIO) -> str:
    # A fresh logger each time: a cached one keeps the stream it first wrote to.
    structlog.get_logger("dockstate.test").warning("store.map_grown", map_size=4096)
    return stream.getvalue()


def test_json_format_writes_one_json_object_per_line(monkeypatch: pytest.MonkeyPatch):
    """With fmt="json" every log call is one line of JSON with event, level and time."""
    monkeypatch.delenv("DOCKSTATE_LOG_FORMAT", raising=False)
    stream = io.StringIO()
    configure("json", stream=stream)

    structlog.get_logger("dockstate.test").warning("first", n=1)
    structlog.get_logger("dockstate.test").error("second", path="/x")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "first"
    assert first["n"] == 1
    assert first["level"] == "warning"
    assert first["timestamp"].endswith("Z")
    assert (second["event"], second["level"], second["path"]) == ("second", "error", "/x")


def test_the_environment_variable_selects_json(monkeypatch: pytest.MonkeyPatch):
    """DOCKSTATE_LOG_FORMAT=json gives JSON lines even on a terminal."""
    monkeypatch.setenv("DOCKSTATE_LOG_FORMAT", "json")
    stream = TerminalIO()
    configure(stream=stream)

    line = json.loads(emit(stream))

    assert line["event"] == "store.map_grown"
    assert line["map_size"] == 4096


def test_an_explicit_format_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    """A format passed in (the --log-format flag) overrides DOCKSTATE_LOG_FORMAT."""
    monkeypatch.setenv("DOCKSTATE_LOG_FORMAT", "json")
    stream = io.StringIO()
    configure("console", stream=stream)

    out = emit(stream)

    assert "store.map_grown" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_a_terminal_gets_console_lines_by_default(monkeypatch: pytest.MonkeyPatch):
    """Without a format or the variable, a terminal gets human-readable console lines."""
    monkeypatch.delenv("DOCKSTATE_LOG_FORMAT", raising=False)
    stream = TerminalIO()
    configure(stream=stream)

    out = emit(stream)

    assert "store.map_grown" in out
    assert "map_size" in out
    assert not out.lstrip().startswith("{")


def test_console_format_writes_readable_lines(monkeypatch: pytest.MonkeyPatch):
    """fmt="console" writes the event name and its key=value pairs, not JSON."""
    monkeypatch.delenv("DOCKSTATE_LOG_FORMAT", raising=False)
    stream = io.StringIO()
    configure("console", stream=stream)

    out = emit(stream)

    assert "store.map_grown" in out
    assert "map_size=4096" in out
    assert "\x1b[" not in out  # no colours when the stream is not a terminal


def test_a_pipe_gets_json_by_default(monkeypatch: pytest.MonkeyPatch):
    """Without a format or the variable, a stream that is not a terminal gets JSON."""
    monkeypatch.delenv("DOCKSTATE_LOG_FORMAT", raising=False)
    stream = io.StringIO()
    configure(stream=stream)

    assert json.loads(emit(stream))["event"] == "store.map_grown"


def test_calls_below_the_level_are_dropped():
    """Only calls at or above the configured level are written."""
    stream = io.StringIO()
    configure("json", level="error", stream=stream)

    logger = structlog.get_logger("dockstate.test")
    logger.info("quiet")
    logger.warning("quiet too")
    logger.error("loud")

    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["loud"]


def test_an_unknown_format_is_refused():
    """A format other than console or json is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="console, json"):
        configure("xml", stream=io.StringIO())


LIBRARY_LOGS = """
    import sys, time
    from dockstate.eventlog import LmdbEventLog, NewEvent
    from dockstate.tools.logging import configure
    stream = open(sys.argv[2], "w") if len(sys.argv) > 2 else None
    configure("json", level="info", stream=stream)
    # A 64 KiB map must grow: the store says so through structlog.get_logger(__name__).
    with LmdbEventLog(sys.argv[1], clock=time.time_ns, map_size=64 << 10) as log:
        log.write(lambda tx: tx.put_blob(bytes(300 << 10)))
        log.append([NewEvent("Grown", {})])
"""


def run_library(*args: object) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: loggers cache their configuration on first use.
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LIBRARY_LOGS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_map_growth_lines(text: str, store: Path) -> None:
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines
    assert {line["event"] for line in lines} == {"store.map_grown"}
    assert all(line["path"] == str(store) for line in lines)
    assert all(line["level"] == "info" for line in lines)


def test_library_log_calls_go_to_stderr_and_never_to_stdout(tmp_path: Path):
    """By default a log line from library code (the store growing) lands on stderr, not stdout."""
    child = run_library(tmp_path / "store")

    assert child.returncode == 0, child.stderr
    assert child.stdout == ""
    assert_map_growth_lines(child.stderr, tmp_path / "store")


def test_library_log_calls_reach_the_stream_given(tmp_path: Path):
    """Given a stream, library log lines go there and neither stdout nor stderr sees them."""
    child = run_library(tmp_path / "store", tmp_path / "log.jsonl")

    assert child.returncode == 0, child.stderr
    assert (child.stdout, child.stderr) == ("", "")
    assert_map_growth_lines((tmp_path / "log.jsonl").read_text(), tmp_path / "store")
