"""image load / image save: Docker's archives, identities, whiteouts, safety and round trips."""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import io
import json
import mmap
import random
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from dockstate.core.errors import DockstateError, NoSuchImageError
from dockstate.core.fs import DIR, FILE, SYMLINK
from dockstate.core.names import chain_ids
from dockstate.eventlog import content_digest
from dockstate.tools import imageio
from dockstate.tools.imageio import InvalidArchiveError, load, save
from tests.tools._images import (
    MTIME,
    blob_count,
    content,
    digest,
    layer_tar,
    legacy_archive,
    nested_index,
    new_host,
    oci_layout,
    oci_manifest,
    tar_dir,
    tree,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "docker"
ARCHIVES = FIXTURES / "archives"

BASE = layer_tar(
    [
        ("etc/", None),
        ("etc/base.txt", b"base v1\n"),
        ("srv/", None),
        ("srv/data/", None),
        ("srv/data/a.txt", b"alpha\n"),
        ("srv/data/b.txt", b"bravo\n"),
    ]
)


@pytest.fixture
def host(tmp_path: Path):
    h = new_host(tmp_path / "store")
    yield h
    h.log.close()


def _head(host) -> int:
    return int(host.log.head().seq)


# -- the real docker save fixtures ------------------------------------------------------------


def test_real_legacy_archive_loads_with_dockers_ids(host) -> None:
    """A docker save of Docker 20.10 loads with exactly the Ids and RootFS.Layers Docker showed."""
    lines = load(host, ARCHIVES / "save-both.tar")
    inspect = json.loads((FIXTURES / "images-inspect.json").read_text())
    st = host.state()
    for want in inspect:
        image = st.images[want["Id"]]
        assert list(image.diff_ids) == want["RootFS"]["Layers"]
        assert image.tags == want["RepoTags"]
        assert list(image.chain_ids) == chain_ids(want["RootFS"]["Layers"])
    assert lines == [
        "addf2b708850: Loading layer [==================================================>]  9.728kB/9.728kB",
        "Loaded image: ds-base:1",
        "addf2b708850: Already exists",
        "b608ca85a767: Loading layer [==================================================>]   2.56kB/2.56kB",
        "d7599120af59: Loading layer [==================================================>]  3.072kB/3.072kB",
        "Loaded image: ds-child:1",
    ]
    # docker's layerdb "size" of the base layer is 62 (regular-file bytes).
    assert st.layers[want["RootFS"]["Layers"][0]].size == 62


def test_real_whiteout_archive_gives_the_filesystem_docker_showed(host) -> None:
    """The docker-commit layer's .wh. files and opaque dir hide what Docker hid."""
    load(host, ARCHIVES / "save-whiteout.tar")
    want = json.loads((FIXTURES / "images-inspect-whiteout.json").read_text())[0]
    image = host.state().images[want["Id"]]
    assert list(image.diff_ids) == want["RootFS"]["Layers"]
    files = {p for p, e in tree(host, "ds-wh:1").items() if not p.startswith("/tools")}
    # docker run ... find / (minus the init layer's /etc/hosts etc. and the /tools bind).
    assert files == {
        "/etc",
        "/srv",
        "/srv/data",
        "/srv/data/a.txt",
        "/srv/old",
        "/srv/old/fresh.txt",
        "/srv/new.txt",
    }
    assert content(host, "ds-wh:1", "/srv/data/a.txt") == b"alpha v2\n"


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("a-file-then-wh", 'failed to mknod("/srv/data/b.txt", S_IFCHR, 0): file exists'),
        ("c-new-file-then-wh", 'failed to mknod("/srv/data/c.txt", S_IFCHR, 0): file exists'),
        ("e-bad-wh-empty", 'invalid whiteout entry "srv/.wh."'),
    ],
)
def test_same_layer_file_then_whiteout_is_refused_as_docker_does(host, case, error) -> None:
    """A whiteout of a path its own layer wrote fails the load (overlay2's mknod EEXIST)."""
    with pytest.raises(DockstateError) as info:
        load(host, ARCHIVES / "whiteout-cases" / f"case-{case}.tar")
    assert str(info.value) == f"Error processing tar file(exit status 1): {error}"
    assert _head(host) == 0
    assert blob_count(host) == 0


