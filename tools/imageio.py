"""``image load`` and ``image save``: Docker's archive formats in and out of a store.

Load takes what ``docker save`` writes (the legacy layout of Docker <= 24 and
the OCI layout + ``manifest.json`` of Docker >= 25) and any OCI image layout,
as a tar (plain, gzip, zstd, bzip2 or xz) or a directory. Like Docker's
loader it prefers ``manifest.json`` when there is one; otherwise it walks
``index.json`` to manifests (a nested index picks ``platform``, else
linux/amd64, else its only manifest).

Identities are Docker's: the DiffID is the sha256 of the uncompressed layer
stream, checked against the config's ``rootfs.diff_ids``; the ChainID follows
the image-spec formula; the image id is the sha256 of the config bytes. A layer
whose ChainID is already stored is not read at all.

All of an archive's new layers are read inside the write transaction of its
first image, so a bad layer anywhere (a DiffID that does not match, a
truncated stream, a member Docker would refuse) appends nothing. LMDB keeps a
write transaction's pages in memory until it commits, though, so when the new
layers add up to more than ``stage_over`` bytes their contents are first
stored in committed batches of blobs (content-addressed chunks, never events):
a load refused after that appends no event either, but may leave unreferenced
chunks behind. Staging also lets go of the pages of the store it has mapped
as it goes (`_StoreMap`), so a load's memory does not grow with its layers.

Save writes a Docker >= 25 archive. Each layer tar is rebuilt byte for byte
from the split recorded when the layer was read (see `tools.tarstream`), so
its sha256 is its DiffID again and the archive loads back with every id intact.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import mmap
import os
import posixpath
import re
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Final, NamedTuple, Protocol, cast

from dockstate.core.commands import DockerHost, LayerSpec
from dockstate.core.errors import InvalidParameterError
from dockstate.core.names import chain_ids, normalize_image_ref
from dockstate.core.refs import find_image
from dockstate.core.state import Host, Image
from dockstate.eventlog import LmdbEventLog, blobs
from dockstate.eventlog.log import EventLog, WriteTxn
from dockstate.projections.query import Reader as StoreReader
from dockstate.tools.format import human_size
from dockstate.tools.tarstream import (
    BLOCK,
    BlobSink,
    CorruptLayerError,
    TarWriter,
    decompressed,
    ingest_layer,
    iter_split,
    sniff,
    split_size,
)

#: (layer short id, bytes read, bytes in all) while a layer is read.
ProgressFn = Callable[[str, int, int], None]

#: New layer bytes above which contents are staged in committed batches (see module doc).
STAGE_OVER: Final = 128 << 20
#: Size of one staged batch of chunks.
STAGE_BATCH: Final = 32 << 20
#: Staged chunks written between two lettings go of the store's mapped pages (see `_StoreMap`).
LET_GO_EVERY: Final = 16
#: Largest JSON document (manifest, config, index) read from an archive.
MAX_JSON: Final = 32 << 20

MT_OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
_INDEXES: Final = (MT_OCI_INDEX, MT_DOCKER_LIST)
_MANIFESTS: Final = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Docker's progress bar when a layer is done.
_BAR: Final = "[" + "=" * 50 + ">]"


class InvalidArchiveError(InvalidParameterError):
    """An archive that cannot be loaded: its structure, a digest or a layer is wrong."""


# -- sources: a tar or a directory -------------------------------------------------------


def _clean(name: str) -> str:
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise InvalidArchiveError(f"invalid archive: path {name!r} is outside of the archive")
    return rel


class _Stream(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Region:
    """A byte range of an open file, read with pread (no shared file position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._pos, self._end = fd, offset, offset + size

    def read(self, n: int = -1, /) -> bytes:
        left = self._end - self._pos
        n = left if n < 0 else min(n, left)
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise CorruptLayerError("unexpected EOF: the archive is truncated")
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._pos = self._end


class _Source:
    """Named files of an archive, each readable as a fresh stream."""

    label: str

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> _Stream:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read_json(self, name: str) -> bytes:
        if not self.exists(name):
            raise InvalidArchiveError(f"invalid archive: {name} is missing")
        if self.size(name) > MAX_JSON:
            raise InvalidArchiveError(f"invalid archive: {name} is too large")
        stream = self.open(name)
        out = bytearray()
        try:
            while chunk := stream.read(BLOCK):
                out += chunk
        finally:
            stream.close()
        return bytes(out)


class _TarSource(_Source):
    def __init__(self, path: str) -> None:
        self.label = path
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._tmp: IO[bytes] | None = None
        try:
            kind, _ = sniff(self._file)
            self._file.seek(0)
            fileobj: IO[bytes] = self._file
            if kind is not None:
                fileobj = self._tmp = self._inflate()
            self._fd = fileobj.fileno()
            self._members = self._index(fileobj)
        except BaseException:
            self.close()
            raise

    def _inflate(self) -> IO[bytes]:
        """A compressed archive is inflated to an anonymous temporary file (random access)."""
        tmp = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        _, stream = decompressed(self._file)
        try:
            while chunk := stream.read(BLOCK):
                tmp.write(chunk)
        except (OSError, EOFError, ValueError) as exc:
            tmp.close()
            raise InvalidArchiveError(f"invalid archive {self.label}: {exc}") from exc
        except Exception as exc:  # zlib/lzma/zstd errors
            tmp.close()
            raise InvalidArchiveError(f"invalid archive {self.label}: {exc}") from exc
        tmp.flush()
        tmp.seek(0)
        return tmp

    def _index(self, fileobj: IO[bytes]) -> dict[str, tarfile.TarInfo]:
        end = os.fstat(fileobj.fileno()).st_size
        members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(fileobj=fileobj, mode="r:") as tar:
                for m in tar:
                    if m.offset_data + (m.size if m.isreg() else 0) > end:
                        raise InvalidArchiveError(
                            f"invalid archive {self.label}: unexpected EOF (truncated in {m.name})"
                        )
                    with contextlib.suppress(InvalidArchiveError):
                        members[_clean(m.name)] = m
        except tarfile.TarError as exc:
            raise InvalidArchiveError(f"invalid archive {self.label}: {exc}") from exc
        if not members:
            raise InvalidArchiveError(f"invalid archive {self.label}: it holds no files")
        return members

    def _member(self, name: str) -> tarfile.TarInfo:
        key = _clean(name)
        for _ in range(16):
            m = self._members.get(key)
            if m is None:
                raise InvalidArchiveError(f"invalid archive: {name} is missing")
            if m.issym():
                key = _clean(posixpath.join(posixpath.dirname(key), m.linkname))
            elif m.islnk():
                key = _clean(m.linkname)
            else:
                if not m.isreg():
                    raise InvalidArchiveError(f"invalid archive: {name} is not a file")
                return m
        raise InvalidArchiveError(f"invalid archive: {name}: too many levels of links")

    def exists(self, name: str) -> bool:
        try:
            self._member(name)
        except InvalidArchiveError:
            return False
        return True

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> _Stream:
        m = self._member(name)
        return _Region(self._fd, m.offset_data, m.size)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.close()
        self._file.close()


class _DirSource(_Source):
    def __init__(self, path: str) -> None:
        self.label = path
        self._root = os.path.realpath(path)

    def _path(self, name: str) -> str:
        full = os.path.realpath(os.path.join(self._root, _clean(name)))
        if os.path.commonpath([full, self._root]) != self._root:
            raise InvalidArchiveError(f"invalid archive: {name!r} is outside of {self.label}")
        return full

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def size(self, name: str) -> int:
        return os.path.getsize(self._path(name))

    def open(self, name: str) -> _Stream:
        path = self._path(name)
        if not os.path.isfile(path):
            raise InvalidArchiveError(f"invalid archive: {name} is missing")
        return _FileReader(path)


class _FileReader:
    """A file read to its end, then closed (streams outlive no load)."""

    def __init__(self, path: str) -> None:
        self._f: IO[bytes] | None = open(path, "rb")  # noqa: SIM115 (closed at EOF)

    def read(self, n: int = -1, /) -> bytes:
        if self._f is None:
            return b""
        data = self._f.read(n)
        if not data or n < 0:
            self.close()
        return data

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _open_source(source: str | os.PathLike[str]) -> _Source:
    path = os.fspath(source)
    if os.path.isdir(path):
        return _DirSource(path)
    try:
        return _TarSource(path)
    except FileNotFoundError:
        raise InvalidParameterError(f"open {path}: no such file or directory") from None
    except IsADirectoryError:
        return _DirSource(path)


# -- what an archive holds ------------------------------------------------------------------


class _LayerRef(NamedTuple):
    name: str
    #: the blob digest and size a manifest promises (OCI), checked while reading.
    digest: str | None = None
    size: int | None = None


class _Plan(NamedTuple):
    config: bytes
    image_id: str
    diff_ids: list[str]
    layers: list[_LayerRef]
    tags: list[str]
    volumes: list[str]
    created: str


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidArchiveError(f"invalid archive: {what} is not valid JSON: {exc}") from None


def _parse_config(raw: bytes, what: str) -> tuple[list[str], list[str], str, dict[str, Any]]:
    cfg = _json(raw, what)
    if not isinstance(cfg, dict):
        raise InvalidArchiveError(f"invalid image config {what}: not a JSON object")
    rootfs = cfg.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArchiveError(f'invalid image config {what}: rootfs.type must be "layers"')
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and _DIGEST.match(d) for d in diff_ids
    ):
        raise InvalidArchiveError(f"invalid image config {what}: bad rootfs.diff_ids")
    inner = cfg.get("config") or {}
    vols = inner.get("Volumes") if isinstance(inner, dict) else None
    volumes = sorted(vols) if isinstance(vols, dict) else []
    created = cfg.get("created") if isinstance(cfg.get("created"), str) else ""
    return list(diff_ids), volumes, created or "", cfg


