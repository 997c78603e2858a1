"""Wall time of the installed ``dockstate`` CLI: start-up, and reads on a big store.

(a) start-up: ``dockstate --help`` and ``dockstate ps`` on an empty store beside
    ``python -c "import lmdb, msgpack, structlog, transitions"`` (target <= 2x);
(b) big store: ``dockstate ps -a`` and ``dockstate inspect NAME`` on a store of
    ``--events`` events / ``--containers`` containers made by `DockerHost`
    commands with snapshots every 10,000 events (see ``_bigstore.py``), beside
    the same commands on a small store (target <= 3x). ``ps -a`` is compared
    with ``ps -a`` on an empty store; ``inspect NAME`` with ``inspect NAME`` on a
    store that holds only the image and that one container (on an empty store
    inspect is an error path).

Every command runs as a subprocess of the installed ``dockstate`` script (or
the venv's python), ``--repeat`` times, the commands alternating within each
repeat; figures are medians of wall time (and of the child's CPU time). The
subprocesses get a bytecode cache (``PYTHONPYCACHEPREFIX`` under the temp dir,
``PYTHONDONTWRITEBYTECODE`` dropped), as a package installed by pip has;
``--no-bytecode-cache`` runs them with the caller's environment instead.

Run: /work/venv/bin/python bench/cli.py [--quick] [--keep PATH] [--profile]
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bigstore
from _common import machine

STARTUP_TARGET = 2.0
BIG_TARGET = 3.0

BIN = Path(sys.executable).parent
DOCKSTATE = str(BIN / "dockstate")
BASELINE = [sys.executable, "-c", "import lmdb, msgpack, structlog, transitions"]


def child_env(bytecode_cache: bool, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKSTATE_")}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def run(cmd: list[str], env: dict[str, str], *, ok: bool = True) -> tuple[float, float, int]:
    """Wall and child CPU seconds of one run, and its stdout size."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if ok and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(proc.stdout)


def tiny_store(path: Path, name: str, env: dict[str, str]) -> None:
    """A store with the bench image and one container called ``name``, via the CLI's own path."""
    if path.exists():
        shutil.rmtree(path)
    code = (
        "import random, sys, time\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "import _bigstore\n"
        "from dockstate.core.commands import DockerHost\n"
        "from dockstate.core.names import RandomIds\n"
        "from dockstate.eventlog import LmdbEventLog\n"
        "log = LmdbEventLog(sys.argv[1], clock=time.time_ns)\n"
        "host = DockerHost(log, ids=RandomIds(random.Random(1)))\n"
        "_bigstore._register_image(host)\n"
        "host.create(_bigstore.IMAGE, name=sys.argv[3], command='/bin/busybox httpd -f', start=True)\n"
        "log.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(Path(__file__).parent), name],
        env=env,
        check=True,
    )


def measure(
    cmds: dict[str, list[str]], env: dict[str, str], repeat: int
) -> dict[str, list[tuple[float, float, int]]]:
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # warm-up: bytecode cache, page cache, store creation
        run(cmd, env)
    for r in range(repeat):
        line = []
        for name, cmd in cmds.items():
            res = run(cmd, env)
            results[name].append(res)
            line.append(f"{name} {res[0] * 1000:.0f}")
        print(f"  {r + 1:>2}/{repeat}  " + "  ".join(line) + "  (ms)", flush=True)
    return results


def report(
    results: dict[str, list[tuple[float, float, int]]],
    pairs: list[tuple[str, str, float]],
) -> bool:
    print(f"\n  {'command':<30} {'wall p50':>9} {'min':>7} {'max':>7} {'CPU p50':>9} {'stdout':>9}")
    for name, rs in results.items():
        walls = [r[0] for r in rs]
        cpus = [r[1] for r in rs]
        print(
            f"  {name:<30} {statistics.median(walls) * 1000:>7.0f}ms {min(walls) * 1000:>5.0f}ms"
            f" {max(walls) * 1000:>5.0f}ms {statistics.median(cpus) * 1000:>7.0f}ms"
            f" {rs[0][2]:>8,}B"
        )
    ok = True
    print()
    for mine, base, target in pairs:
        wm = statistics.median(r[0] for r in results[mine])
        wb = statistics.median(r[0] for r in results[base])
        cm = statistics.median(r[1] for r in results[mine])
        cb = statistics.median(r[1] for r in results[base])
        per_round = sorted(a[0] / b[0] for a, b in zip(results[mine], results[base], strict=True))
        met = wm / wb <= target
        ok &= met
        print(
            f"  {mine} / {base}: wall {wm / wb:.2f}x (rounds {per_round[0]:.2f}..{per_round[-1]:.2f}),"
            f" CPU {cm / cb:.2f}x   target <= {target}x: {'MET' if met else 'MISSED'}"
        )
    return ok