def test_whiteout_then_file_keeps_the_new_file(host) -> None:
    """.wh.b.txt before b.txt in one layer: the new b.txt is visible (observed on 20.10)."""
    load(host, ARCHIVES / "whiteout-cases" / "case-b-wh-then-file.tar")
    t = tree(host, "ds-wht:b-wh-then-file")
    assert content(host, "ds-wht:b-wh-then-file", "/srv/data/b.txt") == b"same-layer b\n"
    assert {"/srv/old/o1.txt", "/srv/old/o2.txt", "/srv/data/a.txt"} <= set(t)


def test_opaque_marker_after_a_new_sibling_keeps_the_sibling(host) -> None:
    """The opaque marker hides lower children whatever its position (observed on 20.10)."""
    load(host, ARCHIVES / "whiteout-cases" / "case-d-child-then-opq.tar")
    t = tree(host, "ds-wht:d-child-then-opq")
    assert sorted(p for p in t if p.startswith("/srv/old")) == ["/srv/old", "/srv/old/n.txt"]
    assert "/srv/data/b.txt" in t


# -- identities and sharing ---------------------------------------------------------------------


def test_published_chain_id_and_image_id_vectors() -> None:
    """docker-semantics.md 1.2-1.3: image-spec, oci-systemd-generator and moby's store_test."""
    assert chain_ids(["sha256:a", "sha256:b", "sha256:c"]) == [
        "sha256:a",
        "sha256:970a948bffa8de94d6e22d747ba8c95030e6e546909f98f54e99a13005e173a8",
        "sha256:dee159b33409cefa3f6eda71539f006014283e9d9130c18a1dea7bd8a33c9b1b",
    ]
    real = chain_ids(
        [
            "sha256:8b2564fc821995bf961877c06e676591297178a4438293ec1c2e20f66855d3a8",
            "sha256:ecf239b31bd1723014debab23dd82b3b4b87114e3254370c366f7f712fb9b075",
            "sha256:eab89ad04ba05c973e3fb95f9b10a2875a18779d9977743c779c8238aa3fd742",
        ]
    )
    assert real[1] == "sha256:888ad5c8dbef3450399e600298ade969489529a44204ac761a76b7ff494767e6"
    assert real[2] == "sha256:26ab43e7d8f84043e608d1be92d9918a8aa6860489b6f221f29bc49d0081c3c3"
    cfg = b'{"comment": "abc", "rootfs": {"type": "layers", "diff_ids": ["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"]}}'
    assert (
        content_digest(cfg)
        == "sha256:8d25a9c45df515f9d0fe8e4a6b1c64dd3b965a84790ddbcc7954bb9bc89eb993"
    )


def test_empty_layer_has_dockers_empty_diff_id(host, tmp_path) -> None:
    """An empty tar (1024 NUL bytes) loads with DigestSHA256EmptyTar."""
    empty = b"\0" * 1024
    legacy_archive(tmp_path / "a.tar", [([empty], ["e:1"])])
    load(host, tmp_path / "a.tar")
    assert host.state().images[next(iter(host.state().images))].diff_ids == (
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
    )


def test_loading_the_same_archive_twice_stores_nothing_new(host) -> None:
    """A second load finds every layer and the image: no event, no blob."""
    load(host, ARCHIVES / "save-both.tar")
    head, count = _head(host), blob_count(host)
    lines = load(host, ARCHIVES / "save-both.tar")
    assert _head(host) == head
    assert blob_count(host) == count
    assert lines[0] == "addf2b708850: Already exists"
    assert "Loaded image: ds-child:1" in lines


def test_two_images_sharing_a_base_layer_store_it_once(host, tmp_path) -> None:
    """Separate archives with the same base layer: one LayerRegistered for it."""
    top1 = layer_tar([("one.txt", b"1\n")])
    top2 = layer_tar([("two.txt", b"2\n")])
    legacy_archive(tmp_path / "1.tar", [([BASE, top1], ["one:1"])])
    legacy_archive(tmp_path / "2.tar", [([BASE, top2], ["two:1"])])
    load(host, tmp_path / "1.tar")
    lines = load(host, tmp_path / "2.tar")
    assert lines[0] == f"{digest(BASE)[7:19]}: Already exists"
    registered = [e for e in host.log.read() if e.type == "LayerRegistered"]
    assert [e.data["diff_id"] for e in registered].count(digest(BASE)) == 1
    assert len(registered) == 3


