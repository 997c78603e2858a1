"""Image verbs that move bytes: ``image load``, ``image save``, ``build``."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from dockstate.core.errors import InvalidParameterError
from dockstate.tools.context import Context
from dockstate.tools.format import human_size


class _LayerBar:
    """Docker's per-layer progress line, redrawn on a terminal, silent when piped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.current = ""

    def __call__(self, layer: str, done: int, total: int) -> None:
        if not self.enabled or total < (1 << 20):
            return
        frac = min(done / total, 1.0) if total else 1.0
        bar = "=" * int(frac * 50)
        arrow = ">" if frac < 1 else "="
        self.stream.write(
            f"\r{layer}: Loading layer [{bar}{arrow:<{50 - len(bar)}}]  {human_size(done)}/{human_size(total)}"
        )
        self.stream.flush()
        self.current = layer

    def clear(self) -> None:
        if self.enabled and self.current:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def image_load(ctx: Context) -> int:
    from dockstate.tools import imageio

    a = ctx.args
    if (a.input is None) == (a.dir is None):
        raise InvalidParameterError("give an archive with -i FILE or an OCI layout directory")
    source = a.input or a.dir
    if not os.path.exists(source):
        raise InvalidParameterError(f"open {source}: no such file or directory")
    bar = _LayerBar(sys.stderr)
    try:
        lines = imageio.load(ctx.host, source, platform=a.platform, progress=bar)
    finally:
        bar.clear()
    for line in lines:
        if a.quiet and not line.startswith("Loaded image"):
            continue
        print(line)
    ctx.maintain_snapshots()
    return 0


def image_save(ctx: Context) -> int:
    from dockstate.tools import imageio

    imageio.save(ctx.reader, ctx.args.images, ctx.args.output, at=ctx.at())
    return 0


def _key_values(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidParameterError(f"invalid build-arg {item!r}: use KEY=VALUE")
        out[key] = value if eq else os.environ.get(key, "")
    return out


def image_build(ctx: Context) -> int:
    from dockstate.tools import build

    a = ctx.args
    image_id, lines, warnings = build.build(
        ctx.host,
        a.context,
        dockerfile=a.file,
        tags=a.tag or [],
        build_args=_key_values(a.build_arg),
    )
    if a.quiet:
        print(image_id)
    else:
        for line in lines:
            print(line)
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    ctx.maintain_snapshots()
    return 0
