"""Content-addressed chunks: how a file's bytes become a list of digests.

A file's content is the list of sha256 digests of its chunks, each at most
`CHUNK_SIZE` bytes. Identical chunks are stored once, and an append adds chunks
for the new bytes only, leaving the existing ones as they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

#: Largest chunk stored under one digest.
CHUNK_SIZE: Final = 1 << 20

#: First byte of a stored chunk: how the rest is encoded.
RAW: Final = b"\x00"


class Digested(bytes):
    """Bytes whose sha256 digest is already known, so that storing them does not hash them again.

    Whoever makes one vouches for the digest: `digested` does so only after hashing
    (an export file's blobs are checked against their digests as the file is read,
    and a replay writes the same bytes again and again). Everything else about them
    is plain bytes: slicing or joining them gives bytes.
    """

    sha256: bytes


def digested(data: bytes, digest: bytes) -> Digested | None:
    """``data`` carrying ``digest``, or None if ``digest`` is not the sha256 of ``data``."""
    if hashlib.sha256(data).digest() != digest:
        return None
    out = Digested(data)
    out.sha256 = digest
    return out


def chunks_of(
    data: bytes | memoryview,
) -> Sequence[tuple[bytes, bytes]] | Iterator[tuple[bytes, bytes]]:
    """`split`, as a list when ``data`` is one chunk (most files): what a store iterates."""
    if type(data) is Digested and len(data) <= CHUNK_SIZE:
        return [(data.sha256, data)] if data else []
    if len(data) <= CHUNK_SIZE and isinstance(data, bytes):
        return [(hashlib.sha256(data).digest(), data)] if data else []
    return split(data)


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
