"""Content-addressed chunks: how a file's bytes become a list of digests.

A file's content is the list of sha256 digests of its chunks, each at most
`CHUNK_SIZE` bytes. Identical chunks are stored once, and an append adds chunks
for the new bytes only, leaving the existing ones as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Final

#: Largest chunk stored under one digest.
CHUNK_SIZE: Final = 1 << 20

#: First byte of a stored chunk: how the rest is encoded.
RAW: Final = b"\x00"


def split(data: bytes | memoryview) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(digest, chunk)`` for consecutive chunks of ``data``."""
    if len(data) <= CHUNK_SIZE and isinstance(data, bytes):
        # Most files fit one chunk: no view, no copy.
        if data:
            yield hashlib.sha256(data).digest(), data
        return
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        chunk = bytes(view[start : start + CHUNK_SIZE])
        yield hashlib.sha256(chunk).digest(), chunk


def rechunk(pieces: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(digest, chunk)`` of a stream of pieces cut at `CHUNK_SIZE`.

    Memory stays within one chunk whatever the stream's length.
    """
    pending = bytearray()
    for piece in pieces:
        pending += piece
        while len(pending) >= CHUNK_SIZE:
            chunk = bytes(pending[:CHUNK_SIZE])
            del pending[:CHUNK_SIZE]
            yield hashlib.sha256(chunk).digest(), chunk
    if pending:
        chunk = bytes(pending)
        yield hashlib.sha256(chunk).digest(), chunk


def content_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of whole content, as Docker spells digests."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
