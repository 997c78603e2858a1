"""Layer tars as streams: read one into the blob store, write one deterministically.

`ingest_layer` reads an (optionally compressed) layer tar once, front to back,
in blocks of `BLOCK` bytes: it hashes every uncompressed byte (the DiffID),
streams each regular file's content into the blob store, turns the members
into a layer table (`core.layers.LayerTable`) and records the tar's *split*:
every byte that is not file content (headers, PAX records, padding, the end
blocks) with the content in between named by its chunk digests, compressed.
That is Docker's tar-split idea: `write_split` puts the identical tar back
together from the split and the blob store, so ``image save`` writes layers
whose sha256 is their DiffID without storing the content twice.

Memory stays bounded by the block size, the split (a few hundred bytes per
member, compressed) and the table (one entry per member), whatever the
layer's size.
"""

from __future__ import annotations

import bz2
import decimal
import gzip
import hashlib
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Final, NamedTuple, Protocol, cast

import msgpack
import zstandard

from dockstate.core.fs import DIR, FILE, SYMLINK, Entry
from dockstate.core.layers import HARDLINK, OTHER, InvalidLayerError, LayerTable, Member
from dockstate.eventlog import blobs
from dockstate.eventlog.errors import InvalidParameterError

#: How much of a layer is read (and hashed) at a time.
BLOCK: Final = 1 << 20
_TAR_BLOCK: Final = 512
#: Largest PAX record or GNU long name accepted (Go's archive/tar allows 1 MiB).
_MAX_META: Final = 1 << 20
#: The split's format marker.
SPLIT_VERSION: Final = 1

_FILE_TYPES: Final = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_OTHER_TYPES: Final = (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)

#: compression name -> magic bytes at the start of a stream.
MAGIC: Final = {
    "gzip": b"\x1f\x8b",
    "zstd": b"\x28\xb5\x2f\xfd",
    "bzip2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
}


class CorruptLayerError(InvalidParameterError):
    """A layer stream that cannot be read: truncated, bad checksum, bad compression."""


class Reader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class BlobSink(Protocol):
    """Where contents go: a write transaction, or a staging area committed in batches."""

    def put_blob(self, data: bytes) -> list[bytes]: ...

    def put_blob_stream(self, chunks: Iterable[bytes]) -> tuple[list[bytes], int]: ...


# -- compression -----------------------------------------------------------------


class _Prefixed:
    """A reader that first returns ``head`` (bytes already read to sniff), then the rest."""

    def __init__(self, head: bytes, rest: Reader) -> None:
        self._head, self._rest = head, rest

    def read(self, n: int = -1, /) -> bytes:
        if not self._head:
            return self._rest.read(n)
        if n < 0:
            head, self._head = self._head, b""
            return head + self._rest.read()
        out, self._head = self._head[:n], self._head[n:]
        return out


def sniff(raw: Reader) -> tuple[str | None, Reader]:
    """The compression of a stream (by its magic bytes) and a reader positioned at its start."""
    head = raw.read(6)
    stream = _Prefixed(head, raw)
    for name, magic in MAGIC.items():
        if head.startswith(magic):
            return name, stream
    return None, stream


def decompressed(raw: Reader) -> tuple[str | None, Reader]:
    """``raw`` decompressed if it starts with a known magic (gzip, zstd, bzip2, xz)."""
    kind, stream = sniff(raw)
    fileobj: Any = stream
    if kind == "gzip":
        return kind, gzip.GzipFile(fileobj=fileobj, mode="rb")
    if kind == "zstd":
        dctx = zstandard.ZstdDecompressor()
        return kind, dctx.stream_reader(fileobj, read_across_frames=True)
    if kind == "bzip2":
        return kind, bz2.BZ2File(fileobj, mode="rb")
    if kind == "xz":
        return kind, lzma.LZMAFile(fileobj, mode="rb")
    return None, stream


_DECOMPRESS_ERRORS: Final = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
    ValueError,
)


