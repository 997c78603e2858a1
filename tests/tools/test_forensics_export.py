"""Export files: ``dockstate export``, ``dockstate verify FILE`` and ``dockstate import``.

An export is one self-contained file: its events with their hash chain, the image
registrations they depend on, and every blob they reference. It verifies on its
own, any edit makes it fail, and importing it into an empty store reproduces
what the source store shows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dockstate.eventlog.envelope import encode
from dockstate.tools import exportfile
from tests.tools.forensics_helpers import (
    Run,
    cli,
    envelopes,
    head,
    log_json,
    new_store,
    ok,
    pack_records,
    projections,
    real_cli,
    record_offsets,
    records,
    session_span,
    session_store,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded store (``app:1`` at seq 1..4, session s1 after it): read only."""
    return session_store(tmp_path_factory)


@pytest.fixture(scope="module")
def source_reads(source: Path) -> dict[str, Run]:
    """What the source shows (`projections`): imports must show the same."""
    return projections(source)


@pytest.fixture(scope="module")
def session_file(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session s1 exported."""
    path = tmp_path_factory.mktemp("exports") / "s1.dsx"
    ok(source, "export", "--session", "s1", "-o", str(path))
    return path


def _verify_line(path: Path, first: int, last: int, seeds: int, head_hash: bytes) -> str:
    blobs = sum(1 for r in records(path) if r[0] == "blob")
    return (
        f"ok: export of seq {first}..{last} ({last - first + 1} events, {seeds} image records, "
        f"{blobs} blobs), head {head_hash.hex()}\n"
    )


# -- export and verify --------------------------------------------------------------------


def test_export_of_a_session_holds_its_stretch_and_verifies(source: Path, tmp_path: Path) -> None:
    """`export --session` writes the session's first..last seq; the real `verify` says ok."""
    first, last = session_span(source)
    out = tmp_path / "s1.dsx"
    assert ok(source, "export", "--session", "s1", "-o", str(out)) == (
        f"exported session s1 {first}..{last} to {out}\n"
    )
    assert not out.with_name("s1.dsx.part").exists()
    r = real_cli(source, "verify", str(out))
    assert (r.code, r.err) == (0, "")
    assert r.out == _verify_line(out, first, last, 4, head(source)[1])


def test_export_file_is_header_seeds_events_and_end_with_blobs_before_use(
    source: Path, tmp_path: Path
) -> None:
    """The file: a header, the image registrations, the events byte for byte, an end record;
    each blob comes before the first record that needs it."""
    out = tmp_path / "range.dsx"
    assert ok(source, "export", "--from", "8", "--to", "20", "-o", str(out)) == (
        f"exported events 8..20 to {out}\n"
    )
    stored = envelopes(source)
    items = records(out)
    header = items[0]
    assert header[0] == "header"
    assert {k: v for k, v in header[1].items() if k != "created"} == {
        "format": "dockstate-export",
        "version": 1,
        "store_id": _store_id(source),
        "from": 8,
        "to": 20,
        "session": None,
        "prev": stored[7].prev,
    }
    kinds = [r[0] for r in items]
    assert kinds[-1] == "end"
    assert [r[1] for r in items if r[0] == "seed"] == [encode(e) for e in stored[:4]]
    assert [r[1] for r in items if r[0] == "event"] == [encode(e) for e in stored[7:20]]
    seen: set[bytes] = set()
    for r in items:
        if r[0] == "blob":
            assert hashlib.sha256(r[2]).digest() == r[1]
            seen.add(r[1])
        elif r[0] in ("seed", "event"):
            env = exportfile.decode(r[1])
            assert set(exportfile._direct_blobs(env)) <= seen
    end = items[-1][1]
    assert (end["events"], end["seeds"], end["blobs"]) == (13, 4, len(seen))
    assert end["head"] == stored[20].prev  # the chain hash after event 20


def _store_id(store: Path) -> str:
    from dockstate.eventlog import LmdbEventLog

    with LmdbEventLog(store, clock=lambda: 0, readonly=True) as log:
        return log.store_id


def test_export_of_a_range_verifies_with_the_chain_hash_at_its_end(
    source: Path, tmp_path: Path
) -> None:
    """`export --from A --to B`: verify reports A..B and the chain hash after B; a stretch
    without a container creation needs no image records."""
    after_20 = envelopes(source)[20].prev
    out = tmp_path / "range.dsx"
    ok(source, "export", "--from", "8", "--to", "20", "-o", str(out))
    assert ok(source, "verify", str(out)) == _verify_line(out, 8, 20, 4, after_20)
    ok(source, "export", "--from", "12", "--to", "20", "-o", str(out))
    assert ok(source, "verify", str(out)) == _verify_line(out, 12, 20, 0, after_20)


def test_export_from_seq_1_needs_no_seeds_and_ends_at_the_store_head(
    source: Path, tmp_path: Path
) -> None:
    """From seq 1 to the head (no --to): the file's head is the store's, as `verify` prints it."""
    out = tmp_path / "all.dsx"
    last = head(source)[0]
    assert ok(source, "export", "--from", "1", "-o", str(out)) == (
        f"exported events 1..{last} to {out}\n"
    )
    store_line = ok(source, "verify")
    assert store_line == f"ok: {last} events, head {head(source)[1].hex()}\n"
    assert ok(source, "verify", str(out)) == _verify_line(out, 1, last, 0, head(source)[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--session", "nope"), "no events were recorded in session 'nope'"),
        (("--from", "60", "--to", "70"), "nothing to export in seq 60..70 (the log holds 1..51)"),
        (("--from", "9", "--to", "3"), "nothing to export in seq 9..3 (the log holds 1..51)"),
    ],
)
def test_export_of_nothing_is_refused(
    source: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """An unknown session or an empty range: one error line, no file left behind."""
    assert head(source)[0] == 51
    out = tmp_path / "x.dsx"
    r = cli(source, "export", *args, "-o", str(out))
    assert (r.code, r.out, r.err) == (1, "", f"Error: {message}\n")
    assert list(tmp_path.iterdir()) == []


# -- tampering ---------------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]


def _event_bytes_at(path: Path, seq: int) -> int:
    """Where event ``seq``'s envelope bytes start in the file."""
    raw = next(
        r[1] for r in records(path) if r[0] == "event" and exportfile.decode(r[1]).seq == seq
    )
    return path.read_bytes().index(raw)


def test_repacking_the_records_unchanged_gives_the_same_file(session_file: Path) -> None:
    """The record helpers used below to tamper with files change nothing by themselves."""
    assert pack_records(records(session_file)) == session_file.read_bytes()


def _dropped(session_file: Path, which: int) -> bytes:
    """The file without its record number ``which``."""
    items = records(session_file)
    return pack_records(items[:which] + items[which + 1 :])


def _tampered(session_file: Path, how: str) -> tuple[bytes, str]:
    """The file's bytes altered in one way, and the problem `verify` should report."""
    data = session_file.read_bytes()
    items = records(session_file)
    kinds = [r[0] for r in items]
    seqs = [exportfile.decode(r[1]).seq if r[0] == "event" else None for r in items]
    first_blob = items[1][1]
    assert kinds[1] == "blob"
    if how == "flip a byte in an event":
        # in the path of seq 16 (FileRenamed /app/cache.txt): seq 17 no longer links to it
        at = data.index(b"cache.txt", _event_bytes_at(session_file, 16))
        return _flip(data, at), "event 17 does not link to the event before it"
    if how == "flip a byte in the last event":
        at = data.index(b"/srv/www/index.html", _event_bytes_at(session_file, 51))
        return _flip(data, at + 5), "the file was altered: its digest does not match"
    if how == "flip a byte in a blob":
        end = record_offsets(session_file)[1][2]
        return _flip(data, end - 1), f"blob {first_blob.hex()} does not match its digest"
    if how == "flip a byte in the header":
        end = record_offsets(session_file)[0][2]
        return _flip(data, end - 3), "the file was altered: its digest does not match"
    if how == "truncate it":
        return data[: len(data) // 2], "truncated export (no end record)"
    if how == "cut off its last byte":
        return data[:-1], "truncated export (no end record)"
    if how == "append bytes after the end":
        return data + b"\x00", "unexpected data after the end record"
    if how == "drop an event in the middle":
        problem = "event 31 does not link to the event before it"
        return _dropped(session_file, seqs.index(30)), problem
    if how == "drop the first blob":
        # the first seed (a layer registration) names it in its table field
        needing = exportfile.decode(items[kinds.index("seed")][1])
        return _dropped(session_file, 1), (
            f"event {needing.seq} needs blob {first_blob.hex()}, which is missing"
        )
    if how == "drop a seed":
        return _dropped(session_file, kinds.index("seed")), (
            "the file was altered: its digest does not match"
        )
    if how == "drop the header":
        return _dropped(session_file, 0), "not a dockstate export (no header)"
    assert how == "drop the end record"
    return _dropped(session_file, len(items) - 1), "truncated export (no end record)"


TAMPERING = [
    "flip a byte in an event",
    "flip a byte in the last event",
    "flip a byte in a blob",
    "flip a byte in the header",
    "truncate it",
    "cut off its last byte",
    "append bytes after the end",
    "drop an event in the middle",
    "drop the first blob",
    "drop a seed",
    "drop the header",
    "drop the end record",
]


@pytest.mark.parametrize("how", TAMPERING)
def test_a_tampered_export_fails_verification(
    session_file: Path, source: Path, tmp_path: Path, how: str
) -> None:
    """Any edit of an export, byte or record, is reported as the first problem found."""
    bad = tmp_path / "bad.dsx"
    raw, problem = _tampered(session_file, how)
    bad.write_bytes(raw)
    assert cli(source, "verify", str(bad)) == Run(1, f"bad: {bad}: {problem}\n", "")


def test_the_real_verify_exits_1_on_a_tampered_export(
    session_file: Path, source: Path, tmp_path: Path
) -> None:
    """The installed script prints `bad:` and exits 1."""
    bad = tmp_path / "bad.dsx"
    bad.write_bytes(session_file.read_bytes()[:-1])
    r = real_cli(source, "verify", str(bad))
    assert (r.code, r.out, r.err) == (1, f"bad: {bad}: truncated export (no end record)\n", "")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "truncated export (no end record)"),
        (b"hello world", "not a dockstate export (bad record at byte 0)"),
        (None, "no such file"),
    ],
)
def test_verify_of_something_else_than_an_export_fails(
    source: Path, tmp_path: Path, content: bytes | None, problem: str
) -> None:
    """An empty file, a text file, a missing file: `bad:` and exit 1."""
    path = tmp_path / "thing"
    if content is not None:
        path.write_bytes(content)
    expected = f"bad: open {path}: {problem}\n" if content is None else f"bad: {path}: {problem}\n"
    assert cli(source, "verify", str(path)) == Run(1, expected, "")


