"""Container verbs: create, run, start, stop, restart, pause, unpause, kill, rm, ps, inspect, diff, cp."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dockstate.core import fs
from dockstate.core.errors import DockstateError, InvalidParameterError, NoSuchContainerError
from dockstate.core.fs import DIR, FILE, SYMLINK
from dockstate.core.refs import find_container, find_image, find_volume
from dockstate.projections import views
from dockstate.tools import format as fmt
from dockstate.tools import shapes
from dockstate.tools.context import Context, refuse_at


def _create(ctx: Context, *, start: bool) -> int:
    a = ctx.args
    if a.rm and getattr(a, "restart", None) not in (None, "no"):
        raise InvalidParameterError("conflicting options: cannot specify both --restart and --rm")
    cid = ctx.host.create(
        a.image,
        name=a.name,
        volumes=a.volume or [],
        mounts=a.mount or [],
        tmpfs=a.tmpfs or [],
        auto_remove=a.rm,
        discard_on=a.discard_on,
        command=" ".join(a.cmd or []),
        start=start,
    )
    print(cid)
    ctx.maintain_snapshots()
    return 0


def create(ctx: Context) -> int:
    return _create(ctx, start=False)


def run(ctx: Context) -> int:
    return _create(ctx, start=True)


def _each(ctx: Context, action: str) -> int:
    """Docker's multi-container verbs: act on each, print each ref, report failures after."""
    failed = False
    host = ctx.host
    for ref in ctx.args.containers:
        try:
            if action == "start":
                host.start(ref)
            elif action == "stop":
                host.stop(ref)
            elif action == "restart":
                host.restart(ref)
            elif action == "pause":
                host.pause(ref)
            elif action == "unpause":
                host.unpause(ref)
            elif action == "kill":
                host.kill(ref, ctx.args.signal)
            elif action == "rm":
                host.remove(ref, force=ctx.args.force, volumes=ctx.args.volumes)
            print(ref)
        except DockstateError as exc:
            failed = True
            # Docker's API wraps every kill failure: "Cannot kill container: web: ..."
            prefix = f"Cannot kill container: {ref}: " if action == "kill" else ""
            print(f"Error: {prefix}{exc}", file=sys.stderr)
    ctx.maintain_snapshots()
    return 1 if failed else 0


def start(ctx: Context) -> int:
    return _each(ctx, "start")


def stop(ctx: Context) -> int:
    return _each(ctx, "stop")


def restart(ctx: Context) -> int:
    return _each(ctx, "restart")


def pause(ctx: Context) -> int:
    return _each(ctx, "pause")


def unpause(ctx: Context) -> int:
    return _each(ctx, "unpause")


def kill(ctx: Context) -> int:
    return _each(ctx, "kill")


def rm(ctx: Context) -> int:
    return _each(ctx, "rm")


def ps(ctx: Context) -> int:
    reader, at = ctx.reader, ctx.at()
    host = reader.host(at)
    now = ctx.at_time()
    cs = [c for c in host.containers.values() if ctx.args.all or c.running]
    cs.sort(key=lambda c: c.created, reverse=True)
    if ctx.args.quiet:
        for c in cs:
            print(c.id[:12])
        return 0
    if ctx.args.format == "json":
        fmt.print_json_lines(shapes.ps_json(reader, host, c, now) for c in cs)
        return 0
    rows = [
        (
            c.id[:12],
            c.image_ref,
            shapes.truncate_command(shapes.container_command(reader, host, c)),
            fmt.ago(c.created, now),
            shapes.status(c, now),
            "",
            c.name,
        )
        for c in cs
    ]
    fmt.table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0