def _check_platform(cfg: dict[str, Any], platform: str | None, what: str) -> None:
    if platform is None:
        return
    want = _parse_platform(platform)
    have = (cfg.get("os", ""), cfg.get("architecture", ""), cfg.get("variant", ""))
    if want[0] != have[0] or want[1] != have[1] or (want[2] and want[2] != have[2]):
        have_text = "/".join(p for p in have if p)
        raise InvalidArchiveError(
            f"image {what} is for {have_text}, not for the requested platform {platform}"
        )


def _parse_platform(text: str) -> tuple[str, str, str]:
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidParameterError(f"invalid platform {text!r}: use os/arch[/variant]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def _plans_from_manifest(src: _Source, platform: str | None) -> list[_Plan]:
    manifest = _json(src.read_json("manifest.json"), "manifest.json")
    if not isinstance(manifest, list):
        raise InvalidArchiveError("invalid archive: manifest.json is not a list")
    plans = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise InvalidArchiveError("invalid archive: a manifest.json entry has no Config")
        layers = item.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise InvalidArchiveError("invalid archive: bad Layers in manifest.json")
        config = src.read_json(item["Config"])
        diff_ids, volumes, created, cfg = _parse_config(config, item["Config"])
        if len(layers) != len(diff_ids):
            raise InvalidArchiveError(
                f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(layers)}"
            )
        for name in layers:
            if not src.exists(name):
                raise InvalidArchiveError(f"invalid archive: layer {name} is missing")
        image_id = blobs.content_digest(config)
        _check_platform(cfg, platform, image_id[7:19])
        tags = [t for t in item.get("RepoTags") or [] if isinstance(t, str) and t]
        plans.append(
            _Plan(
                config, image_id, diff_ids, [_LayerRef(x) for x in layers], tags, volumes, created
            )
        )
    return plans