# -- import ------------------------------------------------------------------------------


def test_import_of_a_full_export_into_an_empty_store_is_byte_identical(
    source: Path, source_reads: dict[str, Run], tmp_path: Path
) -> None:
    """Everything from seq 1: the destination's log, head and every read equal the source's."""
    out = tmp_path / "all.dsx"
    ok(source, "export", "--from", "1", "-o", str(out))
    dest = tmp_path / "dest"
    assert ok(dest, "import", str(out)) == "imported 51 events (seq 1..51) and 0 image records\n"
    assert head(dest) == head(source)
    assert ok(dest, "verify") == ok(source, "verify")
    assert log_json(dest) == log_json(source)
    assert projections(dest) == source_reads


def test_import_of_a_session_into_an_empty_store_reproduces_the_projections(
    session_file: Path, source: Path, source_reads: dict[str, Run], tmp_path: Path
) -> None:
    """The session's images come with it; containers, volumes, files, host paths, the audit
    ledger and the sessions read the same as in the source."""
    dest = tmp_path / "dest"
    assert ok(dest, "import", str(session_file)) == (
        "imported 47 events (seq 5..51) and 4 image records\n"
    )
    assert projections(dest) == source_reads
    # the image registrations land where they were in the source: the same chain
    assert head(dest) == head(source)