class HashingReader:
    """Counts and hashes everything read through it (a blob's digest, while streaming)."""

    def __init__(self, raw: Reader, progress: Callable[[int], None] | None = None) -> None:
        self._raw, self._progress = raw, progress
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        self.count += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def drain(self) -> None:
        while self.read(BLOCK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


# -- reading a layer -------------------------------------------------------------------


class LayerResult(NamedTuple):
    """What reading a layer found: its DiffID, table, size and stored split."""

    diff_id: str
    entries: list[tuple[str, Entry]]
    size: int
    tar_split: tuple[bytes, ...]
    tar_size: int
    #: sha256 and size of the bytes as read (compressed, if the layer was).
    blob_digest: str
    blob_size: int


class _Input:
    """The uncompressed layer: read in blocks, every byte hashed once, split recorded."""

    def __init__(self, raw: Reader) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0
        self.hash = hashlib.sha256()
        self.total = 0
        self.gap = bytearray()
        self._packer = msgpack.Packer(use_bin_type=True)
        self._zip = zlib.compressobj(6)
        self._split: list[bytes] = []

    def _fill(self) -> bool:
        try:
            data = self._raw.read(BLOCK)
        except _DECOMPRESS_ERRORS as exc:
            raise CorruptLayerError(f"cannot read layer: {exc}") from exc
        if not data:
            return False
        self.hash.update(data)
        self.total += len(data)
        self._buf = self._buf[self._pos :] + data if self._pos < len(self._buf) else data
        self._pos = 0
        return True

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes of tar metadata (kept in the split)."""
        while len(self._buf) - self._pos < n:
            if not self._fill():
                raise CorruptLayerError("unexpected EOF: the layer tar is truncated")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        self.gap += out
        return out

    def read_or_eof(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                break
        out = self._buf[self._pos : self._pos + n]
        self._pos += len(out)
        self.gap += out
        return out

    def content(self, n: int) -> Iterator[memoryview]:
        """``n`` bytes of file content, in pieces (not kept in the split)."""
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise CorruptLayerError("unexpected EOF: the layer tar is truncated")
            take = min(n, len(self._buf) - self._pos)
            yield memoryview(self._buf)[self._pos : self._pos + take]
            self._pos += take
            n -= take

    def emit(self, item: bytes | list[bytes]) -> None:
        self._split.append(self._zip.compress(self._packer.pack(item)))

    def cut(self, chunks: list[bytes]) -> None:
        """The split so far: the pending metadata, then a content region."""
        self.emit(bytes(self.gap))
        self.gap.clear()
        self.emit(chunks)

    def rest(self) -> None:
        """Read to the end (end blocks, record padding): all of it is metadata."""
        while True:
            self.gap += self._buf[self._pos :]
            self._pos = len(self._buf)
            if not self._fill():
                break

    def split(self) -> bytes:
        self.emit(bytes(self.gap))
        self.gap.clear()
        return b"".join(self._split) + self._zip.flush()


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise CorruptLayerError("invalid PAX header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise CorruptLayerError("invalid PAX header") from None
        if length <= 0 or pos + length > len(data):
            raise CorruptLayerError("invalid PAX header")
        record = data[space + 1 : pos + length - 1]
        key, eq, value = record.partition(b"=")
        if not eq:
            raise CorruptLayerError("invalid PAX header")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _pax_time(value: str) -> int:
    try:
        return int(decimal.Decimal(value) * 1_000_000_000)
    except decimal.InvalidOperation:
        raise CorruptLayerError(f"invalid PAX mtime {value!r}") from None


def _padding(size: int) -> int:
    return -size % _TAR_BLOCK


def ingest_layer(
    raw: Reader, sink: BlobSink, *, progress: Callable[[int], None] | None = None
) -> LayerResult:
    """Read one layer tar (compressed or not) into ``sink``; see the module docstring.

    Raises:
        CorruptLayerError: the stream is truncated or not a tar.
        InvalidLayerError: a member Docker would refuse (see `core.layers`).
    """
    counted = HashingReader(raw, progress)
    try:
        _kind, stream = decompressed(counted)
    except _DECOMPRESS_ERRORS as exc:
        raise CorruptLayerError(f"cannot read layer: {exc}") from exc
    inp = _Input(stream)
    table = LayerTable()
    global_pax: dict[str, str] = {}
    local_pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    while True:
        block = inp.read_or_eof(_TAR_BLOCK)
        if len(block) < _TAR_BLOCK:
            if block:
                raise CorruptLayerError("unexpected EOF: the layer tar is truncated")
            break  # Go's archive/tar takes a stream ending at a block boundary as the end
        if block.count(0) == _TAR_BLOCK:
            break  # end of archive
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise CorruptLayerError(f"invalid tar header: {exc}") from exc
        kind = info.type
        if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
            if info.size > _MAX_META:
                raise CorruptLayerError("PAX header too large")
            records = _pax_records(inp.read(info.size + _padding(info.size))[: info.size])
            (global_pax if kind == tarfile.XGLTYPE else local_pax).update(records)
            continue
        if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            if info.size > _MAX_META:
                raise CorruptLayerError("GNU long name too large")
            data = inp.read(info.size + _padding(info.size))[: info.size]
            text = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if kind == tarfile.GNUTYPE_LONGNAME:
                long_name = text
            else:
                long_link = text
            continue
        pax = {**global_pax, **local_pax} if global_pax else local_pax
        name = pax.get("path", long_name if long_name is not None else info.name)
        linkname = pax.get("linkpath", long_link if long_link is not None else info.linkname)
        size = int(pax["size"]) if "size" in pax else info.size
        uid = int(pax["uid"]) if "uid" in pax else info.uid
        gid = int(pax["gid"]) if "gid" in pax else info.gid
        mtime = _pax_time(pax["mtime"]) if "mtime" in pax else int(info.mtime) * 1_000_000_000
        if any(k.startswith("GNU.sparse") for k in pax) or kind == tarfile.GNUTYPE_SPARSE:
            raise InvalidLayerError(f"unhandled sparse file {name!r}")
        local_pax, long_name, long_link = {}, None, None
        chunks: tuple[bytes, ...] = ()
        if kind in _FILE_TYPES:
            member_kind = FILE
        elif kind == tarfile.DIRTYPE:
            member_kind = DIR
        elif kind == tarfile.SYMTYPE:
            member_kind = SYMLINK
        elif kind == tarfile.LNKTYPE:
            member_kind = HARDLINK
        elif kind in _OTHER_TYPES:
            member_kind = OTHER
        else:
            raise InvalidLayerError(f"unhandled tar header type {kind[0] if kind else 0}")
        if size:
            # memoryviews are bytes-like: the store only concatenates and hashes them.
            digests, _ = sink.put_blob_stream(cast(Iterator[bytes], inp.content(size)))
            inp.cut(digests)
            if member_kind == FILE:
                chunks = tuple(digests)
            inp.read(_padding(size))
        table.add(
            Member(
                name,
                member_kind,
                info.mode,
                uid,
                gid,
                mtime,
                size if member_kind == FILE else 0,
                chunks,
                linkname,
            )
        )
    inp.rest()
    try:
        counted.drain()
    except _DECOMPRESS_ERRORS as exc:
        raise CorruptLayerError(f"cannot read layer: {exc}") from exc
    entries, size = table.finish()
    split = inp.split()
    split_digests = tuple(sink.put_blob(_split_header(inp.total) + split))
    return LayerResult(
        "sha256:" + inp.hash.hexdigest(),
        entries,
        size,
        split_digests,
        inp.total,
        counted.digest,
        counted.count,
    )


def _split_header(tar_size: int) -> bytes:
    # The header is plain msgpack before the zlib stream, so the size is known up front.
    head: bytes = msgpack.packb({"v": SPLIT_VERSION, "size": tar_size})
    return len(head).to_bytes(2, "big") + head


# -- writing a layer back from its split ---------------------------------------------------


def split_size(read_blob: Callable[[bytes], bytes], split: Iterable[bytes]) -> int:
    """The size of the tar a split reproduces."""
    first = read_blob(next(iter(split)))
    n = int.from_bytes(first[:2], "big")
    return int(msgpack.unpackb(first[2 : 2 + n])["size"])


def iter_split(read_blob: Callable[[bytes], bytes], split: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of the tar a split describes, in pieces (contents read from the blob store)."""
    raw = b"".join(read_blob(d) for d in split)
    n = int.from_bytes(raw[:2], "big")
    header = msgpack.unpackb(raw[2 : 2 + n])
    if header.get("v") != SPLIT_VERSION:
        raise InvalidParameterError(f"unknown tar split version {header.get('v')!r}")
    unzip = zlib.decompressobj()
    unpacker = msgpack.Unpacker(raw=False)
    pos = 2 + n

    def items() -> Iterator[bytes]:
        for item in unpacker:
            if isinstance(item, bytes):
                yield item
            else:
                for digest in item:
                    yield read_blob(digest)

    while pos < len(raw):
        unpacker.feed(unzip.decompress(raw[pos : pos + BLOCK]))
        pos += BLOCK
        yield from items()
    unpacker.feed(unzip.flush())
    yield from items()


def write_split(
    read_blob: Callable[[bytes], bytes], split: Iterable[bytes], out: IO[bytes]
) -> tuple[str, int]:
    """Write the tar a split describes to ``out``; returns its sha256 digest and size."""
    digest = hashlib.sha256()
    size = 0
    for piece in iter_split(read_blob, split):
        digest.update(piece)
        out.write(piece)
        size += len(piece)
    return "sha256:" + digest.hexdigest(), size


# -- writing deterministic tars ---------------------------------------------------------


class TarWriter:
    """A tar as Go's archive/tar writes it: PAX headers only when needed, 1024 zero bytes at
    the end, no record padding (so an empty layer is the 1024 NUL bytes of Docker's
    empty-layer DiffID).
    """

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.size = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.size += len(data)

    def add(
        self,
        name: str,
        kind: bytes,
        *,
        mode: int,
        size: int = 0,
        mtime: int = 0,
        uid: int = 0,
        gid: int = 0,
        linkname: str = "",
        content: Iterable[bytes] = (),
    ) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.size = size
        info.mtime = mtime
        info.uid, info.gid = uid, gid
        info.linkname = linkname
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        written = 0
        for piece in content:
            self._write(piece)
            written += len(piece)
        if written != size:
            raise ValueError(f"{name}: wrote {written} bytes, header says {size}")
        pad = _padding(size)
        if pad:
            self._write(b"\0" * pad)

    def close(self) -> None:
        self._write(b"\0" * (2 * _TAR_BLOCK))


def chunked(data: bytes) -> Iterator[bytes]:
    for _digest, chunk in blobs.split(data):
        yield chunk


__all__ = [
    "BLOCK",
    "MAGIC",
    "BlobSink",
    "CorruptLayerError",
    "HashingReader",
    "LayerResult",
    "TarWriter",
    "decompressed",
    "ingest_layer",
    "iter_split",
    "sniff",
    "split_size",
    "write_split",
]
