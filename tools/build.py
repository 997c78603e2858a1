"""``docker build`` without a daemon: a Dockerfile and its context become layers and a config.

What each instruction does follows BuildKit (docker-semantics.md 1.5): RUN,
COPY, ADD and ``WORKDIR dir`` (dir != ``/``) make a layer, even an empty one
(the empty tar's DiffID ``sha256:5f70bf18...``, as BuildKit records for a
WORKDIR that already exists); ENV, ARG, LABEL, USER, EXPOSE, CMD,
ENTRYPOINT, VOLUME, SHELL, STOPSIGNAL, HEALTHCHECK and MAINTAINER add an
``empty_layer`` history entry; ONBUILD only records its trigger. History
``created_by`` strings are BuildKit's (``COPY a /a # buildkit``, ``ENV A=1``,
``CMD ["/bin/sh" "-c" "x"]``) with comment ``buildkit.dockerfile.v0``.

RUN executes nothing: its command line is applied by `tools.runsh` (a
documented subset of file commands); other commands are recorded with no
file changes and a warning.

Layer tars are deterministic: sorted members, owners from the entries, and
every mtime the build sets is ``source_date_epoch`` (0 when not given), so
building the same Dockerfile and context twice gives the same DiffIDs and
ChainIDs. With ``source_date_epoch`` the config's ``created`` times are that
epoch too, and the image id repeats as well. Multi-stage builds work
(``FROM ... AS name``, ``COPY --from=name``); the last stage is the image.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final

from dockstate.core import fs
from dockstate.core.commands import DockerHost, LayerSpec
from dockstate.core.errors import InvalidParameterError, NoSuchImageError
from dockstate.core.fs import DIR, FILE, SYMLINK, Entry
from dockstate.core.layers import clean_name
from dockstate.core.names import chain_ids, normalize_image_ref
from dockstate.core.refs import find_image
from dockstate.eventlog import blobs
from dockstate.eventlog.log import WriteTxn
from dockstate.tools.buildfs import BuildFS, FsError, write_layer
from dockstate.tools.dockerfile import (
    DockerfileError,
    Instruction,
    escape_char,
    expand,
    parse,
    words,
)
from dockstate.tools.runsh import RunFailed, Shell
from dockstate.tools.tarstream import ingest_layer

DEFAULT_PATH: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMENT: Final = "buildkit.dockerfile.v0"
_GLOB: Final = re.compile(r"[*?\[]")
#: Build args Docker predefines (proxies); using them never warns.
_PREDEFINED: Final = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
_METADATA: Final = frozenset(
    {
        "ENV",
        "ARG",
        "LABEL",
        "USER",
        "EXPOSE",
        "CMD",
        "ENTRYPOINT",
        "VOLUME",
        "SHELL",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "MAINTAINER",
        "ONBUILD",
    }
)
#: The order of the config keys in Docker's image config (Go struct order).
_CONFIG_KEYS: Final = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
)  # fmt: skip


class BuildError(InvalidParameterError):
    """A build that fails: the instruction and why, in one line."""


def _go_quote_list(items: Sequence[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]"


def _rfc3339(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC)
    frac = ns % 1_000_000_000
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}".rstrip("0").rstrip(".") + "Z"


# -- the build context -----------------------------------------------------------------


class _Ignore:
    """.dockerignore as Docker's patternmatcher reads it: last match wins, ``!`` re-includes."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[re.Pattern[str], bool]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = posixpath.normpath(line.lstrip("/"))
            if line == ".":
                continue
            self.rules.append((re.compile(self._regex(line)), negate))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = ["^"], 0
        while i < len(pattern):
            ch = pattern[i]
            if pattern.startswith("**/", i):
                out.append("(.*/)?")
                i += 3
                continue
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            if ch == "*":
                out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch == "[":
                end = pattern.find("]", i)
                if end < 0:
                    out.append(re.escape(ch))
                else:
                    out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
                    i = end
            elif ch == "\\" and i + 1 < len(pattern):
                out.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                out.append(re.escape(ch))
            i += 1
        out.append("$")
        return "".join(out)

    def excluded(self, rel: str) -> bool:
        """A path (relative, ``/``-separated) or one of its parents matches."""
        result = False
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for regex, negate in self.rules:
            if any(regex.match(p) for p in prefixes) if not negate else regex.match(rel):
                result = not negate
        return result