def _blob_path(digest: str) -> str:
    alg, _, encoded = digest.partition(":")
    if alg != "sha256" or not _DIGEST.match(digest):
        raise InvalidArchiveError(f"invalid archive: unsupported digest {digest!r}")
    return f"blobs/{alg}/{encoded}"


def _read_blob(src: _Source, desc: dict[str, Any]) -> bytes:
    digest = desc.get("digest")
    if not isinstance(digest, str):
        raise InvalidArchiveError("invalid archive: a descriptor has no digest")
    data = src.read_json(_blob_path(digest))
    if blobs.content_digest(data) != digest:
        raise InvalidArchiveError(f"invalid archive: blob {digest} does not match its digest")
    return data


def _descriptor_name(desc: dict[str, Any]) -> str | None:
    ann = desc.get("annotations") or {}
    name = ann.get("io.containerd.image.name")
    if isinstance(name, str) and name:
        return name
    ref = ann.get("org.opencontainers.image.ref.name")
    # A bare tag ("1") names no repository; only a full reference can be a tag here.
    if isinstance(ref, str) and ("/" in ref or ":" in ref):
        return ref
    return None


def _choose(manifests: list[dict[str, Any]], platform: str | None, what: str) -> dict[str, Any]:
    def plat(d: dict[str, Any]) -> tuple[str, str, str]:
        p = d.get("platform") or {}
        return p.get("os", ""), p.get("architecture", ""), p.get("variant", "")

    images = [
        d
        for d in manifests
        if d.get("mediaType") in (*_MANIFESTS, None)
        and plat(d)[0] != "unknown"  # BuildKit's attestation manifests
    ]
    if platform is not None:
        want = _parse_platform(platform)
        for d in images:
            have = plat(d)
            if have[:2] == want[:2] and (not want[2] or want[2] == have[2]):
                return d
        found = ", ".join("/".join(p for p in plat(d) if p) for d in images)
        raise InvalidArchiveError(f"{what}: no match for platform {platform} (found: {found})")
    for d in images:
        if plat(d)[:2] == ("linux", "amd64"):
            return d
    if len(images) == 1:
        return images[0]
    found = ", ".join("/".join(p for p in plat(d) if p) for d in images)
    raise InvalidArchiveError(
        f"{what} holds several platforms ({found}): choose one with --platform"
    )