def test_retagging_says_the_old_image_is_renamed(host, tmp_path) -> None:
    """Loading a tag that points at another image prints Docker's renaming line."""
    legacy_archive(tmp_path / "1.tar", [([BASE], ["app:1"])])
    old = load(host, tmp_path / "1.tar")
    assert old[-1] == "Loaded image: app:1"
    old_id = next(iter(host.state().images))
    legacy_archive(tmp_path / "2.tar", [([BASE, layer_tar([("x", b"x")])], ["app:1"])])
    lines = load(host, tmp_path / "2.tar")
    assert lines[-2] == (
        f"The image app:1 already exists, renaming the old one with ID {old_id} to empty string"
    )


def test_untagged_image_prints_its_id(host, tmp_path) -> None:
    """No RepoTags: ``Loaded image ID: sha256:...``."""
    (image_id,) = legacy_archive(tmp_path / "a.tar", [([BASE], [])])
    assert load(host, tmp_path / "a.tar")[-1] == f"Loaded image ID: {image_id}"


# -- OCI layouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["gzip", "zstd", "plain"])
def test_oci_layout_directory_with_compressed_layers(host, tmp_path, how) -> None:
    """index.json -> manifest -> config + layers, for each layer media type."""
    top = layer_tar([("srv/data/.wh.b.txt", b""), ("srv/new.txt", b"new\n")])
    desc, image_id = oci_manifest(tmp_path / "oci", [BASE, top], how)
    desc["annotations"] = {"io.containerd.image.name": "docker.io/library/oci:1"}
    oci_layout(tmp_path / "oci", [desc])
    lines = load(host, tmp_path / "oci")
    assert lines[-1] == "Loaded image: oci:1"
    image = host.state().images[image_id]
    assert image.diff_ids == (digest(BASE), digest(top))
    t = tree(host, "oci:1")
    assert "/srv/data/b.txt" not in t
    assert content(host, "oci:1", "/srv/new.txt") == b"new\n"


def test_oci_layout_as_a_tar(host, tmp_path) -> None:
    """The same layout tarred up (an oci-archive) loads too; a bare tag names nothing."""
    from dockstate.tools.format import human_size

    desc, image_id = oci_manifest(tmp_path / "oci", [BASE], "zstd")
    desc["annotations"] = {"org.opencontainers.image.ref.name": "1"}
    oci_layout(tmp_path / "oci", [desc])
    tar_dir(tmp_path / "oci", tmp_path / "oci.tar")
    manifest = json.loads((tmp_path / "oci/blobs/sha256" / desc["digest"][7:]).read_bytes())
    size = human_size(manifest["layers"][0]["size"])
    assert load(host, tmp_path / "oci.tar") == [
        f"{digest(BASE)[7:19]}: Loading layer [{'=' * 50}>] {size:>8}/{size}",
        f"Loaded image ID: {image_id}",
    ]


def test_nested_index_picks_linux_amd64_or_the_requested_platform(tmp_path) -> None:
    """A multi-platform index: amd64 by default, ``platform`` when given, error if absent."""
    root = tmp_path / "oci"
    arm_top = layer_tar([("arch", b"arm64\n")])
    amd_top = layer_tar([("arch", b"amd64\n")])
    arm, arm_id = oci_manifest(root, [BASE, arm_top], arch="arm64")
    amd, amd_id = oci_manifest(root, [BASE, amd_top], arch="amd64")
    oci_layout(root, [nested_index(root, [arm, amd], "docker.io/library/multi:1")])
    h1 = new_host(tmp_path / "s1")
    load(h1, root)
    assert list(h1.state().images) == [amd_id]
    h2 = new_host(tmp_path / "s2")
    load(h2, root, platform="linux/arm64")
    assert list(h2.state().images) == [arm_id]
    assert content(h2, "multi:1", "/arch") == b"arm64\n"
    with pytest.raises(InvalidArchiveError, match="no match for platform linux/s390x"):
        load(h2, root, platform="linux/s390x")