class _Context:
    """The files of the build context that .dockerignore lets through."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise BuildError(f"unable to prepare context: path {root!r} not found")
        ignore_file = os.path.join(self.root, ".dockerignore")
        text = ""
        if os.path.isfile(ignore_file):
            with open(ignore_file, encoding="utf-8") as f:
                text = f.read()
        self.ignore = _Ignore(text)
        self.paths: dict[str, str] = {}  # rel path -> "f" | "d" | "l"
        for dirpath, dirs, files in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for d in sorted(dirs):
                full = os.path.join(dirpath, d)
                kind = "l" if os.path.islink(full) else "d"
                self.paths[rel_dir + d] = kind
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                self.paths[rel_dir + name] = "l" if os.path.islink(full) else "f"
        self.paths = {p: k for p, k in self.paths.items() if not self.ignore.excluded(p)}

    def match(self, pattern: str) -> list[str]:
        """Context paths for a COPY source (``.`` is the whole context)."""
        rel = posixpath.normpath(pattern.lstrip("/")) if pattern.strip("/") else "."
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"forbidden path outside the build context: {pattern} ()")
        if rel == ".":
            return ["."]
        if _GLOB.search(rel):
            depth = rel.count("/")
            hits = sorted(
                p for p in self.paths if p.count("/") == depth and fnmatch.fnmatchcase(p, rel)
            )
            if not hits:
                raise BuildError(f"lstat {pattern}: no source files were specified")
            return hits
        if rel not in self.paths:
            raise BuildError(
                f'failed to compute cache key: "/{rel}" not found: not found '
                "(not in the build context or excluded by .dockerignore)"
            )
        return [rel]

    def full(self, rel: str) -> str:
        return self.root if rel == "." else os.path.join(self.root, rel)

    def children(self, rel: str) -> list[str]:
        prefix = "" if rel == "." else rel + "/"
        return sorted(p for p in self.paths if p.startswith(prefix) and p != rel)


# -- stages ----------------------------------------------------------------------------------------


class _Stage:
    def __init__(
        self, name: str, bfs: BuildFS, config: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self.name = name
        self.bfs = bfs
        self.config = config  # the image config's "config" object
        self.base = base  # the whole image config (architecture, os, history...)
        self.history: list[dict[str, Any]] = list(base.get("history") or [])
        self.diff_ids: list[str] = list((base.get("rootfs") or {}).get("diff_ids") or [])
        self.new_layers: list[tuple[int, IO[bytes]]] = []  # (index in diff_ids, tar file)
        self.args: dict[str, str] = {}
        self.shell: list[str] = list(config.get("Shell") or ["/bin/sh", "-c"])
        self.cmd_set = False

    def env(self) -> dict[str, str]:
        out = dict(self.args)
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")


class Builder:
    """One build: `run` parses, applies every instruction, and registers the image."""

    def __init__(
        self,
        host: DockerHost,
        context_dir: str | os.PathLike[str],
        *,
        dockerfile: str | os.PathLike[str] | None = None,
        tags: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        source_date_epoch: int | None = None,
    ) -> None:
        self.host = host
        self.context = _Context(os.fspath(context_dir))
        self.dockerfile = (
            os.fspath(dockerfile) if dockerfile else os.path.join(self.context.root, "Dockerfile")
        )
        self.tags = list(tags)
        self.build_args = dict(build_args or {})
        self.epoch = source_date_epoch
        self.mtime = (source_date_epoch or 0) * 1_000_000_000
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.used_args: set[str] = set()
        self.stages: list[_Stage] = []
        self._step = 0
        self._steps: list[tuple[int, int, str]] = []
        self.state = host.state()

    # -- the whole build ---------------------------------------------------------------

    def run(self) -> str:
        try:
            with open(self.dockerfile, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise BuildError(
                f"failed to read dockerfile: open {self.dockerfile}: {exc.strerror}"
            ) from None
        self.escape = escape_char(text)
        instructions = parse(text)
        self.lines.append(
            f"#1 [internal] load build definition from {os.path.basename(self.dockerfile)}"
        )
        self.lines.append("#2 [internal] load .dockerignore")
        self.lines.append("#3 [internal] load build context")
        global_args: dict[str, str] = {}
        first = next((i for i, ins in enumerate(instructions) if ins.cmd == "FROM"), None)
        if first is None:
            raise BuildError("dockerfile parse error: no build stage in current context")
        for ins in instructions[:first]:
            if ins.cmd != "ARG":
                raise BuildError(
                    f"dockerfile parse error line {ins.line}: {ins.cmd} must come after FROM"
                )
            for key, value in self._arg_pairs(ins, global_args):
                global_args[key] = value
        self.global_args = global_args
        stage: _Stage | None = None
        try:
            for ins in instructions[first:]:
                if ins.cmd == "FROM":
                    stage = self._from(ins)
                    self.stages.append(stage)
                    continue
                assert stage is not None
                self._instruction(stage, ins)
            assert stage is not None
            unused = sorted(
                k for k in self.build_args if k not in self.used_args and k not in _PREDEFINED
            )
            if unused:
                self.warnings.append(
                    f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed"
                )
            return self._commit(stage)
        finally:
            for done in self.stages:
                for _, tar in done.new_layers:
                    tar.close()

    # -- instructions ----------------------------------------------------------------------

    def _progress(self, ins: Instruction) -> None:
        """A ``#N [i/total] INSTRUCTION`` line; the total is filled in when the build ends."""
        self._step += 1
        self._steps.append((len(self.lines), self._step, ins.original.splitlines()[0]))
        self.lines.append("")

    def _from(self, ins: Instruction) -> _Stage:
        args = list(ins.value)
        env = {**self.global_args}
        self.used_args.update(k for k in env if k in self.build_args)
        ref = expand(args[0], env, self.escape) if args else ""
        name = (
            args[2].lower() if len(args) >= 3 and args[1].upper() == "AS" else str(len(self.stages))
        )
        prior = next((s for s in self.stages if s.name == ref.lower()), None)
        if prior is not None:
            bfs = BuildFS(dict(prior.bfs.tree), self.host.log.get_blob, self.mtime)
            bfs.adopt(prior.bfs)
            stage = _Stage(
                name,
                bfs,
                json.loads(json.dumps(prior.config)),
                {**prior.base, "history": prior.history, "rootfs": {"diff_ids": prior.diff_ids}},
            )
            stage.new_layers = []
            if prior.new_layers:
                raise BuildError(
                    f"FROM {ref}: a stage built from a stage with new layers is not supported"
                )
            return stage
        if ref == "scratch":
            base: dict[str, Any] = {"architecture": "amd64", "os": "linux"}
            tree: dict[str, Entry] = {}
        else:
            try:
                image = find_image(self.state, ref)
            except NoSuchImageError:
                raise BuildError(
                    f"failed to solve: {ref}: no such image in this store (dockstate does not pull; load or build it first)"
                ) from None
            raw = self.host.log.read_blobs(image.config)
            base = json.loads(raw) if raw else {}
            tree = dict(self.state.layer_cache.flattened(image.top_chain, self.state.layers))
            self._progress(ins)
        config = dict(base.get("config") or {})
        env_list = list(config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env_list):
            env_list.insert(0, DEFAULT_PATH)  # BuildKit gives every Linux image a PATH
        config["Env"] = env_list
        bfs = BuildFS(tree, self.host.log.get_blob, self.mtime)
        return _Stage(name, bfs, config, base)

    def _instruction(self, stage: _Stage, ins: Instruction) -> None:
        cmd = ins.cmd
        handler = getattr(self, "_" + cmd.lower(), None)
        if handler is None:
            raise BuildError(f"dockerfile parse error line {ins.line}: unknown instruction: {cmd}")
        try:
            handler(stage, ins)
        except (FsError, RunFailed) as exc:
            raise BuildError(f"{ins.original.splitlines()[0]}: {exc}") from None
        except DockerfileError as exc:
            raise BuildError(f"line {ins.line}: {exc}") from None

    def _history(self, stage: _Stage, created_by: str, *, empty: bool) -> None:
        entry: dict[str, Any] = {
            "created": self._created(),
            "created_by": created_by,
            "comment": COMMENT,
        }
        if empty:
            entry["empty_layer"] = True
        stage.history.append(entry)

    def _created(self) -> str:
        ns = self.epoch * 1_000_000_000 if self.epoch is not None else time.time_ns()
        return _rfc3339(ns)

    def _layer(self, stage: _Stage, before: dict[str, Entry], created_by: str) -> None:
        """Write the step's layer tar and record it in the stage."""
        tmp = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 (closed after the build)
        write_layer(stage.bfs, before, tmp)
        tmp.seek(0)
        h = hashlib.sha256()
        while chunk := tmp.read(1 << 20):
            h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        tmp.seek(0)
        stage.new_layers.append((len(stage.diff_ids), tmp))
        stage.diff_ids.append(digest)
        self._history(stage, created_by, empty=False)

    def _words(self, stage: _Stage, ins: Instruction) -> list[str]:
        env = stage.env()
        if ins.json:
            return list(ins.value)
        return [expand(v, env, self.escape) for v in ins.value]

    def _flags(self, ins: Instruction, allowed: Sequence[str]) -> dict[str, str]:
        out = {}
        for flag in ins.flags:
            key, _, value = flag.lstrip("-").partition("=")
            if key not in allowed:
                raise BuildError(f"dockerfile parse error line {ins.line}: unknown flag: {key}")
            out[key] = value
        return out

    def _path(self, stage: _Stage, path: str) -> str:
        return fs.normalize(path if path.startswith("/") else posixpath.join(stage.workdir, path))

    # metadata ---------------------------------------------------------------------------

    def _env(self, stage: _Stage, ins: Instruction) -> None:
        pairs = []
        env = stage.env()
        for k, v in zip(ins.value[::2], ins.value[1::2], strict=True):
            value = expand(v, env, self.escape)
            pairs.append((k, value))
            env[k] = value
        current = list(stage.config.get("Env") or [])
        for k, v in pairs:
            idx = next((i for i, e in enumerate(current) if e.partition("=")[0] == k), None)
            if idx is None:
                current.append(f"{k}={v}")
            else:
                current[idx] = f"{k}={v}"
        stage.config["Env"] = current
        self._history(stage, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), empty=True)

    def _arg_pairs(self, ins: Instruction, env: Mapping[str, str]) -> list[tuple[str, str]]:
        out = []
        for word in ins.value:
            key, eq, default = word.partition("=")
            if key in self.build_args:
                self.used_args.add(key)
                out.append((key, self.build_args[key]))
            elif eq:
                out.append((key, expand(default, env, self.escape)))
            elif key in getattr(self, "global_args", {}):
                out.append((key, self.global_args[key]))
        return out

    def _arg(self, stage: _Stage, ins: Instruction) -> None:
        declared = []
        for word in ins.value:
            key, eq, default = word.partition("=")
            declared.append(f"{key}={expand(default, stage.env(), self.escape)}" if eq else key)
        for key, value in self._arg_pairs(ins, stage.env()):
            stage.args[key] = value
        self._history(stage, "ARG " + " ".join(declared), empty=True)

    def _label(self, stage: _Stage, ins: Instruction) -> None:
        env = stage.env()
        labels = dict(stage.config.get("Labels") or {})
        pairs = []
        for k, v in zip(ins.value[::2], ins.value[1::2], strict=True):
            key, value = expand(k, env, self.escape), expand(v, env, self.escape)
            labels[key] = value
            pairs.append(f"{key}={value}")
        stage.config["Labels"] = labels
        self._history(stage, "LABEL " + " ".join(pairs), empty=True)

    def _maintainer(self, stage: _Stage, ins: Instruction) -> None:
        stage.base["author"] = " ".join(ins.value)
        self._history(stage, "MAINTAINER " + " ".join(ins.value), empty=True)

    def _user(self, stage: _Stage, ins: Instruction) -> None:
        user = self._words(stage, ins)[0]
        stage.config["User"] = user
        self._history(stage, f"USER {user}", empty=True)

    def _expose(self, stage: _Stage, ins: Instruction) -> None:
        ports = dict(stage.config.get("ExposedPorts") or {})
        for word in self._words(stage, ins):
            port, _, proto = word.partition("/")
            proto = proto.lower() or "tcp"
            lo, _, hi = port.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise BuildError(f"EXPOSE: invalid containerPort: {port}")
            for n in range(int(lo), int(hi or lo) + 1):
                ports[f"{n}/{proto}"] = {}
        stage.config["ExposedPorts"] = ports
        shown = " ".join(f"{k}:{{}}" for k in sorted(ports))
        self._history(stage, f"EXPOSE map[{shown}]", empty=True)

    def _command(self, stage: _Stage, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.value)
        return [*stage.shell, " ".join(ins.value)]

    def _cmd(self, stage: _Stage, ins: Instruction) -> None:
        cmd = self._command(stage, ins)
        stage.config["Cmd"] = cmd
        stage.cmd_set = True
        self._history(stage, f"CMD {_go_quote_list(cmd)}", empty=True)

    def _entrypoint(self, stage: _Stage, ins: Instruction) -> None:
        entry = self._command(stage, ins)
        stage.config["Entrypoint"] = entry
        if not stage.cmd_set:
            stage.config["Cmd"] = None  # BuildKit drops an inherited CMD
        self._history(stage, f"ENTRYPOINT {_go_quote_list(entry)}", empty=True)

    def _volume(self, stage: _Stage, ins: Instruction) -> None:
        vols = dict(stage.config.get("Volumes") or {})
        paths = (
            self._words(stage, ins)
            if ins.json
            else words(" ".join(ins.value), stage.env(), self.escape)
        )
        for p in paths:
            if not p:
                raise BuildError("VOLUME specified can not be an empty string")
            vols[p] = {}
        stage.config["Volumes"] = vols
        self._history(stage, f"VOLUME [{' '.join(paths)}]", empty=True)

    def _shell(self, stage: _Stage, ins: Instruction) -> None:
        if not ins.json:
            raise BuildError("SHELL requires the arguments to be in JSON form")
        stage.shell = list(ins.value)
        stage.config["Shell"] = list(ins.value)
        self._history(stage, f"SHELL [{' '.join(ins.value)}]", empty=True)

    def _stopsignal(self, stage: _Stage, ins: Instruction) -> None:
        sig = self._words(stage, ins)[0]
        stage.config["StopSignal"] = sig
        self._history(stage, f"STOPSIGNAL {sig}", empty=True)

    def _healthcheck(self, stage: _Stage, ins: Instruction) -> None:
        flags = self._flags(
            ins, ("interval", "timeout", "start-period", "start-interval", "retries")
        )
        kind = ins.value[0].upper() if ins.value else "NONE"
        if kind == "NONE":
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            rest = list(ins.value[1:])
            test = ["CMD", *rest] if ins.json or (len(rest) > 1) else ["CMD-SHELL", *rest]
            check = {"Test": test}
            for flag, key in (
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start-period", "StartPeriod"),
                ("start-interval", "StartInterval"),
            ):
                if flag in flags:
                    check[key] = _duration_ns(flags[flag])
            if "retries" in flags:
                check["Retries"] = int(flags["retries"])
        stage.config["Healthcheck"] = check
        durations = " ".join(
            json.dumps(_duration_text(check.get(k, 0)))
            for k in ("Interval", "Timeout", "StartPeriod", "StartInterval")
        )
        retries = check.get("Retries", 0)
        retries_text = (
            "'\\x00'"
            if not retries
            else repr(chr(retries))
            if retries < 32
            else f"'{chr(retries)}'"
        )
        self._history(
            stage,
            f"HEALTHCHECK &{{{_go_quote_list(check['Test'])} {durations} {retries_text}}}",
            empty=True,
        )

    def _onbuild(self, stage: _Stage, ins: Instruction) -> None:
        trigger = ins.original.split(None, 1)[1] if " " in ins.original else ""
        stage.config["OnBuild"] = [*(stage.config.get("OnBuild") or []), trigger]

    # filesystem ---------------------------------------------------------------------------

    def _workdir(self, stage: _Stage, ins: Instruction) -> None:
        path = self._path(stage, self._words(stage, ins)[0])
        stage.config["WorkingDir"] = path
        if path == "/":
            self._history(stage, "WORKDIR /", empty=True)
            return
        self._progress(ins)
        before = dict(stage.bfs.tree)
        stage.bfs.mkdirs(path)
        self._layer(stage, before, f"WORKDIR {path}")

    def _run(self, stage: _Stage, ins: Instruction) -> None:
        self._progress(ins)
        before = dict(stage.bfs.tree)
        env = stage.env()
        uid, gid = self._owner(stage, str(stage.config.get("User") or ""))
        shell = Shell(stage.bfs, env, stage.workdir, uid, gid)
        if ins.heredocs:
            self.warnings.append(
                f"RUN with a heredoc is not simulated: {ins.original.splitlines()[0]!r}"
            )
        elif ins.json:
            shell.run(" ".join(_sh_quote(a) for a in ins.value))
        else:
            shell.run(" ".join(ins.value))
        self.warnings.extend(shell.warnings)
        args = [f"{k}={v}" for k, v in sorted(stage.args.items())]
        prefix = f"|{len(args)} {' '.join(args)} " if args else ""
        line = " ".join(ins.value) if not ins.json else _go_quote_list(list(ins.value))
        shown = f"{' '.join(stage.shell)} {line}" if not ins.json else line
        self._layer(stage, before, f"RUN {prefix}{shown} # buildkit")

    def _copy(self, stage: _Stage, ins: Instruction) -> None:
        self._copy_or_add(stage, ins, add=False)

    def _add(self, stage: _Stage, ins: Instruction) -> None:
        self._copy_or_add(stage, ins, add=True)

    def _copy_or_add(self, stage: _Stage, ins: Instruction, *, add: bool) -> None:
        allowed = (
            ("chown", "chmod", "from", "link", "parents", "exclude")
            if not add
            else ("chown", "chmod", "link", "checksum", "keep-git-dir")
        )
        flags = self._flags(ins, allowed)
        self._progress(ins)
        env = stage.env()
        args = list(ins.value) if ins.json else [expand(v, env, self.escape) for v in ins.value]
        if len(args) < 2:
            raise BuildError(f"{ins.cmd} requires at least two arguments")
        *sources, dest_arg = args
        uid, gid = self._owner(stage, flags["chown"]) if flags.get("chown") else (0, 0)
        chmod = int(flags["chmod"], 8) if flags.get("chmod") else None
        dest = self._path(stage, dest_arg)
        dest_is_dir = dest_arg.endswith("/") or len(sources) > 1 or stage.bfs.is_dir(dest)
        before = dict(stage.bfs.tree)
        bfs = stage.bfs
        if "from" in flags:
            self._copy_from_stage(
                stage,
                flags["from"],
                sources,
                dest,
                dest_is_dir=dest_is_dir,
                uid=uid,
                gid=gid,
                chmod=chmod,
            )
        else:
            matches = []
            for src in sources:
                if add and re.match(r"^[a-z]+://", src):
                    raise BuildError(f"ADD {src}: dockstate does not download (no network)")
                matches.extend(self.context.match(src))
            # Several matches (a glob) make the destination a directory, as several sources do.
            dest_is_dir = dest_is_dir or len(matches) > 1
            for rel in matches:
                kind = "d" if rel == "." else self.context.paths[rel]
                full = self.context.full(rel)
                if kind == "d":
                    bfs.mkdirs(dest, uid=uid, gid=gid)
                    for child in self.context.children(rel):
                        sub = child if rel == "." else child[len(rel) + 1 :]
                        self._put_context(
                            bfs, child, posixpath.join(dest, sub), uid=uid, gid=gid, chmod=chmod
                        )
                elif add and kind == "f" and _is_archive(full):
                    bfs.mkdirs(dest, uid=uid, gid=gid)
                    self._extract(bfs, full, dest)
                else:
                    target = posixpath.join(dest, posixpath.basename(rel)) if dest_is_dir else dest
                    bfs.mkdirs(fs.parent(target), uid=uid, gid=gid)
                    self._put_context(bfs, rel, target, uid=uid, gid=gid, chmod=chmod)
        flag_text = "".join(
            f"--{k}={v} " for k, v in flags.items() if k in ("chown", "chmod", "from")
        )
        self._layer(stage, before, f"{ins.cmd} {flag_text}{' '.join(args)} # buildkit")

    def _put_context(
        self, bfs: BuildFS, rel: str, target: str, *, uid: int, gid: int, chmod: int | None
    ) -> None:
        full = self.context.full(rel)
        st = os.lstat(full)
        kind = self.context.paths[rel]
        if kind == "d":
            bfs.mkdirs(target, uid=uid, gid=gid)
            mode = chmod if chmod is not None else st.st_mode & 0o7777
            bfs.tree[target] = bfs.tree[target]._replace(mode=mode, uid=uid, gid=gid)
        elif kind == "l":
            bfs.put(
                "COPY",
                target,
                Entry(SYMLINK, 0o777, 0, (), 0, self.mtime, uid, gid, os.readlink(full)),
            )
        else:
            chunks, size = bfs.store_file(full)
            mode = chmod if chmod is not None else st.st_mode & 0o7777
            bfs.put("COPY", target, Entry(FILE, mode, size, chunks, 0, self.mtime, uid, gid))

    def _extract(self, bfs: BuildFS, archive: str, dest: str) -> None:
        """ADD of a local tar archive: its members land under ``dest`` (names kept inside)."""
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                rel = clean_name(m.name)
                if rel == "/":
                    continue
                target = fs.normalize(dest + rel)
                bfs.mkdirs(fs.parent(target))
                mtime = int(m.mtime) * 1_000_000_000
                if m.isdir():
                    bfs.mkdirs(target)
                    bfs.tree[target] = Entry(DIR, m.mode & 0o7777, 0, (), 0, mtime, m.uid, m.gid)
                elif m.issym():
                    bfs.put(
                        "ADD",
                        target,
                        Entry(SYMLINK, 0o777, 0, (), 0, mtime, m.uid, m.gid, m.linkname),
                    )
                elif m.isfile():
                    f = tar.extractfile(m)
                    data = f.read() if f is not None else b""
                    bfs.put(
                        "ADD",
                        target,
                        Entry(
                            FILE,
                            m.mode & 0o7777,
                            len(data),
                            bfs.store_bytes(data),
                            0,
                            mtime,
                            m.uid,
                            m.gid,
                        ),
                    )

    def _copy_from_stage(
        self,
        stage: _Stage,
        ref: str,
        sources: list[str],
        dest: str,
        *,
        dest_is_dir: bool,
        uid: int,
        gid: int,
        chmod: int | None,
    ) -> None:
        src_stage = next((s for s in self.stages if s.name == ref.lower()), None)
        if src_stage is None:
            raise BuildError(
                f"COPY --from={ref}: no such build stage (dockstate does not pull images)"
            )
        stage.bfs.adopt(src_stage.bfs)
        for src in sources:
            path = fs.normalize(
                src if src.startswith("/") else posixpath.join(src_stage.workdir, src)
            )
            entry = src_stage.bfs.get(path)
            if entry is None:
                raise BuildError(f'failed to compute cache key: "{path}" not found: not found')
            if entry.kind == DIR:
                stage.bfs.mkdirs(dest, uid=uid, gid=gid)
                for key in src_stage.bfs.below(path):
                    e = src_stage.bfs.tree[key]
                    target = dest + key[len(path) :] if path != "/" else fs.normalize(dest + key)
                    stage.bfs.mkdirs(fs.parent(target), uid=uid, gid=gid)
                    stage.bfs.tree[target] = self._owned(e, uid, gid, chmod)
            else:
                target = posixpath.join(dest, posixpath.basename(path)) if dest_is_dir else dest
                stage.bfs.mkdirs(fs.parent(target), uid=uid, gid=gid)
                stage.bfs.put("COPY", target, self._owned(entry, uid, gid, chmod))

    def _owned(self, e: Entry, uid: int, gid: int, chmod: int | None) -> Entry:
        mode = chmod if chmod is not None and e.kind != SYMLINK else e.mode
        return e._replace(
            uid=uid,
            gid=gid,
            mode=mode,
            mtime=self.mtime,
            target=e.target if e.kind == SYMLINK else "",
        )

    # -- users -------------------------------------------------------------------------------

    def _owner(self, stage: _Stage, spec: str) -> tuple[int, int]:
        """``user[:group]`` by number or by name from the image's /etc/passwd and /etc/group.

        As Docker documents for ``--chown``: without a group, the GID is the UID.
        """
        if not spec:
            return 0, 0
        user, _, group = spec.partition(":")
        uid = self._lookup(stage, "/etc/passwd", user, spec)
        gid = self._lookup(stage, "/etc/group", group, spec) if group else uid
        return uid, gid

    def _lookup(self, stage: _Stage, file: str, name: str, spec: str) -> int:
        if name.isdigit():
            return int(name)
        entry = stage.bfs.get(file)
        if entry is not None and entry.kind == FILE:
            for line in stage.bfs.read_all(entry).decode(errors="replace").splitlines():
                parts = line.split(":")
                if len(parts) > 2 and parts[0] == name and parts[2].isdigit():
                    return int(parts[2])
        kind, what = ("user", "uid") if file.endswith("passwd") else ("group", "gid")
        raise BuildError(
            "unable to convert uid/gid chown string to host mapping: "
            f"can't find {what} for {kind} {name}: no such {kind}: {name} ({spec})"
        )

    # -- the image -----------------------------------------------------------------------------

    def _commit(self, stage: _Stage) -> str:
        config_obj = {
            k: stage.config[k]
            for k in _CONFIG_KEYS
            if stage.config.get(k) not in (None, {}, [], "")
        }
        for k, v in stage.config.items():
            if k not in _CONFIG_KEYS and k not in config_obj:
                config_obj[k] = v
        config_obj["OnBuild"] = stage.config.get("OnBuild") or None
        image: dict[str, Any] = {}
        for k in ("architecture", "author"):
            if stage.base.get(k):
                image[k] = stage.base[k]
        image.setdefault("architecture", "amd64")
        image["config"] = config_obj
        image["created"] = self._created()
        image["history"] = stage.history
        image["os"] = stage.base.get("os") or "linux"
        image["rootfs"] = {"type": "layers", "diff_ids": stage.diff_ids}
        raw = json.dumps(image, separators=(",", ":"), ensure_ascii=False).encode()
        image_id = blobs.content_digest(raw)
        volumes = sorted((config_obj.get("Volumes") or {}).keys())
        new = dict(stage.new_layers)
        chains = chain_ids(stage.diff_ids)

        def prepare(tx: WriteTxn, existed: Sequence[bool]) -> list[LayerSpec | None]:
            out: list[LayerSpec | None] = []
            for i, (diff_id, e) in enumerate(zip(stage.diff_ids, existed, strict=True)):
                f = new.get(i)
                if e or f is None:
                    out.append(None)
                    continue
                f.seek(0)
                result = ingest_layer(f, tx)
                if result.diff_id != diff_id:  # pragma: no cover - the tar is ours
                    raise BuildError(f"layer {i} changed while it was stored")
                out.append(LayerSpec(result.diff_id, result.entries, result.size, result.tar_split))
            return out

        for index, step, text in self._steps:
            self.lines[index] = f"#{index + 1} [{step}/{self._step}] {text}"
        n = len(self.lines) + 1
        self.lines.append(f"#{n} exporting to image")
        _id, tags, _existed = self.host.register_image(
            config=raw,
            image_id=image_id,
            layers=prepare,
            diff_ids=stage.diff_ids,
            tags=self.tags,
            volumes=volumes,
            created=image["created"],
            cmd="image build",
            args={
                "image_id": image_id,
                "tags": list(self.tags),
                "chain_id": chains[-1] if chains else None,
            },
        )
        self.lines.append(f"#{n} exporting layers done")
        self.lines.append(f"#{n} writing image {image_id} done")
        for tag in tags:
            self.lines.append(f"#{n} naming to {_full_name(tag)} done")
        return image_id