def _plans_from_index(src: _Source, platform: str | None) -> list[_Plan]:
    index = _json(src.read_json("index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArchiveError("invalid archive: index.json has no manifests")
    tops: list[dict[str, Any]] = [d for d in index["manifests"] if isinstance(d, dict)]
    # An index of unnamed per-platform manifests is one image for several platforms.
    if len(tops) > 1 and all("platform" in d and _descriptor_name(d) is None for d in tops):
        tops = [_choose(tops, platform, "index.json")]
    by_id: dict[str, _Plan] = {}
    for desc in tops:
        name = _descriptor_name(desc)
        target = desc
        for _ in range(8):
            if target.get("mediaType") not in _INDEXES:
                break
            nested = _json(_read_blob(src, target), target.get("digest", ""))
            target = _choose(
                [d for d in nested.get("manifests") or [] if isinstance(d, dict)],
                platform,
                f"index {target.get('digest', '')[:19]}",
            )
        plan = _plan_from_manifest_blob(src, target, platform if desc is target else None)
        old = by_id.get(plan.image_id)
        if old is None:
            by_id[plan.image_id] = plan._replace(tags=[name] if name else [])
        elif name and name not in old.tags:
            old.tags.append(name)
    if not by_id:
        raise InvalidArchiveError("invalid archive: index.json names no image")
    return list(by_id.values())


def _plan_from_manifest_blob(src: _Source, desc: dict[str, Any], platform: str | None) -> _Plan:
    manifest = _json(_read_blob(src, desc), desc.get("digest", ""))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise InvalidArchiveError(f"invalid archive: manifest {desc.get('digest')} has no config")
    config = _read_blob(src, manifest["config"])
    image_id = blobs.content_digest(config)
    diff_ids, volumes, created, cfg = _parse_config(config, image_id)
    _check_platform(cfg, platform, image_id[7:19])
    layers = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
    if len(layers) != len(diff_ids):
        raise InvalidArchiveError(
            f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, got {len(layers)}"
        )
    refs = []
    for d in layers:
        digest = d.get("digest")
        if not isinstance(digest, str):
            raise InvalidArchiveError("invalid archive: a layer descriptor has no digest")
        path = _blob_path(digest)
        if not src.exists(path):
            raise InvalidArchiveError(f"invalid archive: layer blob {digest} is missing")
        size = d.get("size")
        refs.append(_LayerRef(path, digest, size if isinstance(size, int) else None))
    return _Plan(config, image_id, diff_ids, refs, [], volumes, created)


def _plans(src: _Source, platform: str | None) -> list[_Plan]:
    if src.exists("manifest.json"):
        return _plans_from_manifest(src, platform)
    if src.exists("index.json"):
        return _plans_from_index(src, platform)
    raise InvalidArchiveError("invalid archive: does not contain a manifest.json")


# -- loading ------------------------------------------------------------------------------------


class _StoreMap:
    """This process's mapping of an LMDB store's data file, whose pages it can let go of.

    LMDB reads a store through a shared map of its ``data.mdb``. Every page a
    write transaction reads there (B-tree branches and leaves) stays mapped, and
    counts in the process's RSS, until the map is closed; and the kernel maps
    more than the page read: the cached pages around it (fault-around, 64 KiB),
    or the whole large folio holding it (up to 2 MiB on ext4 since Linux 6.16,
    for pages LMDB wrote in one large write). Staged chunks are keyed by random
    digests, so every batch reads most leaves of the blobs tree, and the
    just-written pages around them come along: a 500 MB layer left 280 MB of
    the store mapped, growing with the layer.

    ``MADV_DONTNEED`` on a shared file mapping only removes the process's page
    table entries: the pages stay in the page cache, and the next access maps
    them again with the file's bytes. It changes no data (dirty pages of a
    writable map keep theirs too), so readers in other threads are unaffected.
    The map is found in ``/proc/self/maps`` (the shared mapping of the store's
    ``data.mdb``) at the start of a write transaction and advised only until
    it ends: LMDB refuses to move the map while one is open
    (``mdb_env_set_mapsize`` fails with EINVAL), so the range advised is
    LMDB's map; and before each advice ``/proc/self/map_files`` must still
    name the store's file for exactly that range. Where any of this is
    missing (not Linux, or a kernel that names the file otherwise), nothing is
    done and the pages stay mapped, as before.
    """

    def __init__(self, data_file: str, madvise: Callable[[int, int, int], int]) -> None:
        # Lines of /proc/self/maps: start-end perms offset dev inode path. Only a shared
        # mapping ("s") is ever advised: there MADV_DONTNEED cannot lose a byte.
        self._path = os.path.realpath(data_file)
        path = re.escape(self._path)
        self._line = re.compile(rf"^([0-9a-f]+)-([0-9a-f]+) \S{{3}}s \S+ \S+ \d+ +{path}$", re.M)
        self._madvise = madvise

    @classmethod
    def of(cls, log: EventLog) -> _StoreMap | None:
        """The map of ``log``'s store, or None when there is none to let go of."""
        madvise = _madvise()
        if madvise is None or not isinstance(log, LmdbEventLog):
            return None
        return cls(os.path.join(log.path, "data.mdb"), madvise)

    def find(self) -> list[tuple[int, int]]:
        """Where the map is: it stays there while a write transaction is open (call in one)."""
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            text = maps.read()
        return [(int(m[1], 16), int(m[2], 16)) for m in self._line.finditer(text)]

    def let_go(self, ranges: list[tuple[int, int]]) -> None:
        """Unmap the pages in ``ranges`` (from `find`) from this process; they stay cached.

        A range that is no longer exactly a mapping of the store's file is left alone.
        """
        for start, end in ranges:
            if self._maps_the_store(start, end):
                # A failure only leaves the pages mapped, as they were.
                self._madvise(start, end - start, mmap.MADV_DONTNEED)

    def _maps_the_store(self, start: int, end: int) -> bool:
        # A few microseconds, against a whole read of /proc/self/maps: the check that
        # keeps a range from going stale even if the transaction that found it ends early.
        try:
            return os.readlink(f"/proc/self/map_files/{start:x}-{end:x}") == self._path
        except OSError:
            return False


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's madvise(2), where /proc/self/maps and MADV_DONTNEED are there to use it."""
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int], int], fn)


