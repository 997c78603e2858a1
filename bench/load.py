"""image load throughput and memory beside ``tar -x`` + ``sha256sum`` of the same layer.

A generated layer of 20,000 files (about 500 MB, deterministic random
content) is packed as a legacy ``docker save`` archive. Each round:

- raw: ``tar -xf layer.tar -C <fresh dir>`` then ``sha256sum layer.tar`` (the
  work Docker itself must do to apply and check a layer);
- dockstate: ``dockstate.tools.imageio.load`` of the archive into a fresh,
  durable store, in a child process that reports its peak RSS
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``).

Both rates are in MB of layer tar per second; the figure is the median of the
rounds, which alternate. A last child loads with everything in one write
transaction (``stage_over`` above the layer size), to show what LMDB's dirty
pages cost in memory without staging.

Run: /work/venv/bin/python bench/load.py [--quick] [--rounds N] [--files N]
(``--files 40000`` makes a 1 GB layer: memory must not grow with it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

FILES = 20_000


def machine() -> str:
    """CPU count and model, Python and LMDB versions, for the results file."""
    import platform

    import lmdb

    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
        f"lmdb {lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()))})"
    )


TARGET_RATIO = 0.5
TARGET_RSS_MB = 300

CHILD = r"""
import json, random, resource, sys, time
from dockstate.core.commands import DockerHost
from dockstate.core.names import RandomIds
from dockstate.eventlog import LmdbEventLog
from dockstate.tools.imageio import load
archive, store, stage_over = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = LmdbEventLog(store, clock=time.time_ns)
host = DockerHost(log, ids=RandomIds(random.Random(0)))
t0 = time.perf_counter()
lines = load(host, archive, stage_over=stage_over)
elapsed = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
status = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open("/proc/self/status")
          if l.startswith(("RssAnon", "RssFile"))}
log.close()
print(json.dumps({"seconds": elapsed, "rss_mb": rss, "anon_mb": status.get("RssAnon", 0),
                  "file_mb": status.get("RssFile", 0), "lines": lines[-1:]}))
"""


def generate(root: Path, files: int, mean: int) -> tuple[Path, Path, int]:
    """layer.tar (files of random sizes around ``mean``) and a docker-save archive of it."""
    layer = root / "layer.tar"
    rng = random.Random(7)
    pool = rng.randbytes(8 << 20)
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as t:
        for d in range(100):
            info = tarfile.TarInfo(f"data/d{d:03d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1704067200
            t.addfile(info)
        for i in range(files):
            size = rng.randrange(1, 2 * mean)
            off = rng.randrange(len(pool) - size)
            info = tarfile.TarInfo(f"data/d{i % 100:03d}/f{i:05d}.bin")
            info.size, info.mode, info.mtime = size, 0o644, 1704067200
            # A per-file prefix keeps contents distinct (no accidental dedup).
            data = i.to_bytes(4, "big") + pool[off : off + size - 4]
            t.addfile(info, io.BytesIO(data))
    h = hashlib.sha256()
    with open(layer, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    diff_id = "sha256:" + h.hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        separators=(",", ":"),
    ).encode()
    cid = hashlib.sha256(config).hexdigest()
    archive = root / "archive.tar"
    with tarfile.open(archive, "w") as t:
        t.add(layer, arcname="l1/layer.tar")
        info = tarfile.TarInfo(f"{cid}.json")
        info.size = len(config)
        t.addfile(info, io.BytesIO(config))
        manifest = json.dumps(
            [{"Config": f"{cid}.json", "RepoTags": ["bench:1"], "Layers": ["l1/layer.tar"]}]
        ).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        t.addfile(info, io.BytesIO(manifest))
    return layer, archive, layer.stat().st_size


def raw_round(layer: Path, work: Path) -> float:
    dest = work / "x"
    dest.mkdir()
    t0 = time.perf_counter()
    subprocess.run(["tar", "-xf", str(layer), "-C", str(dest)], check=True)
    subprocess.run(["sha256sum", str(layer)], check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(dest)
    return elapsed


def ours_round(archive: Path, work: Path, stage_over: int) -> dict[str, float]:
    store = work / "store"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(archive), str(store), str(stage_over)],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(store)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 MB, 2,000 files, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=FILES, help="files in the layer (~25 KB each)")
    args = parser.parse_args()
    files, mean = (2_000, 25_000) if args.quick else (args.files, 25_000)
    rounds = 1 if args.quick else args.rounds
    work = Path(tempfile.mkdtemp(prefix="dockstate-bench-load-"))
    try:
        print(f"generating {files} files ...", flush=True)
        layer, archive, size = generate(work, files, mean)
        mb = size / 1e6
        print(f"layer tar: {mb:,.1f} MB, {files} files", flush=True)
        raw_rates, our_rates, rss = [], [], []
        for r in range(rounds):
            t = raw_round(layer, work)
            raw_rates.append(mb / t)
            print(
                f"  round {r + 1}/{rounds}  tar -x + sha256sum   {t:6.2f} s  {mb / t:8.1f} MB/s",
                flush=True,
            )
            res = ours_round(archive, work, stage_over=128 << 20)
            our_rates.append(mb / res["seconds"])
            rss.append(res["rss_mb"])
            print(
                f"  round {r + 1}/{rounds}  dockstate load       {res['seconds']:6.2f} s  "
                f"{mb / res['seconds']:8.1f} MB/s  peak RSS {res['rss_mb']:.0f} MB "
                f"(before closing the store: anon {res['anon_mb']:.0f} MB, file-backed {res['file_mb']:.0f} MB)",
                flush=True,
            )
        one_tx = ours_round(archive, work, stage_over=1 << 62)
        print(
            f"  one transaction (no staging)  {one_tx['seconds']:6.2f} s  "
            f"peak RSS {one_tx['rss_mb']:.0f} MB (before closing the store: anon {one_tx['anon_mb']:.0f} MB, "
            f"file-backed {one_tx['file_mb']:.0f} MB)",
            flush=True,
        )
        ratio = statistics.median(our_rates) / statistics.median(raw_rates)
        peak = max(rss)
        print(f"machine: {machine()}")
        print(
            f"load: raw median {statistics.median(raw_rates):.1f} MB/s, dockstate median "
            f"{statistics.median(our_rates):.1f} MB/s, ratio {ratio:.2f}x "
            f"(target >= {TARGET_RATIO}x: {'MET' if ratio >= TARGET_RATIO else 'MISSED'}); "
            f"peak RSS {peak:.0f} MB (target <= {TARGET_RSS_MB} MB: "
            f"{'MET' if peak <= TARGET_RSS_MB else 'MISSED'}); one-transaction RSS "
            f"{one_tx['rss_mb']:.0f} MB"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
