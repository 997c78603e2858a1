"""Builders of layer tars, image configs and archives for the image load/save/build tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zstandard

from dockstate.core.commands import DockerHost
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog

#: 2024-01-01T00:00:00Z
MTIME = 1704067200

#: (name, spec): spec is bytes (a file), None (a dir), ("sym", target), ("link", target),
#: or a TarInfo to add as is (with optional bytes).
Member = tuple[str, Any]


def layer_tar(members: Sequence[Member], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=fmt) as t:
        for name, spec in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            if spec is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif isinstance(spec, tuple) and spec[0] == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, spec[1], 0o777
                t.addfile(ti)
            elif isinstance(spec, tuple) and spec[0] == "link":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, spec[1], 0o644
                t.addfile(ti)
            elif isinstance(spec, tuple) and spec[0] == "info":
                info, data = spec[1], spec[2]
                info.name = name
                t.addfile(info, io.BytesIO(data) if data is not None else None)
            else:
                ti.size, ti.mode = len(spec), 0o644
                t.addfile(ti, io.BytesIO(spec))
    return bio.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(diff_ids: Sequence[str], **extra: Any) -> bytes:
    cfg = {
        "architecture": extra.pop("architecture", "amd64"),
        "os": "linux",
        "config": extra.pop("config", {"Cmd": ["/bin/sh"]}),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))],
        **extra,
    }
    return json.dumps(cfg, separators=(",", ":")).encode()


def add_file(t: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
    t.addfile(ti, io.BytesIO(data))


def legacy_archive(
    path: Path,
    images: Sequence[tuple[Sequence[bytes], Sequence[str]]],
    *,
    diff_ids: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """A docker-save (<= 24) archive of images given as (layer tars, tags); returns image ids."""
    ids = []
    manifest = []
    with tarfile.open(path, "w") as t:
        written: set[str] = set()
        for k, (layers, tags) in enumerate(images):
            dids = list(diff_ids[k]) if diff_ids else [digest(x) for x in layers]
            cfg = config(dids)
            cid = hashlib.sha256(cfg).hexdigest()
            ids.append("sha256:" + cid)
            names = []
            for layer in layers:
                v1 = hashlib.sha256(layer).hexdigest()
                if v1 not in written:
                    add_file(t, f"{v1}/layer.tar", layer)
                    written.add(v1)
                names.append(f"{v1}/layer.tar")
            add_file(t, f"{cid}.json", cfg)
            manifest.append({"Config": f"{cid}.json", "RepoTags": list(tags), "Layers": names})
        add_file(t, "manifest.json", json.dumps(manifest).encode())
    return ids


def compress(data: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(data, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        return (
            zstandard.ZstdCompressor().compress(data),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        )
    return data, "application/vnd.oci.image.layer.v1.tar"


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    d = digest(data)
    p = root / "blobs" / "sha256" / d[7:]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return {"digest": d, "size": len(data)}


def oci_manifest(
    root: Path, layers: Sequence[bytes], how: str = "gzip", *, arch: str = "amd64"
) -> tuple[dict[str, Any], str]:
    """Blobs of one image in an OCI layout; returns its manifest descriptor and image id."""
    descs = []
    for layer in layers:
        data, mt = compress(layer, how)
        descs.append({"mediaType": mt, **_blob(root, data)})
    cfg = config([digest(x) for x in layers], architecture=arch)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(root, cfg)},
        "layers": descs,
    }
    raw = json.dumps(manifest).encode()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(root, raw)}
    desc["platform"] = {"os": "linux", "architecture": arch}
    return desc, digest(cfg)


def oci_layout(root: Path, manifests: Sequence[dict[str, Any]]) -> None:
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": list(manifests),
    }
    (root / "index.json").write_text(json.dumps(index))


def nested_index(root: Path, manifests: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": list(manifests),
    }
    raw = json.dumps(index).encode()
    return {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        **_blob(root, raw),
        "annotations": {"io.containerd.image.name": name},
    }


def tar_dir(src: Path, out: Path) -> None:
    with tarfile.open(out, "w") as t:
        for dirpath, _dirs, files in os.walk(src):
            for f in sorted(files):
                full = Path(dirpath) / f
                t.add(full, arcname=str(full.relative_to(src)))


def new_host(path: Path) -> DockerHost:
    log = LmdbEventLog(path, clock=time.time_ns, durable=False)
    return DockerHost(log, ids=RandomIds(random.Random(0)))


def blob_count(host: DockerHost) -> int:
    env = host.log.raw_env()  # type: ignore[attr-defined]
    db = env.open_db(b"blobs", create=False)
    with env.begin() as txn:
        return int(txn.stat(db)["entries"])


def tree(host: DockerHost, image: str) -> dict[str, Any]:
    from dockstate.core.refs import find_image

    st = host.state()
    img = find_image(st, image)
    return st.layer_cache.flattened(img.top_chain, st.layers)


def content(host: DockerHost, image: str, path: str) -> bytes:
    entry = tree(host, image)[path]
    return host.log.read_blobs(entry.chunks)
