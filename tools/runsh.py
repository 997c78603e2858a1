"""RUN without running: a small, documented set of shell file commands applied to a build.

dockstate cannot execute programs, so a RUN instruction is parsed with a real
shell parser (`bashlex`) and the commands it knows are applied to the build's
filesystem. Everything else is recorded in history with no file changes and a
warning naming it.

Supported (GNU/busybox behaviour, the options listed only):

- ``mkdir [-p] [-m MODE] DIR...``
- ``touch FILE...`` (creates empty files; mtimes are the build's fixed one)
- ``echo [-n] [-e] WORD... > FILE`` / ``>> FILE``; ``printf FORMAT [ARG...] > FILE`` / ``>>``
  (``%s %d %%`` and ``\\n \\t \\\\`` escapes); without a redirect they write nothing
- ``rm [-r|-R] [-f] PATH...``
- ``cp [-r|-R|-a|-p] SRC... DEST``, ``mv SRC... DEST``
- ``ln -s[f] TARGET LINK``
- ``chmod [-R] MODE PATH...`` (octal, or ``[ugoa]*[+-=][rwxst]*``)
- ``cd DIR``, ``true``, ``:``, ``set ...`` (no file changes)

joined by ``&&``, ``||`` and ``;``. Words get ``$VAR`` / ``${VAR}`` from the
build's ENV and ARGs, and unquoted globs (``*``, ``?``, ``[...]``) match
paths of the image. Pipelines, subshells, loops and other commands are not
simulated. A supported command that fails (``rm`` of a missing file without
``-f``) fails the build as the shell would.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import bashlex

from dockstate.core import fs
from dockstate.core.fs import SYMLINK, Entry
from dockstate.tools.buildfs import BuildFS, FsError

_VAR: Final = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_GLOB: Final = re.compile(r"[*?\[]")
_SYMBOLIC: Final = re.compile(r"^([ugoa]*)([-+=])([rwxst]*)$")
_NO_OP: Final = frozenset({"true", ":", "set", "export"})


class RunFailed(Exception):
    """A supported command failed; the message is what the shell would print."""


class Shell:
    """Applies a RUN command line to a build filesystem.

    Args:
        bfs: the stage's filesystem.
        env: ENV and ARG values for ``$VAR``.
        workdir: the stage's WORKDIR.
        uid, gid: owner of what is created (the stage's USER).
    """

    def __init__(
        self, bfs: BuildFS, env: Mapping[str, str], workdir: str, uid: int = 0, gid: int = 0
    ) -> None:
        self.bfs, self.env, self.cwd = bfs, env, workdir or "/"
        self.uid, self.gid = uid, gid
        self.warnings: list[str] = []
        self.commands: dict[str, Callable[[list[str], list[tuple[str, str]]], None]] = {
            "mkdir": self._mkdir,
            "touch": self._touch,
            "echo": self._echo,
            "printf": self._printf,
            "rm": self._rm,
            "cp": self._cp,
            "mv": self._mv,
            "ln": self._ln,
            "chmod": self._chmod,
            "cd": self._cd,
        }

    def run(self, line: str) -> list[str]:
        """Apply ``line``; returns warnings for what was not simulated.

        Raises:
            RunFailed: a supported command failed.
        """
        try:
            parts = bashlex.parse(line)
        except (bashlex.errors.ParsingError, NotImplementedError, AttributeError) as exc:
            self.warnings.append(
                f"RUN {line!r} is not simulated: the shell parser refused it ({exc})"
            )
            return self.warnings
        for node in parts:
            self._list(node, line)
        return self.warnings

    # -- structure ----------------------------------------------------------------

    def _list(self, node: Any, line: str) -> None:
        if node.kind == "list":
            ok = True
            op = ";"
            for part in node.parts:
                if part.kind == "operator":
                    op = part.op
                    continue
                if op == "&&" and not ok:
                    continue
                if op == "||" and ok:
                    continue
                ok = self._one(part, line)
            if not ok:
                raise RunFailed(self._failure)
            return
        if not self._one(node, line):
            raise RunFailed(self._failure)

    def _one(self, node: Any, line: str) -> bool:
        if node.kind == "command":
            return self._command(node, line)
        if node.kind == "list":
            self._list(node, line)
            return True
        text = line[node.pos[0] : node.pos[1]]
        self.warnings.append(
            f"RUN: {text!r} is not simulated ({node.kind}): no file changes recorded"
        )
        return True

    def _command(self, node: Any, line: str) -> bool:
        argv: list[str] = []
        redirects: list[tuple[str, str]] = []
        for part in node.parts:
            if part.kind == "word":
                argv.extend(self._word(part, line))
            elif part.kind == "redirect":
                target = part.output
                if isinstance(target, int) or getattr(target, "kind", "") != "word":
                    continue
                if part.input is not None and part.input not in (1,):
                    continue  # 2>/dev/null and the like
                redirects.append((part.type, self._word(target, line)[0]))
            elif part.kind == "assignment":
                continue
            else:
                text = line[node.pos[0] : node.pos[1]]
                self.warnings.append(f"RUN: {text!r} is not simulated: no file changes recorded")
                return True
        if not argv:
            return True
        name = argv[0]
        if name in _NO_OP:
            return True
        handler = self.commands.get(name)
        if handler is None:
            text = line[node.pos[0] : node.pos[1]]
            self.warnings.append(
                f"RUN: command {name!r} is not simulated ({text!r}): no file changes recorded"
            )
            return True
        try:
            handler(argv[1:], redirects)
        except FsError as exc:
            self._failure = str(exc)
            return False
        return True

    def _word(self, node: Any, line: str) -> list[str]:
        word: str = node.word
        if any(p.kind == "parameter" for p in getattr(node, "parts", [])):
            word = _VAR.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), word)
        raw = line[node.pos[0] : node.pos[1]]
        if _GLOB.search(word) and not any(q in raw for q in "'\"\\"):
            matches = self._glob(word)
            if matches:
                return matches
        return [word]

    def _glob(self, pattern: str) -> list[str]:
        absolute = self._path(pattern)
        depth = absolute.count("/")
        hits = [
            p
            for p in self.bfs.tree
            if p.count("/") == depth
            and fnmatch.fnmatchcase(p, absolute)
            and not posixpath.basename(p).startswith(".")
        ]
        if not pattern.startswith("/"):
            prefix = self.cwd.rstrip("/") + "/"
            return sorted(p[len(prefix) :] if p.startswith(prefix) else p for p in hits)
        return sorted(hits)

    def _path(self, arg: str) -> str:
        return fs.normalize(arg if arg.startswith("/") else posixpath.join(self.cwd, arg))

    # -- commands -----------------------------------------------------------------

    @staticmethod
    def _flags(args: list[str], allowed: str) -> tuple[set[str], list[str]]:
        flags: set[str] = set()
        rest: list[str] = []
        it = iter(args)
        for a in it:
            if a == "--":
                rest.extend(it)
                break
            if a.startswith("-") and len(a) > 1 and not rest:
                for ch in a[1:]:
                    if ch not in allowed:
                        raise FsError(f"invalid option -- '{ch}'")
                    flags.add(ch)
            else:
                rest.append(a)
        return flags, rest

    def _mkdir(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        mode = 0o755
        if "-m" in args:
            i = args.index("-m")
            mode = int(args[i + 1], 8)
            args = args[:i] + args[i + 2 :]
        flags, paths = self._flags(args, "p")
        for p in paths:
            path = self._path(p)
            if "p" in flags:
                self.bfs.mkdirs(path, mode=mode, uid=self.uid, gid=self.gid)
            else:
                self.bfs.mkdir(path, mode=mode, uid=self.uid, gid=self.gid)

    def _touch(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        _flags, paths = self._flags(args, "acm")
        for p in paths:
            path = self._path(p)
            if self.bfs.get(path) is None:
                self.bfs.write(path, b"", uid=self.uid, gid=self.gid)

    def _output(self, data: bytes, redirects: list[tuple[str, str]]) -> None:
        for kind, target in redirects:
            if target == "/dev/null":
                continue
            if kind in (">", ">|", ">>"):
                self.bfs.write(
                    self._path(target), data, append=kind == ">>", uid=self.uid, gid=self.gid
                )

    def _echo(self, args: list[str], redirects: list[tuple[str, str]]) -> None:
        newline, escapes = True, False
        while args and args[0] in ("-n", "-e", "-ne", "-en", "-E"):
            newline = newline and "n" not in args[0]
            escapes = escapes or "e" in args[0]
            args = args[1:]
        text = " ".join(args)
        if escapes:
            text = _escapes(text)
        self._output((text + ("\n" if newline else "")).encode(), redirects)

    def _printf(self, args: list[str], redirects: list[tuple[str, str]]) -> None:
        if not args:
            raise FsError("printf: usage: printf format [arguments]")
        fmt, values = _escapes(args[0]), args[1:]
        out: list[str] = []
        i = 0
        while True:
            before, pos = i, 0
            for m in re.finditer(r"%([sd%])", fmt):
                out.append(fmt[pos : m.start()])
                if m.group(1) == "%":
                    out.append("%")
                else:
                    v = values[i] if i < len(values) else ""
                    i += 1
                    out.append(str(int(v or 0)) if m.group(1) == "d" else v)
                pos = m.end()
            out.append(fmt[pos:])
            # printf reuses its format while arguments are left.
            if i >= len(values) or i == before:
                break
        self._output("".join(out).encode(), redirects)

    def _rm(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        flags, paths = self._flags(args, "rRfdv")
        for p in paths:
            self.bfs.remove(self._path(p), recursive=bool(flags & {"r", "R"}), force="f" in flags)

    def _cp(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        flags, paths = self._flags(args, "rRapfdLPv")
        if len(paths) < 2:
            raise FsError("cp: missing destination file operand")
        *sources, dest = (self._path(p) for p in paths)
        if len(sources) > 1 and not self.bfs.is_dir(dest):
            raise FsError(f"cp: target '{dest}' is not a directory")
        for src in sources:
            self.bfs.copy(
                src,
                dest,
                recursive=bool(flags & {"r", "R", "a"}),
                stamp="a" not in flags and "p" not in flags,
            )

    def _mv(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        _flags, paths = self._flags(args, "fnv")
        if len(paths) < 2:
            raise FsError("mv: missing destination file operand")
        *sources, dest = (self._path(p) for p in paths)
        if len(sources) > 1 and not self.bfs.is_dir(dest):
            raise FsError(f"mv: target '{dest}' is not a directory")
        for src in sources:
            self.bfs.move(src, dest)

    def _ln(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        flags, paths = self._flags(args, "sfnv")
        if "s" not in flags:
            raise FsError("ln: hard links are not simulated (use ln -s)")
        if len(paths) != 2:
            raise FsError("ln: expected TARGET LINK_NAME")
        target, link = paths
        path = self._path(link)
        if self.bfs.is_dir(path):
            path = posixpath.join(path, posixpath.basename(target))
        if self.bfs.get(path) is not None:
            if "f" not in flags:
                raise FsError(f"ln: failed to create symbolic link '{path}': File exists")
            self.bfs.remove(path, recursive=False, force=True)
        self.bfs.put(
            "ln", path, Entry(SYMLINK, 0o777, 0, (), 0, self.bfs.mtime, self.uid, self.gid, target)
        )

    def _chmod(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        flags, rest = self._flags(args, "Rvf")
        if len(rest) < 2:
            raise FsError("chmod: missing operand")
        change = _mode_change(rest[0])
        for p in rest[1:]:
            self.bfs.chmod(self._path(p), change, recursive="R" in flags)

    def _cd(self, args: list[str], _r: list[tuple[str, str]]) -> None:
        path = self._path(args[0]) if args else "/root"
        if not self.bfs.is_dir(path):
            raise FsError(f"cd: can't cd to {args[0] if args else path}: No such file or directory")
        self.cwd = path

    _failure = ""


def _escapes(text: str) -> str:
    return text.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")


def _mode_change(spec: str) -> Callable[[Entry], int]:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        value = int(spec, 8)
        return lambda _e: value
    clauses = []
    for clause in spec.split(","):
        m = _SYMBOLIC.match(clause)
        if not m:
            raise FsError(f"chmod: invalid mode: '{spec}'")
        clauses.append(m.groups())

    def apply(e: Entry) -> int:
        mode = e.mode
        for given, op, perms in clauses:
            who = given or "a"
            mask = 0
            for w in "ugo" if "a" in who else who:
                shift = {"u": 6, "g": 3, "o": 0}[w]
                for p in perms:
                    if p in "rwx":
                        mask |= {"r": 4, "w": 2, "x": 1}[p] << shift
                    elif p == "s" and w in "ug":
                        mask |= 0o4000 if w == "u" else 0o2000
                    elif p == "t":
                        mask |= 0o1000
            if op == "+":
                mode |= mask
            elif op == "-":
                mode &= ~mask
            else:
                keep = 0o7777
                for w in "ugo" if "a" in who else who:
                    keep &= ~(0o7 << {"u": 6, "g": 3, "o": 0}[w])
                mode = (mode & keep) | mask
        return mode

    return apply


__all__ = ["RunFailed", "Shell"]