def test_gzip_compressed_archive(host, tmp_path) -> None:
    """docker load -i img.tar.gz: the archive itself may be compressed."""
    legacy_archive(tmp_path / "a.tar", [([BASE], ["gz:1"])])
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress((tmp_path / "a.tar").read_bytes()))
    assert load(host, tmp_path / "a.tar.gz")[-1] == "Loaded image: gz:1"


# -- members ------------------------------------------------------------------------------------------


def test_links_modes_owners_and_mtimes(host, tmp_path) -> None:
    """Symlinks, hardlinks (sharing content), modes, uid/gid and PAX sub-second mtimes."""
    info = tarfile.TarInfo()
    info.size, info.mode, info.uid, info.gid = 5, 0o4755, 1000, 1001
    info.mtime = MTIME
    info.pax_headers = {"mtime": "1704067200.123456789"}
    top = layer_tar(
        [
            ("bin/", None),
            ("bin/tool", ("info", info, b"tool\n")),
            ("bin/alias", ("link", "bin/tool")),
            ("bin/sh", ("sym", "/bin/busybox")),
            ("up", ("sym", "../../../etc/passwd")),
        ]
    )
    legacy_archive(tmp_path / "a.tar", [([BASE, top], ["links:1"])])
    load(host, tmp_path / "a.tar")
    t = tree(host, "links:1")
    tool = t["/bin/tool"]
    assert (tool.kind, tool.mode, tool.uid, tool.gid) == (FILE, 0o4755, 1000, 1001)
    assert tool.mtime == 1704067200_123456789
    assert t["/bin/alias"].chunks == tool.chunks
    assert t["/bin/alias"].target == "/bin/tool"
    assert (t["/bin/sh"].kind, t["/bin/sh"].target) == (SYMLINK, "/bin/busybox")
    # Docker 29 keeps symlink targets verbatim; nothing here follows them.
    assert t["/up"].target == "../../../etc/passwd"
    # The layer's size counts the hardlinked content once.
    layer = host.state().layers[host.state().images[next(iter(host.state().images))].chain_ids[-1]]
    assert layer.size == 5


def test_absolute_names_are_re_rooted_and_writes_through_a_link_stay_inside(host, tmp_path) -> None:
    """/abs names land under the root; link/x with link -> /etc lands at /etc/x."""
    top = layer_tar([("/abs/file", b"a"), ("lnk", ("sym", "/etc")), ("lnk/x", b"x")])
    legacy_archive(tmp_path / "a.tar", [([BASE, top], ["r:1"])])
    load(host, tmp_path / "a.tar")
    t = tree(host, "r:1")
    assert t["/abs/file"].kind == FILE
    assert t["/etc/x"].kind == FILE
    assert "/lnk/x" not in t
    assert t["/abs"].kind == DIR


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../evil", b"x")], 'invalid entry name "../evil"'),
        ([("a/../../evil", b"x")], 'invalid entry name "a/../../evil"'),
        ([("f", b"x"), ("g", ("link", "../../f"))], 'invalid hardlink target "../../f"'),
        ([("g", ("link", "missing"))], "link /missing /g: no such file or directory"),
    ],
)
def test_hostile_entries_are_refused_and_nothing_is_appended(
    host, tmp_path, members, message
) -> None:
    """Names and hardlinks that climb out of the root refuse the whole load."""
    legacy_archive(tmp_path / "a.tar", [([BASE, layer_tar(members)], ["bad:1"])])
    with pytest.raises(DockstateError) as info:
        load(host, tmp_path / "a.tar")
    assert str(info.value) == f"Error processing tar file(exit status 1): {message}"
    assert _head(host) == 0
    assert blob_count(host) == 0


# -- refusals -----------------------------------------------------------------------------------------