class _StagedSink:
    """Chunks gathered in memory and committed in batches of `STAGE_BATCH` bytes.

    Each batch lets go of the store's mapped pages every `LET_GO_EVERY` chunks
    and before it commits (see `_StoreMap`), which keeps the load's memory
    within about one batch whatever the layer's size.
    """

    def __init__(self, log: EventLog, batch: int = STAGE_BATCH) -> None:
        self._log, self._batch = log, batch
        self._pending: list[bytes] = []
        self._bytes = 0
        self._map = _StoreMap.of(log)

    def put_blob_stream(self, chunks: Iterable[bytes]) -> tuple[list[bytes], int]:
        digests, size = [], 0
        for digest, chunk in blobs.rechunk(chunks):
            digests.append(digest)
            size += len(chunk)
            self._add(chunk)
        return digests, size

    def put_blob(self, data: bytes) -> list[bytes]:
        digests = []
        for digest, chunk in blobs.split(data):
            digests.append(digest)
            self._add(chunk)
        return digests

    def _add(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._bytes += len(chunk)
        if self._bytes >= self._batch:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending = self._pending
        self._log.write(lambda tx: self._put_all(tx, pending))
        self._pending, self._bytes = [], 0

    def _put_all(self, tx: WriteTxn, chunks: list[bytes]) -> None:
        store_map = self._map
        # Found inside this write transaction, the map cannot move until it ends.
        mapped = store_map.find() if store_map else []
        for i, chunk in enumerate(chunks, 1):
            # Each chunk is at most CHUNK_SIZE, so put_blob stores it under the same digest.
            tx.put_blob(chunk)
            if store_map and (i % LET_GO_EVERY == 0 or i == len(chunks)):
                store_map.let_go(mapped)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _read_layer(
    src: _Source, plan: _Plan, i: int, sink: BlobSink, progress: ProgressFn | None
) -> LayerSpec:
    ref = plan.layers[i]
    expected = plan.diff_ids[i]
    total = src.size(ref.name)
    short = _short(expected)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        assert progress is not None
        progress(short, done, total)

    stream = src.open(ref.name)
    try:
        result = ingest_layer(stream, sink, progress=advance if progress else None)
    except CorruptLayerError as exc:
        raise InvalidArchiveError(f"invalid archive: layer {ref.name}: {exc}") from exc
    finally:
        stream.close()
    if ref.digest is not None and result.blob_digest != ref.digest:
        raise InvalidArchiveError(
            f"invalid archive: layer blob {ref.name} has digest {result.blob_digest}, "
            f"the manifest says {ref.digest}"
        )
    if result.diff_id != expected:
        raise InvalidArchiveError(
            f'invalid diffID for layer {i}: expected "{expected}", got "{result.diff_id}"'
        )
    return LayerSpec(result.diff_id, result.entries, result.size, result.tar_split)


def load(
    host: DockerHost,
    source: str | os.PathLike[str],
    *,
    platform: str | None = None,
    progress: ProgressFn | None = None,
    stage_over: int = STAGE_OVER,
) -> list[str]:
    """``docker load``: store an archive's images; returns Docker's output lines.

    Args:
        host: the host to load into.
        source: a tar archive (plain, gzip, zstd, bzip2 or xz) or an OCI layout directory.
        platform: ``os/arch[/variant]`` to pick from a multi-platform index.
        progress: called with (layer short id, bytes read, layer bytes) while reading.
        stage_over: new layer bytes above which contents are staged (see the module doc).

    Returns:
        ``<id>: Loading layer [...] size/size`` or ``<id>: Already exists`` per layer,
        then ``Loaded image: NAME:TAG`` per tag (``Loaded image ID: sha256:...`` if none).

    Raises:
        InvalidArchiveError: the archive, a digest or a layer is wrong (nothing appended).
        InvalidLayerError: a layer holds a member Docker refuses (nothing appended).
    """
    src = _open_source(source)
    try:
        return _load(host, src, platform, progress, stage_over)
    finally:
        src.close()


def _load(
    host: DockerHost,
    src: _Source,
    platform: str | None,
    progress: ProgressFn | None,
    stage_over: int,
) -> list[str]:
    plans = _plans(src, platform)
    state = host.state()
    known = set(state.layers)
    tags_before = dict(state.tags)
    todo: dict[str, tuple[_Plan, int]] = {}
    for plan in plans:
        for i, chain in enumerate(chain_ids(plan.diff_ids)):
            if chain not in known and chain not in todo:
                todo[chain] = (plan, i)
    new_bytes = sum(src.size(p.layers[i].name) for p, i in todo.values())
    staged = new_bytes > stage_over
    specs: dict[str, LayerSpec] = {}

    def read_all(sink: BlobSink, skip: set[str]) -> dict[str, LayerSpec]:
        return {
            chain: _read_layer(src, p, i, sink, progress)
            for chain, (p, i) in todo.items()
            if chain not in skip
        }

    if staged:
        sink = _StagedSink(host.log, STAGE_BATCH)
        specs.update(read_all(sink, set()))
        sink.flush()

    lines: list[str] = []
    announced: set[str] = set()
    for k, plan in enumerate(plans):
        chains = chain_ids(plan.diff_ids)

        def prepare(
            tx: WriteTxn,
            existed: Sequence[bool],
            chains: Sequence[str] = chains,
            first: bool = k == 0,
        ) -> list[LayerSpec | None]:
            if first and not staged:
                # Every new layer of the archive is read in the first image's transaction.
                skip = {c for c, e in zip(chains, existed, strict=True) if e}
                specs.clear()
                specs.update(read_all(tx, skip))
            return [None if e else specs.get(c) for c, e in zip(chains, existed, strict=True)]

        image_id, tags, _existed = host.register_image(
            config=plan.config,
            image_id=plan.image_id,
            layers=prepare,
            diff_ids=plan.diff_ids,
            tags=plan.tags,
            volumes=plan.volumes,
            created=plan.created,
            cmd="image load",
            args={"image_id": plan.image_id, "tags": list(plan.tags)},
        )
        for chain, diff_id, layer in zip(chains, plan.diff_ids, plan.layers, strict=True):
            if chain in specs and chain not in announced:
                announced.add(chain)
                size = human_size(src.size(layer.name))
                lines.append(f"{_short(diff_id)}: Loading layer {_BAR} {size:>8}/{size}")
            else:
                lines.append(f"{_short(diff_id)}: Already exists")
        for ref in tags:
            old = tags_before.get(ref)
            if old is not None and old != image_id:
                lines.append(
                    f"The image {ref} already exists, renaming the old one with ID {old} "
                    "to empty string"
                )
            tags_before[ref] = image_id
            lines.append(f"Loaded image: {ref}")
        if not tags:
            lines.append(f"Loaded image ID: {image_id}")
    return lines


# -- saving ---------------------------------------------------------------------------------------


def _full_ref(ref: str) -> str:
    """``ds-base:1`` -> ``docker.io/library/ds-base:1`` (the containerd image name)."""
    first, _, rest = ref.partition("/")
    if not rest:
        return "docker.io/library/" + ref
    if "." in first or ":" in first or first == "localhost":
        return ref
    return "docker.io/" + ref


def _tar_split(log: EventLog, chain: str) -> tuple[bytes, ...]:
    split: tuple[bytes, ...] = ()
    for env in log.by_subject("l:" + chain):
        if env.type == "LayerRegistered":
            split = tuple(env.data.get("tar_split") or ())
    return split


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def save(
    source: StoreReader | DockerHost,
    refs: Sequence[str],
    out_path: str | os.PathLike[str],
    *,
    at: int | None = None,
) -> None:
    """``docker save -o OUT IMAGE...``: a Docker >= 25 archive (OCI layout + manifest.json).

    Images named by tag carry that tag; by id, none (as Docker does). Layers are
    written uncompressed, rebuilt from their recorded splits, so each blob's
    digest is its DiffID; the file appears only once complete.

    Raises:
        NoSuchImageError: a ref names no image.
        InvalidParameterError: a layer's tar was not recorded when it was registered.
    """
    if isinstance(source, DockerHost):
        state: Host = source.state()
        log = source.log
    else:
        state, log = source.host(at), source.log
    chosen: dict[str, tuple[Image, list[str]]] = {}
    for ref in refs:
        image = find_image(state, ref)
        tags = chosen.setdefault(image.id, (image, []))[1]
        with contextlib.suppress(ValueError):
            norm = normalize_image_ref(ref)
            if norm in image.tags and norm not in tags:
                tags.append(norm)
    splits: dict[str, tuple[bytes, ...]] = {}
    for image, _ in chosen.values():
        for chain, diff_id in zip(image.chain_ids, image.diff_ids, strict=True):
            if diff_id not in splits:
                split = _tar_split(log, chain)
                if not split:
                    raise InvalidParameterError(
                        f"cannot save layer {diff_id}: its tar was not recorded when it was "
                        "registered, so it cannot be written back with the same digest"
                    )
                splits[diff_id] = split

    out = os.fspath(out_path)
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed below)
        dir=os.path.dirname(os.path.abspath(out)) or ".", prefix=".dockstate-save-", delete=False
    )
    try:
        with tmp:
            _write_archive(tmp, log, chosen, splits)
        os.replace(tmp.name, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise


def _write_archive(
    out: IO[bytes],
    log: EventLog,
    chosen: dict[str, tuple[Image, list[str]]],
    splits: dict[str, tuple[bytes, ...]],
) -> None:
    tar = TarWriter(out)
    tar.add("blobs/", tarfile.DIRTYPE, mode=0o755)
    tar.add("blobs/sha256/", tarfile.DIRTYPE, mode=0o755)
    for diff_id, split in splits.items():
        size = split_size(log.get_blob, split)
        digest = _HashedPieces(iter_split(log.get_blob, split))
        tar.add(_blob_path(diff_id), tarfile.REGTYPE, mode=0o644, size=size, content=digest)
        if digest.digest != diff_id:
            raise InvalidParameterError(
                f"cannot save layer {diff_id}: the recorded tar rebuilds to {digest.digest}"
            )
    index: list[dict[str, Any]] = []
    legacy: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image, tags in chosen.values():
        config = log.read_blobs(image.config)
        tar.add(
            _blob_path(image.id), tarfile.REGTYPE, mode=0o644, size=len(config), content=[config]
        )
        layer_descs = []
        for diff_id in image.diff_ids:
            size = split_size(log.get_blob, splits[diff_id])
            layer_descs.append({"mediaType": MT_OCI_LAYER, "digest": diff_id, "size": size})
        manifest = _dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, "digest": image.id, "size": len(config)},
                "layers": layer_descs,
            }
        )
        manifest_digest = blobs.content_digest(manifest)
        tar.add(
            _blob_path(manifest_digest),
            tarfile.REGTYPE,
            mode=0o644,
            size=len(manifest),
            content=[manifest],
        )
        desc = {"mediaType": MT_OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
        if tags:
            for tag in tags:
                repo, _, version = tag.rpartition(":")
                index.append(
                    {
                        **desc,
                        "annotations": {
                            "io.containerd.image.name": _full_ref(tag),
                            "org.opencontainers.image.ref.name": version,
                        },
                    }
                )
                if image.diff_ids:
                    repositories.setdefault(repo, {})[version] = image.diff_ids[-1][7:]
        else:
            index.append(desc)
        legacy.append(
            {
                "Config": _blob_path(image.id),
                "RepoTags": tags or None,
                "Layers": [_blob_path(d) for d in image.diff_ids],
            }
        )
    files = [
        ("index.json", _dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index})),
        ("manifest.json", _dumps(legacy)),
        ("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"})),
    ]
    if repositories:
        files.append(("repositories", _dumps(repositories)))
    for name, data in files:
        tar.add(name, tarfile.REGTYPE, mode=0o644, size=len(data), content=[data])
    tar.close()


class _HashedPieces:
    """Pieces passed through while their sha256 is taken."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = pieces
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            self._hash.update(piece)
            yield piece

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


__all__ = ["STAGE_OVER", "InvalidArchiveError", "ProgressFn", "load", "save"]
