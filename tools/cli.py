"""The ``dockstate`` command line: Docker's verbs on a simulated host, and time travel.

Handlers live in the ``verbs_*`` modules and are imported only when their
command runs, so that ``dockstate --help`` starts about as fast as Python can
import the four dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dockstate.eventlog.errors import DockstateError

FORMATS = ["table", "json"]


class _Parser(argparse.ArgumentParser):
    """argparse, with Docker's exit code (2) and a one-line usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _handler(module: str, name: str) -> str:
    return f"{module}:{name}"


def _read(p: argparse.ArgumentParser, *, fmt: bool = True) -> argparse.ArgumentParser:
    """A read command: answers as of ``--at`` and prints ``--format``."""
    p.add_argument(
        "--at",
        metavar="SEQ|TIME",
        help="answer as of a seq, an ISO 8601 time, a time of day (10:02) or a time ago (-10m)",
    )
    if fmt:
        p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    return p


def _write(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # Accepted only to refuse it with a clear message: writes always act now.
    p.add_argument("--at", help=argparse.SUPPRESS)
    return p


def _data_args(p: argparse.ArgumentParser, *, size: bool) -> None:
    p.add_argument("--data", metavar="TEXT", help="the content, as text")
    p.add_argument(
        "--from", dest="from_file", metavar="FILE", help="the content of a local file (- for stdin)"
    )
    if size:
        p.add_argument("--size", metavar="N", help="N bytes of filler content")
    p.add_argument("--append", action="store_true", help="append instead of overwriting")


def _container_create_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument(
        "-v", "--volume", action="append", metavar="[SRC:]DST[:OPTS]", help="bind mount a volume"
    )
    p.add_argument(
        "--mount",
        action="append",
        metavar="SPEC",
        help="attach a filesystem mount (type=...,source=...,target=...)",
    )
    p.add_argument("--tmpfs", action="append", metavar="DST[:OPTS]", help="mount a tmpfs directory")
    p.add_argument(
        "--rm",
        action="store_true",
        help="remove the container (and its anonymous volumes) when it stops",
    )
    p.add_argument("--restart", help=argparse.SUPPRESS)
    p.add_argument(
        "--discard-on",
        choices=["stop", "remove"],
        help="when the writable layer is discarded: at stop (the seed's model) or at rm (real Docker); default from the store",
    )
    p.add_argument("-d", "--detach", action="store_true", help="accepted for Docker compatibility")
    p.add_argument("-i", "-t", action="count", default=0, help=argparse.SUPPRESS)
    p.add_argument("image")
    p.add_argument(
        "cmd", nargs=argparse.REMAINDER, help="the command the container runs (recorded)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dockstate",
        description="A flight recorder and simulator for Docker's storage model.",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="store directory (default: $DOCKSTATE_STORE or ~/.local/share/dockstate)",
    )
    parser.add_argument(
        "--log-format", choices=["console", "json"], help="how log lines on stderr look"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def cmd(
        name: str, handler: str, help_: str, *, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, aliases=list(aliases))
        p.set_defaults(handler=handler)
        return p

    c = "verbs_containers"
    p = _write(cmd("create", _handler(c, "create"), "create a container"))
    _container_create_args(p)
    p = _write(cmd("run", _handler(c, "run"), "create and start a container; prints its id"))
    _container_create_args(p)
    for verb, text in [
        ("start", "start containers"),
        ("stop", "stop running containers"),
        ("restart", "restart containers"),
        ("pause", "pause all processes within containers"),
        ("unpause", "unpause containers"),
    ]:
        p = _write(cmd(verb, _handler(c, verb), text))
        if verb in ("stop", "restart"):
            p.add_argument(
                "-t", "--time", type=int, help="seconds to wait before killing (accepted)"
            )
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _write(cmd("kill", _handler(c, "kill"), "kill running containers"))
    p.add_argument("-s", "--signal", default="SIGKILL")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _write(cmd("rm", _handler(c, "rm"), "remove containers"))
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes too")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p = _read(cmd("ps", _handler(c, "ps"), "list containers"))
    p.add_argument(
        "-a", "--all", action="store_true", help="show all containers (default shows just running)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only display container ids")
    p = _read(
        cmd(
            "inspect",
            _handler(c, "inspect"),
            "low-level information on containers, images or volumes",
        ),
        fmt=False,
    )
    p.add_argument("objects", nargs="+", metavar="OBJECT")
    p = _read(
        cmd(
            "diff",
            _handler(c, "diff"),
            "changes to files or directories on a container's filesystem",
        )
    )
    p.add_argument("container")
    p = _read(
        cmd("cp", _handler(c, "cp"), "copy files between a container and this machine"), fmt=False
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dest", metavar="DEST")

    # files inside a container
    fs = sub.add_parser("fs", help="files inside a container").add_subparsers(
        dest="fs_command", metavar="COMMAND", parser_class=_Parser
    )
    fs.required = True
    f = "verbs_files"

    def fscmd(name: str, handler: str, help_: str) -> argparse.ArgumentParser:
        p = fs.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=_handler(f, handler), command=f"fs {name}")
        return p

    p = _write(fscmd("write", "fs_write", "write a file (missing parent directories are made)"))
    p.add_argument("container")
    p.add_argument("path")
    _data_args(p, size=True)
    p.add_argument("--mode", default="0644", help="permission bits (octal)")
    p = _write(fscmd("rm", "fs_rm", "delete a file, or a directory with -r"))
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("container")
    p.add_argument("path")
    p = _write(fscmd("mkdir", "fs_mkdir", "make a directory"))
    p.add_argument("-p", "--parents", action="store_true")
    p.add_argument("container")
    p.add_argument("path")
    p = _write(fscmd("mv", "fs_mv", "rename a file or directory (rename(2) semantics)"))
    p.add_argument("container")
    p.add_argument("src")
    p.add_argument("dest")
    p = _write(fscmd("chmod", "fs_chmod", "change permission bits"))
    p.add_argument("container")
    p.add_argument("mode", help="octal, e.g. 0755")
    p.add_argument("path")
    for name, handler, text in [
        ("ls", "fs_ls", "list a directory"),
        ("stat", "fs_stat", "what a path is and who wrote it"),
    ]:
        p = _read(fscmd(name, handler, text))
        p.add_argument("container")
        p.add_argument("path", nargs="?" if name == "ls" else None, default="/")
    p = _read(fscmd("cat", "fs_cat", "print a file"), fmt=False)
    p.add_argument("container")
    p.add_argument("path")

    # volumes
    vol = sub.add_parser("volume", help="manage volumes").add_subparsers(
        dest="volume_command", metavar="COMMAND", parser_class=_Parser
    )
    vol.required = True
    s = "verbs_storage"

    def volcmd(name: str, module: str, handler: str, help_: str) -> argparse.ArgumentParser:
        p = vol.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=_handler(module, handler), command=f"volume {name}")
        return p

    p = _write(volcmd("create", s, "volume_create", "create a volume"))
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("--label", action="append", metavar="KEY=VALUE")
    p.add_argument("-o", "--opt", action="append", metavar="KEY=VALUE")
    p.add_argument("name", nargs="?")
    p = _read(volcmd("ls", s, "volume_ls", "list volumes"))
    p.add_argument("-q", "--quiet", action="store_true")
    p = _read(
        volcmd("inspect", s, "volume_inspect", "display detailed information on volumes"), fmt=False
    )
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p = _write(volcmd("rm", s, "volume_rm", "remove volumes"))
    p.add_argument("-f", "--force", action="store_true", help="ignore volumes that do not exist")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p = _write(
        volcmd("prune", s, "volume_prune", "remove unused anonymous volumes (all unused with -a)")
    )
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt (there is no prompt)")
    p = _read(volcmd("files", f, "volume_files", "list a volume's contents"))
    p.add_argument("name")
    p.add_argument("path", nargs="?", default="/")
    p = _read(volcmd("cat", f, "volume_cat", "print a file of a volume"), fmt=False)
    p.add_argument("name")
    p.add_argument("path")

    # images
    img = sub.add_parser("image", help="manage images").add_subparsers(
        dest="image_command", metavar="COMMAND", parser_class=_Parser
    )
    img.required = True
    i = "verbs_images"

    def imgcmd(
        name: str, module: str, handler: str, help_: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        p = img.add_parser(name, help=help_, description=help_, aliases=list(aliases))
        p.set_defaults(handler=_handler(module, handler), command=f"image {name}")
        return p

    p = _read(imgcmd("ls", s, "image_ls", "list images"))
    p.add_argument("-q", "--quiet", action="store_true")
    p = _read(imgcmd("history", s, "image_history", "show the history of an image"))
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("image")
    p = _read(
        imgcmd("inspect", s, "image_inspect", "display detailed information on images"), fmt=False
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = _write(imgcmd("rm", s, "image_rm", "remove images"))
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p = _write(imgcmd("tag", s, "image_tag", "create a tag TARGET that refers to SOURCE"))
    p.add_argument("source")
    p.add_argument("target")
    p = _write(
        imgcmd(
            "load",
            i,
            "image_load",
            "load an image from a tar archive (docker save, OCI) or an OCI layout directory",
        )
    )
    p.add_argument("-i", "--input", metavar="FILE", help="read from a tar archive file")
    p.add_argument(
        "--platform", help="pick this platform from a multi-platform index (os/arch[/variant])"
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("dir", nargs="?", help="an OCI image layout directory")
    p = _read(
        imgcmd(
            "save", i, "image_save", "save images to a tar archive (OCI layout + manifest.json)"
        ),
        fmt=False,
    )
    p.add_argument("-o", "--output", metavar="FILE", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    for parent_cmd in ("build",):
        p = _write(imgcmd(parent_cmd, i, "image_build", "build an image from a Dockerfile"))
        _build_args(p)
    p = _write(
        cmd("build", _handler(i, "image_build"), "build an image from a Dockerfile (image build)")
    )
    _build_args(p)

    # system
    sysp = sub.add_parser("system", help="manage dockstate's Docker host").add_subparsers(
        dest="system_command", metavar="COMMAND", parser_class=_Parser
    )
    sysp.required = True
    p = _read(sysp.add_parser("df", help="show disk usage", description="show disk usage"))
    p.set_defaults(handler=_handler(s, "system_df"), command="system df")
    p.add_argument("-v", "--verbose", action="store_true")

    h = "verbs_history"
    p = _read(
        cmd(
            "events",
            _handler(h, "events"),
            "Docker's events; with --until prints and exits, else follows",
        ),
        fmt=False,
    )
    p.add_argument("--since", metavar="TIME|SEQ")
    p.add_argument("--until", metavar="TIME|SEQ")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE")
    p.add_argument("--format", choices=FORMATS, default="table")
    p = _read(
        cmd(
            "audit",
            _handler(h, "audit"),
            "the data-loss ledger: what was lost at stop, kill, rm, volume rm",
        )
    )
    p.add_argument("--since", metavar="TIME|SEQ")
    p.add_argument("--until", metavar="TIME|SEQ")
    p.add_argument("container", nargs="?")
    p = _read(
        cmd(
            "history",
            _handler(h, "history"),
            "every event that touched CONTAINER[:PATH], volume:NAME[:PATH] or host:PATH",
        )
    )
    p.add_argument("target")
    p = _read(cmd("log", _handler(h, "log"), "the raw events"))
    p.add_argument("--from", dest="start", type=int, default=1, metavar="SEQ")
    p.add_argument("--to", dest="stop", type=int, default=None, metavar="SEQ")
    p = cmd(
        "verify",
        _handler(h, "verify"),
        "check the hash chain and replay every event through the lifecycle (or check an export FILE)",
    )
    p.add_argument("file", nargs="?", help="an export file to verify instead of the store")
    fx = "verbs_forensics"
    p = cmd(
        "bisect",
        _handler(fx, "bisect"),
        "the first seq at which a condition holds (like git bisect)",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--exists", metavar="CONTAINER:PATH")
    g.add_argument("--absent", metavar="CONTAINER:PATH")
    g.add_argument("--state", metavar="CONTAINER=STATE")
    p = cmd(
        "export",
        _handler(fx, "export"),
        "write a session or a seq range to one self-contained file",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--session", metavar="NAME")
    g.add_argument("--from", dest="start", type=int, metavar="SEQ")
    p.add_argument("--to", dest="stop", type=int, metavar="SEQ")
    p.add_argument("-o", "--output", metavar="FILE", required=True)
    p = _write(
        cmd("import", _handler(fx, "import_"), "append the events of an export file to the store")
    )
    p.add_argument("file")
    p = cmd(
        "replay",
        _handler(fx, "replay"),
        "re-execute a recorded session and compare it, event by event",
    )
    p.add_argument("file")
    p.add_argument(
        "--store",
        "--dest",
        dest="dest",
        metavar="DEST",
        help="replay into this store (default: a fresh temporary one)",
    )
    p.add_argument(
        "--until", type=int, metavar="SEQ", help="stop after the command that recorded SEQ"
    )
    p.add_argument(
        "--step", action="store_true", help="pause after each command and show what changed"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    # the simulated host
    hostp = sub.add_parser("host", help="the simulated host side of bind mounts").add_subparsers(
        dest="host_command", metavar="COMMAND", parser_class=_Parser
    )
    hostp.required = True

    def hostcmd(name: str, handler: str, help_: str) -> argparse.ArgumentParser:
        p = hostp.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=_handler(f, handler), command=f"host {name}")
        return p

    p = _read(hostcmd("ls", "host_ls", "list a host directory"))
    p.add_argument("path", nargs="?", default="/")
    p = _read(hostcmd("cat", "host_cat", "print a host file"), fmt=False)
    p.add_argument("path")
    p = _write(hostcmd("mkdir", "host_mkdir", "make a host directory"))
    p.add_argument("-p", "--parents", action="store_true")
    p.add_argument("path")
    p = _write(hostcmd("write", "host_write", "write a host file"))
    p.add_argument("path")
    _data_args(p, size=False)

    # sessions and settings
    sess = sub.add_parser("session", help="recording sessions").add_subparsers(
        dest="session_command", metavar="COMMAND", parser_class=_Parser
    )
    sess.required = True
    p = sess.add_parser("start", help="record the following commands under NAME")
    p.set_defaults(handler=_handler(h, "session_start"), command="session start")
    p.add_argument("name")
    p = sess.add_parser("stop", help="stop recording under the current session")
    p.set_defaults(handler=_handler(h, "session_stop"), command="session stop")
    p = _read(sess.add_parser("ls", help="list sessions"))
    p.set_defaults(handler=_handler(h, "session_ls"), command="session ls")
    p = _write(cmd("config", _handler(h, "config"), "show or set store settings"))
    p.add_argument(
        "--discard-on",
        choices=["stop", "remove"],
        help="the default writable-layer policy for new containers",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        metavar="N",
        help="leave a snapshot every N events when folding (default 10000; 0: never)",
    )
    p = cmd(
        "snapshot",
        _handler(h, "snapshot"),
        "write a snapshot of the projections now, so reads from here fold less",
    )
    p.add_argument("--at", metavar="SEQ|TIME", help="as of a seq or a time (default: the head)")

    p = cmd(
        "demo",
        _handler("demo", "demo"),
        "tell the storage story on real commands, in a fresh store",
    )
    p.add_argument("--pause", action="store_true", help="wait for Enter between steps")
    return parser


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", metavar="NAME[:TAG]")
    p.add_argument("-f", "--file", metavar="Dockerfile")
    p.add_argument("--build-arg", action="append", metavar="KEY=VALUE")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("context", metavar="CONTEXT")


_TIME_OPTIONS = ("--at", "--since", "--until")


def _glue_time_values(argv: Sequence[str]) -> list[str]:
    """``--at -10m`` as ``--at=-10m``: argparse would read ``-10m`` as an unknown option."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[i:])
        if out and out[-1] in _TIME_OPTIONS and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_glue_time_values(sys.argv[1:] if argv is None else argv))
    from dockstate.tools import logging as ds_logging

    try:
        ds_logging.configure(args.log_format, args.log_level)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    module_name, _, func_name = args.handler.partition(":")
    module = importlib.import_module(f"dockstate.tools.{module_name}")
    from dockstate.tools.context import Context, refuse_at

    ctx = Context(args)
    try:
        # a write command's hidden --at exists only to be refused here
        if getattr(args, "at", None) is not None and _is_write(args):
            refuse_at(args)
        result: int = getattr(module, func_name)(ctx)
        return result
    except DockstateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        # a path argument the reads cannot normalize (relative, say): the user's mistake
        from dockstate.core.fs import PathError

        if not isinstance(exc, PathError):
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


_WRITE_HANDLERS = {
    "create",
    "run",
    "start",
    "stop",
    "restart",
    "pause",
    "unpause",
    "kill",
    "rm",
    "fs_write",
    "fs_rm",
    "fs_mkdir",
    "fs_mv",
    "fs_chmod",
    "volume_create",
    "volume_rm",
    "volume_prune",
    "image_rm",
    "image_tag",
    "image_load",
    "image_build",
    "host_mkdir",
    "host_write",
    "config",
    "import_",
}


def _is_write(args: argparse.Namespace) -> bool:
    return str(args.handler).partition(":")[2] in _WRITE_HANDLERS


if __name__ == "__main__":
    sys.exit(main())