def _full_name(ref: str) -> str:
    first, _, rest = ref.partition("/")
    if not rest:
        return "docker.io/library/" + ref
    if "." in first or ":" in first or first == "localhost":
        return ref
    return "docker.io/" + ref


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _sh_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _duration_ns(text: str) -> int:
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        total += (
            float(value)
            * {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
        )
    if not total and text not in ("0", "0s"):
        raise BuildError(f"HEALTHCHECK: invalid duration {text!r}")
    return int(total)


def _duration_text(ns: int) -> str:
    """Go's Duration.String() for whole seconds, minutes and hours."""
    if ns == 0:
        return "0s"
    secs = ns / 1e9
    h, rem = divmod(int(secs), 3600)
    m, s = divmod(rem, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{s + (secs - int(secs)):g}s"


def build(
    host: DockerHost,
    context_dir: str | os.PathLike[str],
    *,
    dockerfile: str | os.PathLike[str] | None = None,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    source_date_epoch: int | None = None,
) -> tuple[str, list[str], list[str]]:
    """``docker build``: returns the image id, BuildKit-like output lines and warnings.

    Args:
        host: the host whose store holds the base images and gets the new one.
        context_dir: the build context (.dockerignore applies).
        dockerfile: the Dockerfile (default ``CONTEXT/Dockerfile``).
        tags: ``NAME[:TAG]`` to give the image.
        build_args: ``--build-arg`` values.
        source_date_epoch: seconds; every mtime and ``created`` the build sets (mtimes are
            0 without it, so layers repeat either way).

    Raises:
        BuildError: an instruction failed (the message names it and why).
        DockerfileError: the Dockerfile does not parse.
    """
    for t in tags:
        normalize_image_ref(t)
    builder = Builder(
        host,
        context_dir,
        dockerfile=dockerfile,
        tags=tags,
        build_args=build_args,
        source_date_epoch=source_date_epoch,
    )
    image_id = builder.run()
    return image_id, builder.lines, builder.warnings


__all__ = ["BuildError", "Builder", "build"]