def test_import_into_a_store_that_has_the_images_appends_only_the_events(
    session_file: Path,
    source_reads: dict[str, Run],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Image registrations the destination already holds are not recorded again."""
    dest = new_store(tmp_path_factory, tmp_path / "dest")
    assert ok(dest, "import", str(session_file)) == (
        "imported 47 events (seq 5..51) and 0 image records\n"
    )
    assert projections(dest) == source_reads


def test_importing_the_same_export_twice_is_refused_and_appends_nothing(
    session_file: Path, tmp_path: Path
) -> None:
    """The second import would create the same containers again: one error line, head kept."""
    dest = tmp_path / "dest"
    ok(dest, "import", str(session_file))
    before = head(dest)
    web = next(e for e in envelopes(dest) if e.type == "ContainerCreated")
    # seeds are skipped; the session's events would follow the head, web's creation 5th
    r = cli(dest, "import", str(session_file))
    assert r == Run(
        1,
        "",
        f"Error: event {51 + web.seq - 4}: container {web.data['container'][:12]} created twice\n",
    )
    assert head(dest) == before


def test_a_refused_import_appends_nothing_not_even_its_images(source: Path, tmp_path: Path) -> None:
    """Events that do not apply to the destination (seq 9..22 use a volume created at seq 5)
    are refused with the images they brought: the store stays empty."""
    out = tmp_path / "part.dsx"
    ok(source, "export", "--from", "9", "--to", "22", "-o", str(out))
    web = envelopes(source)[8]
    assert web.type == "ContainerCreated"
    dest = tmp_path / "dest"
    r = cli(dest, "import", str(out))
    assert r == Run(
        1,
        "",
        f"Error: event 5: container {web.data['container'][:12]} mounts missing volume orders\n",
    )
    assert head(dest)[0] == 0


def test_import_of_a_tampered_export_is_refused(
    session_file: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Import verifies the file first; nothing is appended."""
    bad = tmp_path / "bad.dsx"
    bad.write_bytes(_tampered(session_file, "flip a byte in a blob")[0])
    dest = new_store(tmp_path_factory, tmp_path / "dest")
    before = head(dest)
    r = cli(dest, "import", str(bad))
    digest = records(session_file)[1][1].hex()
    assert r == Run(1, "", f"Error: {bad}: blob {digest} does not match its digest\n")
    assert head(dest) == before


def test_export_of_an_imported_session_carries_the_same_records(
    session_file: Path, tmp_path: Path
) -> None:
    """Export -> import -> export: the same seeds, events and blobs, the same chain head."""
    dest = tmp_path / "dest"
    ok(dest, "import", str(session_file))
    again = tmp_path / "again.dsx"
    ok(dest, "export", "--session", "s1", "-o", str(again))
    first, second = records(session_file), records(again)
    assert first[1:-1] == second[1:-1]
    assert first[-1][1]["head"] == second[-1][1]["head"]