def test_diff_id_mismatch_refuses_the_load(host, tmp_path) -> None:
    """A layer whose sha256 is not the config's diff_id: one-line error, nothing appended."""
    wrong = "sha256:" + "0" * 64
    legacy_archive(tmp_path / "a.tar", [([BASE], ["bad:1"])], diff_ids=[[wrong]])
    with pytest.raises(InvalidArchiveError) as info:
        load(host, tmp_path / "a.tar")
    assert (
        str(info.value) == f'invalid diffID for layer 0: expected "{wrong}", got "{digest(BASE)}"'
    )
    assert "\n" not in str(info.value)
    assert _head(host) == 0
    assert blob_count(host) == 0


def test_a_bad_layer_in_a_later_image_appends_nothing_for_the_earlier_ones(host, tmp_path) -> None:
    """All new layers of an archive are read in one transaction."""
    top = layer_tar([("x", b"x")])
    wrong = "sha256:" + "1" * 64
    legacy_archive(
        tmp_path / "a.tar",
        [([BASE], ["ok:1"]), ([BASE, top], ["bad:1"])],
        diff_ids=[[digest(BASE)], [digest(BASE), wrong]],
    )
    with pytest.raises(InvalidArchiveError, match="invalid diffID for layer 1"):
        load(host, tmp_path / "a.tar")
    assert _head(host) == 0


def test_staged_load_of_a_bad_layer_appends_no_event(host, tmp_path) -> None:
    """Above the staging threshold chunks commit early, but a refused load records no event."""
    wrong = "sha256:" + "0" * 64
    legacy_archive(tmp_path / "a.tar", [([BASE], ["bad:1"])], diff_ids=[[wrong]])
    with pytest.raises(InvalidArchiveError):
        load(host, tmp_path / "a.tar", stage_over=0)
    assert _head(host) == 0
    legacy_archive(tmp_path / "b.tar", [([BASE], ["good:1"])])
    assert load(host, tmp_path / "b.tar", stage_over=0)[-1] == "Loaded image: good:1"
    assert content(host, "good:1", "/srv/data/a.txt") == b"alpha\n"


def _data_mdb_rss_kb(host) -> int:
    """Rss of this process's mappings of the host's store file, from /proc/self/smaps."""
    target = str(Path(host.log.path).resolve() / "data.mdb")
    total, inside = 0, False
    with open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):
                inside = fields[-1] == target
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_staged_load_in_many_batches_dedups_and_round_trips(host, tmp_path, monkeypatch) -> None:
    """Staged in small batches, letting go of the store's map between chunks, a load stores
    the same chunks as one transaction does, each distinct one once, and saves back intact."""
    rng = random.Random(5)
    shared = rng.randbytes(40_000)
    files = [(f"d/f{i:02d}", rng.randbytes(rng.randrange(1, 60_000))) for i in range(30)]
    files += [(f"d/same{i}", shared) for i in range(5)] + [("big", rng.randbytes(2_600_000))]
    layer = layer_tar([("d/", None), *files])
    legacy_archive(tmp_path / "a.tar", [([BASE, layer], ["staged:1"])])
    monkeypatch.setattr(imageio, "STAGE_BATCH", 100_000)
    monkeypatch.setattr(imageio, "LET_GO_EVERY", 3)
    let_go: list[list[tuple[int, int]]] = []
    real_let_go = imageio._StoreMap.let_go

    def counted(self: imageio._StoreMap, ranges: list[tuple[int, int]]) -> None:
        let_go.append(ranges)
        real_let_go(self, ranges)

    monkeypatch.setattr(imageio._StoreMap, "let_go", counted)

    load(host, tmp_path / "a.tar", stage_over=0)
    whole = new_host(tmp_path / "whole")
    load(whole, tmp_path / "a.tar")

    if sys.platform.startswith("linux"):
        assert len(let_go) >= 15  # every 3 chunks and at the end of each batch
        assert all(let_go)  # the map was found each time
    assert blob_count(host) == blob_count(whole)
    assert tree(host, "staged:1") == tree(whole, "staged:1")
    for name, data in files:
        assert content(host, "staged:1", "/" + name) == data
    save(host, ["staged:1"], tmp_path / "out.tar")
    fresh = new_host(tmp_path / "fresh")
    load(fresh, tmp_path / "out.tar", stage_over=0)
    assert fresh.state().tags["staged:1"] == host.state().tags["staged:1"]
    whole.log.close()
    fresh.log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/smaps")
