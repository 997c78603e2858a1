"""``dockstate demo``: the storage story, told on real commands in a fresh store."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.tools._cli import COMMAND, Dockstate, clean_env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dockstate, str]:
    """One run of ``dockstate demo`` with no --store (TMPDIR points into pytest's temp
    directory, so its fresh store lands there), and what it printed."""
    root = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [*COMMAND, "demo"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**clean_env(None), "TMPDIR": str(root)},
        timeout=120,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    m = re.search(r"^Store: (\S+) \(a fresh temporary store\)$", proc.stdout, re.M)
    assert m is not None, proc.stdout[:300]
    store = Path(m.group(1))
    assert store.parent == root
    return Dockstate(store, root), proc.stdout


def _section(out: str, heading: str) -> str:
    start = out.index(f"== {heading}")
    end = out.find("\n== ", start + 1)
    return out[start : end if end != -1 else len(out)]


def test_demo_runs_every_step_without_a_failure(demo: tuple[Dockstate, str]):
    """Every command the demo runs succeeds: no "(exit status N)" anywhere, and it ends verified."""
    ds, out = demo
    assert out.startswith("dockstate demo: Docker's storage model, recorded event by event.\n")
    assert f"Every command below runs as: dockstate --store {ds.store} ...\n" in out
    assert "(exit status" not in out
    assert re.search(r"\n\$ dockstate verify\nok: \d+ events, head [0-9a-f]{64}\n", out)


def test_demo_shows_shared_layers(demo: tuple[Dockstate, str]):
    """Loading the web image back: the base layers are already stored."""
    part = _section(demo[1], "1. Images")
    assert re.search(r"\n[0-9a-f]{12}: Already exists\n[0-9a-f]{12}: Already exists\n", part)
    assert "Loaded image: demo/web:1\n" in part


def test_demo_audit_shows_the_lost_file(demo: tuple[Dockstate, str]):
    """After web1 stops, the audit lists the notes it lost."""
    part = _section(demo[1], "2. A container's writable layer")
    audit = part[part.index("$ dockstate audit web1\n") :]
    assert re.search(
        r"\n    lost       /var/lib/web_data/notes\.txt  18B  written at seq \d+", audit
    )
    assert "policy stop: 2 file(s), 22B lost" in audit


def test_demo_volume_data_survives_and_the_bind_file_is_on_the_host(demo: tuple[Dockstate, str]):
    """The volume's data is read back by a new container; the bind write is on the host."""
    out = demo[1]
    volume = _section(out, "3. A named volume")
    assert "$ dockstate fs cat web3 /var/lib/web_data/orders.db\norder 1: 3 widgets" in volume
    assert re.search(r"\n-rw-r--r-- +18 +\S+ +orders\.db\n", volume)
    bind = _section(out, "4. A bind mount")
    assert re.search(r"\$ dockstate host ls /backup\n.*\n-rw-r--r-- +8 +\S+ +backup-1\.tar\n", bind)
    assert "$ dockstate host cat /backup/backup-1.tar\na backup" in bind


def test_demo_looks_back_in_time_and_leaves_a_store_that_verifies(demo: tuple[Dockstate, str]):
    """--at before the stop still reads the lost file; the store it leaves passes verify."""
    ds, out = demo
    part = _section(out, "5. Time travel")
    m = re.search(r"\$ dockstate fs cat web1 /var/lib/web_data/notes\.txt --at (\d+)\n(.*)\n", part)
    assert m is not None
    assert m.group(2).startswith("orders for tuesday")
    assert (
        ds.ok("fs", "cat", "web1", "/var/lib/web_data/notes.txt", "--at", m.group(1))
        == "orders for tuesday"
    )
    assert ds.ok("verify").startswith("ok: ")