def profile(cmd: list[str], env: dict[str, str], out: Path) -> None:
    """cProfile one run of a dockstate command; print the top of it by cumulative time."""
    prof = out / "cli.prof"
    code = (
        "import cProfile, os, sys\n"
        "sys.argv = ['dockstate', *sys.argv[1:]]\n"
        "cProfile.run('from dockstate.tools.cli import main; main()', os.environ['PROF_OUT'])\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, *cmd[1:]],
        env={**env, "PROF_OUT": str(prof)},
        capture_output=True,
        check=False,
    )
    print(f"\ncProfile of: dockstate {' '.join(cmd[1:])}")
    pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the big store")
    parser.add_argument("--containers", type=int, default=10_000, help="containers created")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each command (median)")
    parser.add_argument(
        "--keep",
        default=None,
        help="big store to build once and reuse (default: <tmp>/dockstate-bench-big-<events>)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["startup", "big"], default=None)
    parser.add_argument("--no-bytecode-cache", action="store_true", help="caller's environment")
    parser.add_argument("--profile", action="store_true", help="cProfile the big-store reads")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.containers, args.repeat = 20_000, 200, 3

    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="dockstate-bench-cli-"))
    env = child_env(not args.no_bytecode_cache, Path(tempfile.gettempdir()) / "dockstate-bench")
    print(
        "bytecode cache: "
        + ("off (caller's environment)" if args.no_bytecode_cache else env["PYTHONPYCACHEPREFIX"])
    )
    ok = True
    try:
        empty = tmp / "empty"
        if args.only in (None, "startup"):
            print(f"\n(a) start-up, {args.repeat} alternating runs each")
            cmds = {
                "python -c 'import <4 deps>'": BASELINE,
                "dockstate --help": [DOCKSTATE, "--help"],
                "dockstate ps (empty store)": [DOCKSTATE, "--store", str(empty), "ps"],
            }
            names = list(cmds)
            results = measure(cmds, env, args.repeat)
            ok &= report(
                results,
                [(names[1], names[0], STARTUP_TARGET), (names[2], names[0], STARTUP_TARGET)],
            )
        if args.only in (None, "big"):
            keep = Path(
                args.keep
                or os.path.join(tempfile.gettempdir(), f"dockstate-bench-big-{args.events}")
            )
            big = _bigstore.open_or_build(keep, args.events, args.containers, args.seed)
            head, last_snap = _bigstore.head_and_last_snapshot(big)
            print(
                f"  store size {_bigstore.store_size(big) / 2**20:,.0f} MiB; head {head:,}, newest"
                f" snapshot {last_snap:,}: reads at the head fold {head - last_snap:,} events"
            )
            target = _bigstore.alive_name(big, args.containers // 2)
            tiny = tmp / "tiny"
            tiny_store(tiny, target, env)
            print(
                f"\n(b) reads on the big store ({args.events:,} events) and on small ones,"
                f" {args.repeat} alternating runs each; inspect {target}"
            )
            cmds = {
                "ps -a (empty store)": [DOCKSTATE, "--store", str(empty), "ps", "-a"],
                "ps -a (big store)": [DOCKSTATE, "--store", str(big), "ps", "-a"],
                "inspect (1-container store)": [DOCKSTATE, "--store", str(tiny), "inspect", target],
                "inspect (big store)": [DOCKSTATE, "--store", str(big), "inspect", target],
            }
            if last_snap:
                # for reference: the same read as of the newest snapshot (no tail to fold)
                cmds[f"ps -a --at {last_snap} (big)"] = [
                    DOCKSTATE, "--store", str(big), "ps", "-a", "--at", str(last_snap),
                ]  # fmt: skip
            results = measure(cmds, env, args.repeat)
            rows = results["ps -a (big store)"][0][2]
            print(f"  ps -a on the big store printed {rows:,} bytes")
            names = list(cmds)
            ok &= report(
                results, [(names[1], names[0], BIG_TARGET), (names[3], names[2], BIG_TARGET)]
            )
            if args.profile:
                profile(cmds["ps -a (big store)"], env, tmp)
                profile(cmds["inspect (big store)"], env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nall targets met" if ok else "\nsome target MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