def test_letting_go_of_the_store_map_unmaps_its_pages_and_keeps_the_data(host) -> None:
    """MADV_DONTNEED on LMDB's shared map drops the pages from the process, not from the file."""
    data = random.Random(6).randbytes(8 << 20)
    digests = host.log.write(lambda tx: tx.put_blob(data))
    assert host.log.read_blobs(digests) == data  # read through the map
    assert _data_mdb_rss_kb(host) >= 4 << 10
    store_map = imageio._StoreMap.of(host.log)
    assert store_map is not None
    host.log.write(lambda tx: store_map.let_go(store_map.find()))
    assert _data_mdb_rss_kb(host) < 1 << 10
    assert host.log.read_blobs(digests) == data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/maps")
def test_letting_go_leaves_alone_a_range_that_is_not_exactly_the_store_map(host) -> None:
    """MADV_DONTNEED would zero private memory: only the store's own mapping is ever advised."""
    store_map = imageio._StoreMap.of(host.log)
    assert store_map is not None
    [(start, end)] = host.log.write(lambda tx: store_map.find())
    private = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    private.write(b"x" * (1 << 20))
    address = ctypes.addressof(ctypes.c_char.from_buffer(private))
    store_map.let_go([(address, address + (1 << 20)), (start, end + 4096)])
    assert private[:] == b"x" * (1 << 20)
    private.close()


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_archive_is_refused(host, tmp_path, cut) -> None:
    """A tar cut short anywhere is refused with a clear error and appends nothing."""
    big = layer_tar([(f"f{i}", bytes([i]) * 3000) for i in range(20)])
    legacy_archive(tmp_path / "a.tar", [([big], ["t:1"])])
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InvalidArchiveError) as info:
        load(host, tmp_path / "cut.tar")
    assert "\n" not in str(info.value)
    assert _head(host) == 0


def test_truncated_compressed_layer_is_refused(host, tmp_path) -> None:
    """A gzip layer cut short inside an OCI layout."""
    desc, _ = oci_manifest(tmp_path / "oci", [BASE], "gzip")
    oci_layout(tmp_path / "oci", [desc])
    manifest = json.loads((tmp_path / "oci/blobs/sha256" / desc["digest"][7:]).read_bytes())
    blob = tmp_path / "oci/blobs/sha256" / manifest["layers"][0]["digest"][7:]
    blob.write_bytes(blob.read_bytes()[:-20])
    with pytest.raises(InvalidArchiveError, match="invalid archive: layer blobs/sha256/"):
        load(host, tmp_path / "oci")
    assert _head(host) == 0


def test_missing_manifest_and_layer_count_mismatch(host, tmp_path) -> None:
    """Docker's words for an archive without manifest.json and for a Layers/diff_ids mismatch."""
    with tarfile.open(tmp_path / "empty.tar", "w") as t:
        info = tarfile.TarInfo("repositories")
        t.addfile(info)
    with pytest.raises(InvalidArchiveError, match=r"does not contain a manifest\.json"):
        load(host, tmp_path / "empty.tar")
    legacy_archive(tmp_path / "a.tar", [([BASE], ["m:1"])], diff_ids=[[digest(BASE)] * 2])
    with pytest.raises(
        InvalidArchiveError, match="invalid manifest, layers length mismatch: expected 2, got 1"
    ):
        load(host, tmp_path / "a.tar")


def test_progress_is_reported_per_layer(host, tmp_path) -> None:
    """The progress callable sees each new layer read up to its size."""
    legacy_archive(tmp_path / "a.tar", [([BASE], ["p:1"])])
    seen: list[tuple[str, int, int]] = []
    load(host, tmp_path / "a.tar", progress=lambda *a: seen.append(a))
    assert seen[-1] == (digest(BASE)[7:19], len(BASE), len(BASE))


# -- save -----------------------------------------------------------------------------------------------


