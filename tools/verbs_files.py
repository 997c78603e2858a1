"""File verbs: ``fs`` inside a container, ``volume files|cat``, and the simulated ``host``."""

from __future__ import annotations

import sys
from pathlib import Path

from dockstate.core.errors import InvalidParameterError
from dockstate.core.fs import DIR, Entry
from dockstate.tools import format as fmt
from dockstate.tools.context import Context


def _data(ctx: Context) -> bytes:
    a = ctx.args
    given = [x is not None for x in (a.data, a.from_file, getattr(a, "size", None))]
    if sum(given) != 1:
        raise InvalidParameterError("give exactly one of --data, --from or --size")
    if a.data is not None:
        return str(a.data).encode()
    if a.from_file is not None:
        path = Path(a.from_file)
        if str(path) == "-":
            return sys.stdin.buffer.read()
        if not path.is_file():
            raise InvalidParameterError(f"--from {path}: no such file")
        return path.read_bytes()
    size = int(a.size)
    if size < 0:
        raise InvalidParameterError("--size must not be negative")
    # deterministic filler, so equal sizes deduplicate in the blob store
    return (b"dockstate filler data\n" * (size // 22 + 1))[:size]


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidParameterError(f"invalid mode: {text} (use octal, e.g. 0644)") from None


def fs_write(ctx: Context) -> int:
    a = ctx.args
    ctx.host.write_file(a.container, a.path, _data(ctx), append=a.append, mode=_mode(a.mode))
    ctx.maintain_snapshots()
    return 0


def fs_rm(ctx: Context) -> int:
    ctx.host.delete(ctx.args.container, ctx.args.path, recursive=ctx.args.recursive)
    ctx.maintain_snapshots()
    return 0


def fs_mkdir(ctx: Context) -> int:
    ctx.host.mkdir(ctx.args.container, ctx.args.path, parents=ctx.args.parents)
    ctx.maintain_snapshots()
    return 0


def fs_mv(ctx: Context) -> int:
    ctx.host.rename(ctx.args.container, ctx.args.src, ctx.args.dest)
    ctx.maintain_snapshots()
    return 0


def fs_chmod(ctx: Context) -> int:
    ctx.host.chmod(ctx.args.container, ctx.args.path, _mode(ctx.args.mode))
    ctx.maintain_snapshots()
    return 0


def _entry_json(name: str, path: str, e: Entry, where: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "name": name,
        "path": path,
        "type": {"f": "file", "d": "dir", "l": "symlink"}.get(e.kind, e.kind),
        "mode": f"{e.mode:04o}",
        "size": e.size,
        "mtime": fmt.local_iso(e.mtime) if e.mtime else None,
        "written_seq": e.seq or None,
    }
    if e.target:
        out["target"] = e.target
    if where is not None:
        out["layer"] = where
    return out


def _print_listing(ctx: Context, rows: list[tuple[str, str, Entry, str | None]]) -> None:
    if ctx.args.format == "json":
        fmt.print_json_array([_entry_json(n, p, e, w) for n, p, e, w in rows])
        return
    table = []
    for name, _path, e, where in rows:
        shown = name + ("/" if e.kind == DIR else "") + (f" -> {e.target}" if e.target else "")
        row = [
            fmt.mode_string(e.kind, e.mode),
            str(e.size),
            fmt.local_iso(e.mtime) if e.mtime else "-",
            shown,
        ]
        if where is not None:
            row.insert(3, where)
        table.append(row)
    headers = ["MODE", "SIZE", "MODIFIED", "NAME"]
    if rows and rows[0][3] is not None:
        headers.insert(3, "FROM")
    fmt.table(headers, table)


def fs_ls(ctx: Context) -> int:
    items = ctx.reader.ls(ctx.args.container, ctx.args.path, ctx.at())
    _print_listing(ctx, [(i.name, i.path, i.entry, i.layer) for i in items])
    return 0


def fs_cat(ctx: Context) -> int:
    sys.stdout.buffer.write(ctx.reader.cat(ctx.args.container, ctx.args.path, ctx.at()))
    sys.stdout.flush()
    return 0


def fs_stat(ctx: Context) -> int:
    e, where = ctx.reader.stat(ctx.args.container, ctx.args.path, ctx.at())
    info = _entry_json(ctx.args.path.rstrip("/").rsplit("/", 1)[-1] or "/", ctx.args.path, e, where)
    if e.seq:
        env = ctx.reader.event(e.seq)
        if env is not None:
            info["written_time"] = fmt.local_iso(env.ts)
            info["written_by"] = env.cmd[0] if env.cmd else env.type
            info["session"] = env.session
    if ctx.args.format == "json":
        print(fmt.dumps(info, indent=4))
        return 0
    for key, value in info.items():
        print(f"{key + ':':<14}{'' if value is None else value}")
    return 0


def volume_files(ctx: Context) -> int:
    rows = ctx.reader.volume_ls(ctx.args.name, ctx.args.path, ctx.at())
    base = ctx.args.path.rstrip("/")
    _print_listing(ctx, [(n, f"{base}/{n}", e, None) for n, e in rows])
    return 0


def volume_cat(ctx: Context) -> int:
    sys.stdout.buffer.write(ctx.reader.volume_cat(ctx.args.name, ctx.args.path, ctx.at()))
    sys.stdout.flush()
    return 0


def host_ls(ctx: Context) -> int:
    rows = ctx.reader.host_ls(ctx.args.path, ctx.at())
    base = ctx.args.path.rstrip("/")
    _print_listing(ctx, [(n, f"{base}/{n}", e, None) for n, e in rows])
    return 0


def host_cat(ctx: Context) -> int:
    sys.stdout.buffer.write(ctx.reader.host_cat(ctx.args.path, ctx.at()))
    sys.stdout.flush()
    return 0


def host_mkdir(ctx: Context) -> int:
    ctx.host.host_mkdir(ctx.args.path, parents=ctx.args.parents)
    ctx.maintain_snapshots()
    return 0


def host_write(ctx: Context) -> int:
    ctx.host.host_write(ctx.args.path, _data(ctx), append=ctx.args.append)
    ctx.maintain_snapshots()
    return 0
