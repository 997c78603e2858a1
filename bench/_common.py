"""Helpers shared by the event-log benchmarks (not a benchmark itself).

The benchmarks compare dockstate's `LmdbEventLog` with the least a hand-written
store would do: plain `lmdb` puts of ``msgpack.packb(event dict)`` under u64
big-endian keys. The machine is shared and noisy, so every figure is the median
of several rounds in which the raw and the dockstate measurements alternate.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import lmdb
import msgpack

U64 = struct.Struct(">Q")

#: The event type the benchmarks record: a file written into a container.
EVENT_TYPE = "FileWritten"

#: One benchmark event: (container id, data dict, subject).
Event = tuple[str, dict[str, Any], str]


def container_ids(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct random 64-hex container ids."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(rng.randbytes(32).hex())
    return sorted(ids)


def event_for(i: int, cid: str, rng: random.Random) -> Event:
    """A FileWritten-like event: container id, path, size and one 32-byte digest."""
    data = {
        "container": cid,
        "path": f"/var/lib/app/data/{i % 997:03d}/file-{i:07d}.bin",
        "size": rng.randrange(1, 1 << 24),
        "digests": [rng.randbytes(32)],
    }
    return cid, data, "c:" + cid


def iter_events(count: int, subjects: int, seed: int) -> Iterator[Event]:
    """``count`` events about ``subjects`` distinct random containers (deterministic)."""
    rng = random.Random(seed)
    ids = container_ids(subjects, rng)
    for i in range(count):
        yield event_for(i, rng.choice(ids), rng)


def raw_record(event: Event) -> dict[str, Any]:
    """What a hand-written store keeps per event: type, time, payload and subjects."""
    _cid, data, subject = event
    return {"type": EVENT_TYPE, "ts": time.time_ns(), "data": data, "subjects": [subject]}


def raw_open(path: str, *, sync: bool = True) -> lmdb.Environment:
    """A plain LMDB environment with the same map size and sync settings as the log's."""
    return lmdb.open(path, map_size=1 << 36, sync=sync, metasync=sync)


def alternate(rounds: int, measures: dict[str, Callable[[int], float]]) -> dict[str, list[float]]:
    """Run each measure once per round, in the given order, and collect the rates."""
    results: dict[str, list[float]] = {name: [] for name in measures}
    for r in range(rounds):
        for name, measure in measures.items():
            rate = measure(r)
            results[name].append(rate)
            print(f"  round {r + 1}/{rounds}  {name:<28} {rate:>12,.0f} /s", flush=True)
    return results


def summarise(label: str, ours: list[float], raw: list[float], target: float) -> bool:
    """Print the medians and their ratio; True when the ratio meets ``target``."""
    mo, mr = statistics.median(ours), statistics.median(raw)
    ratio = mo / mr
    # Each round's two measurements ran back to back, under the same load.
    pairs = sorted(o / r for o, r in zip(ours, raw, strict=True))
    paired = statistics.median(pairs)
    met = ratio >= target
    print(f"{label}")
    print(f"  raw   median {mr:>12,.0f} /s   (min {min(raw):,.0f}, max {max(raw):,.0f})")
    print(f"  ours  median {mo:>12,.0f} /s   (min {min(ours):,.0f}, max {max(ours):,.0f})")
    print(
        f"  ratio of medians ours/raw = {ratio:.3f}x   target >= {target}x:"
        f" {'MET' if met else 'MISSED'}"
    )
    print(
        f"  per-round ratios {', '.join(f'{p:.2f}' for p in pairs)}"
        f" (median {paired:.2f}x: {'met' if paired >= target else 'missed'})"
    )
    return met


def machine() -> str:
    """A one-paragraph description of the machine, for the results file."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    date = subprocess.run(["date"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
        f"lmdb {lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()))}), "
        f"msgpack {'.'.join(map(str, msgpack.version))}, "
        f"{date}"
    )
