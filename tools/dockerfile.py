"""Dockerfiles: the official parser (the ``dockerfile`` package) and BuildKit's word expansion.

`parse` wraps the `dockerfile` package, which runs moby/buildkit's own parser
(line continuations, the ``escape`` directive, JSON forms, flags, heredocs).
The parser leaves words as written; `expand` and `words` then do what
BuildKit's shell lexer does with them: quotes, escapes and ``$VAR`` /
``${VAR}`` / ``${VAR:-default}`` / ``${VAR:+alternative}`` (and the forms
without ``:``) from the build's environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

import dockerfile as _parser

from dockstate.core.errors import InvalidParameterError

_ESCAPE_DIRECTIVE: Final = re.compile(r"^#\s*escape\s*=\s*(\S)\s*$", re.IGNORECASE)
_DIRECTIVE: Final = re.compile(r"^#\s*[a-zA-Z][a-zA-Z0-9_-]*\s*=")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DockerfileError(InvalidParameterError):
    """A Dockerfile that cannot be parsed or uses an instruction wrongly."""


class Instruction(NamedTuple):
    """One instruction: its keyword, flags, arguments and where it is."""

    cmd: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    json: bool
    original: str
    line: int
    heredocs: tuple[tuple[str, str], ...] = ()


def escape_char(text: str) -> str:
    """The escape character the ``# escape=`` parser directive sets (default backslash)."""
    for line in text.splitlines():
        if not _DIRECTIVE.match(line):
            break
        m = _ESCAPE_DIRECTIVE.match(line)
        if m:
            return m.group(1)
    return "\\"


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order.

    Raises:
        DockerfileError: the parser refused it (the message names the line).
    """
    try:
        commands = _parser.parse_string(text)
    except _parser.GoParseError as exc:
        raise DockerfileError(f"dockerfile parse error: {exc}") from None
    return [
        Instruction(
            c.cmd.upper(),
            tuple(c.flags),
            tuple(c.value),
            bool(c.json),
            c.original,
            int(c.start_line),
            tuple((h.name, h.content) for h in c.heredocs),
        )
        for c in commands
    ]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word as BuildKit's ProcessWord makes it: quotes removed, variables expanded."""
    return "".join(_Lexer(word, env, escape).words(split=False))


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """A line split into words as BuildKit's ProcessWords does (quotes keep spaces)."""
    return _Lexer(text, env, escape).words(split=True)


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s, self.env, self.esc = text, env, escape
        self.i = 0

    def words(self, *, split: bool) -> list[str]:
        out: list[str] = []
        cur: list[str] = []
        started = False
        s = self.s
        while self.i < len(s):
            ch = s[self.i]
            if split and ch.isspace():
                if started:
                    out.append("".join(cur))
                    cur, started = [], False
                self.i += 1
                continue
            started = True
            if ch == self.esc:
                if self.i + 1 < len(s):
                    cur.append(s[self.i + 1])
                    self.i += 2
                else:
                    cur.append(ch)
                    self.i += 1
            elif ch == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    raise DockerfileError(
                        f"unexpected end of statement while looking for matching single-quote in {s!r}"
                    )
                cur.append(s[self.i + 1 : end])
                self.i = end + 1
            elif ch == '"':
                self.i += 1
                cur.append(self._double())
            elif ch == "$":
                cur.append(self._variable())
            else:
                cur.append(ch)
                self.i += 1
        if started:
            out.append("".join(cur))
        return out

    def _double(self) -> str:
        s, out = self.s, list[str]()
        while self.i < len(s):
            ch = s[self.i]
            if ch == '"':
                self.i += 1
                return "".join(out)
            if ch == self.esc and self.i + 1 < len(s) and s[self.i + 1] in ('"', "$", self.esc):
                out.append(s[self.i + 1])
                self.i += 2
            elif ch == "$":
                out.append(self._variable())
            else:
                out.append(ch)
                self.i += 1
        raise DockerfileError(
            f"unexpected end of statement while looking for matching double-quote in {s!r}"
        )

    def _variable(self) -> str:
        s = self.s
        self.i += 1  # the $
        if self.i >= len(s):
            return "$"
        if s[self.i] == "{":
            end = self._closing(self.i)
            body = s[self.i + 1 : end]
            self.i = end + 1
            return self._braced(body)
        m = _NAME.match(s, self.i)
        if not m:
            return "$"
        self.i = m.end()
        return self.env.get(m.group(0), "")

    def _closing(self, start: int) -> int:
        depth, i = 0, start
        while i < len(self.s):
            if self.s[i] == "{":
                depth += 1
            elif self.s[i] == "}":
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        raise DockerfileError(f"missing '}}' in {self.s!r}")

    def _braced(self, body: str) -> str:
        m = _NAME.match(body)
        if not m:
            raise DockerfileError(f"bad substitution: ${{{body}}}")
        name, rest = m.group(0), body[m.end() :]
        value = self.env.get(name)
        if not rest:
            return value or ""
        for op in (":-", ":+", "-", "+"):
            if rest.startswith(op):
                word = expand(rest[len(op) :], self.env, self.esc)
                unset = value is None or (op.startswith(":") and value == "")
                if op.endswith("-"):
                    return word if unset else (value or "")
                return "" if unset else word
        raise DockerfileError(f"unsupported modifier ({rest[:2]}) in substitution: ${{{body}}}")


__all__ = ["DockerfileError", "Instruction", "escape_char", "expand", "parse", "words"]