def test_save_then_load_into_a_fresh_store_keeps_every_id(host, tmp_path) -> None:
    """image save writes a Docker >= 25 archive that loads back with the same ids and files."""
    load(host, ARCHIVES / "save-whiteout.tar")
    load(host, ARCHIVES / "save-both.tar")
    out = tmp_path / "out.tar"
    save(host, ["ds-wh:1", "ds-base:1"], out)
    fresh = new_host(tmp_path / "fresh")
    lines = load(fresh, out)
    assert lines[-1] == "Loaded image: ds-base:1"
    before, after = host.state(), fresh.state()
    for ref in ("ds-wh:1", "ds-base:1"):
        image_id = before.tags[ref]
        assert after.tags[ref] == image_id
        assert after.images[image_id].diff_ids == before.images[image_id].diff_ids
        assert after.images[image_id].chain_ids == before.images[image_id].chain_ids
        assert tree(fresh, ref) == tree(host, ref)
    assert "ds-child:1" not in after.tags


def test_saved_archive_is_an_oci_layout(host, tmp_path) -> None:
    """oci-layout, index.json annotations, blobs named by digest, uncompressed layers."""
    load(host, ARCHIVES / "save-both.tar")
    out = tmp_path / "out.tar"
    save(host, ["ds-child:1"], out)
    with tarfile.open(out) as t:
        names = t.getnames()
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile()}  # type: ignore[union-attr]
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(files["index.json"])
    (desc,) = index["manifests"]
    assert desc["annotations"] == {
        "io.containerd.image.name": "docker.io/library/ds-child:1",
        "org.opencontainers.image.ref.name": "1",
    }
    manifest = json.loads(files["blobs/sha256/" + desc["digest"][7:]])
    assert [x["mediaType"] for x in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar"
    ] * 3
    legacy = json.loads(files["manifest.json"])
    assert legacy[0]["RepoTags"] == ["ds-child:1"]
    assert legacy[0]["Config"] == (
        "blobs/sha256/1e9d2d9ef451c221a9dc36c24c032ce07e85262e21febee836f745af8bdbd0c4"
    )


def test_save_by_id_is_untagged_and_unknown_refs_are_refused(host, tmp_path) -> None:
    """docker save <id> carries no tag; a missing image is Docker's 'No such image'."""
    load(host, ARCHIVES / "save-both.tar")
    out = tmp_path / "out.tar"
    save(host, ["0a0fe9afbc2e"], out)
    fresh = new_host(tmp_path / "fresh")
    assert load(fresh, out)[-1] == (
        "Loaded image ID: sha256:0a0fe9afbc2eee2e271c0ac6dec01173aa44aa88cc475c54669aeaf0de2e97f4"
    )
    with pytest.raises(NoSuchImageError):
        save(host, ["nope:1"], tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_round_trip_of_compressed_oci_layers_writes_the_uncompressed_tar(host, tmp_path) -> None:
    """A zstd layer is saved as its uncompressed tar, whose digest is the diff_id."""
    desc, image_id = oci_manifest(tmp_path / "oci", [BASE], "zstd")
    desc["annotations"] = {"io.containerd.image.name": "z:1"}
    oci_layout(tmp_path / "oci", [desc])
    load(host, tmp_path / "oci")
    save(host, ["z:1"], tmp_path / "out.tar")
    with tarfile.open(tmp_path / "out.tar") as t:
        data = t.extractfile("blobs/sha256/" + digest(BASE)[7:]).read()  # type: ignore[union-attr]
    assert data == BASE
    shutil.rmtree(tmp_path / "oci")
    fresh = new_host(tmp_path / "fresh")
    load(fresh, tmp_path / "out.tar")
    assert fresh.state().tags["z:1"] == image_id


def test_shared_layer_symlinked_in_a_legacy_archive_is_followed(host, tmp_path) -> None:
    """docker save writes a shared layer once and symlinks it: reading through the link works."""
    with (
        tarfile.open(ARCHIVES / "save-both.tar") as src,
        tarfile.open(tmp_path / "swapped.tar", "w") as out,
    ):
        for m in src:
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == "manifest.json" and data is not None:
                data = json.dumps(list(reversed(json.loads(data)))).encode()
                m.size = len(data)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    lines = load(host, tmp_path / "swapped.tar")
    assert lines[-1] == "Loaded image: ds-base:1"
    assert lines[-2] == "addf2b708850: Already exists"
    assert content(host, "ds-child:1", "/srv/new.txt") == b"new in child\n"