def inspect(ctx: Context) -> int:
    """``docker inspect``: containers first, then images, then volumes, as Docker searches."""
    reader, at = ctx.reader, ctx.at()
    host = reader.host(at)
    out = []
    failed = False
    for ref in ctx.args.objects:
        try:
            out.append(shapes.container_inspect(reader, host, find_container(host, ref)))
            continue
        except NoSuchContainerError:
            pass
        try:
            out.append(shapes.image_inspect(reader, host, find_image(host, ref)))
            continue
        except DockstateError:
            pass
        try:
            out.append(shapes.volume_inspect(find_volume(host, ref)))
            continue
        except DockstateError:
            pass
        failed = True
        print(f"Error: No such object: {ref}", file=sys.stderr)
    fmt.print_json_array(out)
    return 1 if failed else 0


def diff(ctx: Context) -> int:
    changes = ctx.reader.diff(ctx.args.container, ctx.at())
    if ctx.args.format == "json":
        kinds = {"C": 0, "A": 1, "D": 2}
        fmt.print_json_array([{"Kind": kinds[k], "Path": p} for k, p in changes])
        return 0
    for kind, path in changes:
        print(f"{kind} {path}")
    return 0


def _split_container_path(text: str) -> tuple[str, str] | None:
    if ":" not in text or text.startswith(("/", ".")):
        return None
    ref, _, path = text.partition(":")
    return ref, path or "/"


def cp(ctx: Context) -> int:
    """``docker cp``: between this machine and a container path, either way (files and dirs)."""
    src, dst = ctx.args.src, ctx.args.dest
    from_ctr, to_ctr = _split_container_path(src), _split_container_path(dst)
    if (from_ctr is None) == (to_ctr is None):
        raise InvalidParameterError(
            "copying between containers or between local paths is not supported: one of SRC and DEST must be CONTAINER:PATH"
        )
    if from_ctr is not None:
        ref, path = from_ctr
        return _copy_out(ctx, ref, path, Path(dst))
    assert to_ctr is not None
    refuse_at(ctx.args)  # a copy into a container is a write: it always acts now
    ref, path = to_ctr
    return _copy_in(ctx, Path(src), ref, path)


def _copy_out(ctx: Context, ref: str, path: str, dest: Path) -> int:
    reader = ctx.reader
    host = reader.host(ctx.at())
    c = find_container(host, ref)
    entry = host.lookup(c, fs.normalize(path))
    if entry is None:
        raise DockstateError(f"Could not find the file {path} in container {ref}")
    if entry.kind != DIR:
        target = dest / Path(path).name if dest.is_dir() else dest
        target.write_bytes(views.read_file(host, c, path, reader.read_blobs))
        return 0
    root = dest / Path(path).name if dest.exists() else dest
    root.mkdir(parents=True, exist_ok=True)
    stack = [(fs.normalize(path), root)]
    while stack:
        cpath, local = stack.pop()
        for item in views.merged_ls(host, c, cpath):
            if item.entry.kind == DIR:
                (local / item.name).mkdir(exist_ok=True)
                stack.append((item.path, local / item.name))
            elif item.entry.kind == SYMLINK:
                if not (local / item.name).exists():
                    os.symlink(item.entry.target, local / item.name)
            elif item.entry.kind == FILE:
                (local / item.name).write_bytes(reader.read_blobs(item.entry.chunks))
    return 0


def _copy_in(ctx: Context, src: Path, ref: str, path: str) -> int:
    if not src.exists():
        raise DockstateError(f"stat {src}: no such file or directory")
    host = ctx.host
    state = host.state()
    c = find_container(state, ref)
    dest = fs.normalize(path)
    existing = state.lookup(c, dest)
    base = dest + "/" + src.name if existing is not None and existing.kind == DIR else dest
    if src.is_file():
        host.write_file(ref, base, src.read_bytes(), mode=src.stat().st_mode & 0o7777)
        return 0
    for root, _dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        cdir = base if rel == "." else base + "/" + rel.replace(os.sep, "/")
        host.mkdir(ref, cdir, parents=True)
        for name in sorted(files):
            local = Path(root) / name
            host.write_file(
                ref, cdir + "/" + name, local.read_bytes(), mode=local.stat().st_mode & 0o7777
            )
    return 0
