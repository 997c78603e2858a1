"""image build: Dockerfile instructions, BuildKit's layers and history, RUN's file commands."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT
from dockstate.tools.build import BuildError, build
from dockstate.tools.imageio import load, save
from tests.tools._images import content, new_host, tree

FIXTURES = Path(__file__).parent.parent / "fixtures" / "docker"
IMAGES = FIXTURES / "images"
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


@pytest.fixture
def host(tmp_path: Path):
    h = new_host(tmp_path / "store")
    yield h
    h.log.close()


def _context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return root


def _config(host, image_id: str) -> dict:
    return json.loads(host.log.read_blobs(host.state().images[image_id].config))


def _meta(host, tmp_path: Path) -> str:
    ctx = _context(
        tmp_path / "meta",
        (IMAGES / "meta.Dockerfile").read_text(),
        {"hello.txt": "hello\n"},
    )
    image_id, _lines, warnings = build(host, ctx, tags=["ds-meta:1"], source_date_epoch=0)
    assert warnings == []
    return image_id


def test_metadata_and_history_are_buildkits(host, tmp_path) -> None:
    """The fixture's Dockerfile gives BuildKit's config and history (same created_by, same layers)."""
    image_id = _meta(host, tmp_path)
    want = json.loads((IMAGES / "meta-buildkit-config.json").read_text())
    got = _config(host, image_id)
    want_config = {k: v for k, v in want["config"].items() if k != "ArgsEscaped"}
    assert got["config"] == want_config
    strip = [{k: v for k, v in h.items() if k != "created"} for h in want["history"]]
    assert [{k: v for k, v in h.items() if k != "created"} for h in got["history"]] == strip
    assert len(got["rootfs"]["diff_ids"]) == len(want["rootfs"]["diff_ids"])
    assert list(got)[:3] == ["architecture", "config", "created"]
    t = tree(host, "ds-meta:1")
    assert content(host, "ds-meta:1", "/hello.txt") == b"hello\n"
    assert t["/app"].kind == DIR


def test_building_twice_gives_the_same_ids_and_stores_nothing_new(host, tmp_path) -> None:
    """Deterministic layer tars: same diff_ids and chain_ids; with an epoch, the same image id."""
    first = _meta(host, tmp_path)
    head = host.log.head().seq
    second = _meta(host, tmp_path)
    assert first == second
    assert host.log.head().seq == head
    other = new_host(tmp_path / "other")
    ctx = tmp_path / "meta"
    image_id, _, _ = build(other, ctx, tags=["x:1"])
    assert other.state().images[image_id].chain_ids == host.state().images[first].chain_ids
    assert image_id != first  # created is the clock's without an epoch


def test_workdir_layers_follow_buildkit(host, tmp_path) -> None:
    """WORKDIR on an existing dir makes an empty-tar layer, WORKDIR / none, a new dir a layer."""
    _meta(host, tmp_path)
    ctx = _context(
        tmp_path / "wd",
        (IMAGES / "workdir.Dockerfile").read_text().replace("ds-meta-classic", "ds-meta:1"),
    )
    image_id, lines, _ = build(host, ctx, tags=["wd:1"])
    got = _config(host, image_id)
    want = json.loads((IMAGES / "workdir-buildkit-config.json").read_text())
    tail = [{k: v for k, v in h.items() if k != "created"} for h in want["history"][-4:]]
    assert [{k: v for k, v in h.items() if k != "created"} for h in got["history"][-4:]] == tail
    assert got["rootfs"]["diff_ids"][2] == EMPTY_LAYER
    assert len(got["rootfs"]["diff_ids"]) == 4
    assert got["config"]["WorkingDir"] == "/hello-dir"
    assert got["config"]["Env"] == ["PATH=/bin", "GREETING=hi", "X=1"]
    assert lines[3] == "#4 [1/3] FROM ds-meta:1"
    assert tree(host, "wd:1")["/hello-dir"].kind == DIR


def test_run_applies_the_supported_file_commands(host, tmp_path) -> None:
    """mkdir, echo/printf with > and >>, touch, cp, mv, ln -s, chmod, rm -rf, $VAR, cd."""
    ctx = _context(
        tmp_path / "run",
        """FROM scratch
COPY base/ /
ENV D=/opt/app
RUN mkdir -p $D/conf && echo "hello world" > $D/conf/a.txt && echo more >> ${D}/conf/a.txt
RUN printf '%s=%d\\n' x 1 y 2 > /opt/app/p.txt; touch /opt/app/empty; cd /opt/app && cp conf/a.txt b.txt
RUN mv /opt/app/b.txt /opt/app/c.txt && ln -s /opt/app/c.txt /link && chmod 0700 /opt/app/c.txt && chmod +x /opt/app/p.txt
RUN rm -rf /etc/old /srv/* && rm -f /nothing
""",
        {"base/etc/old/x": "x\n", "base/etc/keep": "k\n", "base/srv/a": "a", "base/srv/b": "b"},
    )
    image_id, _lines, warnings = build(host, ctx, tags=["run:1"])
    assert warnings == []
    t = tree(host, "run:1")
    assert content(host, "run:1", "/opt/app/conf/a.txt") == b"hello world\nmore\n"
    assert content(host, "run:1", "/opt/app/p.txt") == b"x=1\ny=2\n"
    assert t["/opt/app/p.txt"].mode == 0o755
    assert t["/opt/app/empty"].size == 0
    assert "/opt/app/b.txt" not in t
    assert (t["/opt/app/c.txt"].mode, content(host, "run:1", "/opt/app/c.txt")) == (
        0o700,
        b"hello world\nmore\n",
    )
    assert (t["/link"].kind, t["/link"].target) == (SYMLINK, "/opt/app/c.txt")
    assert "/etc/old" not in t
    assert "/etc/old/x" not in t
    assert "/etc/keep" in t
    assert "/srv" in t
    assert not [p for p in t if p.startswith("/srv/")]
    # The rm layer holds whiteouts for what it deleted from lower layers.
    st = host.state()
    top = st.layers[st.images[image_id].chain_ids[-1]]
    whiteouts = sorted(p for p, e in st.layer_cache.table(top) if e.kind == WHITEOUT)
    assert whiteouts == ["/etc/old", "/srv/a", "/srv/b"]
    history = _config(host, image_id)["history"]
    assert (
        history[-1]["created_by"]
        == "RUN /bin/sh -c rm -rf /etc/old /srv/* && rm -f /nothing # buildkit"
    )


def test_unsupported_commands_are_recorded_with_a_warning(host, tmp_path) -> None:
    """apt-get changes nothing here; the build says so and goes on with what it knows."""
    ctx = _context(
        tmp_path / "w", "FROM scratch\nRUN apt-get update && mkdir /x\nRUN curl x | sh\n"
    )
    image_id, _, warnings = build(host, ctx)
    assert any("'apt-get'" in w for w in warnings)
    assert any("pipeline" in w for w in warnings)
    assert tree(host, image_id)["/x"].kind == DIR
    assert len(_config(host, image_id)["rootfs"]["diff_ids"]) == 2


def test_a_failing_command_fails_the_build_and_appends_nothing(host, tmp_path) -> None:
    """rm of a missing file without -f fails like the shell; nothing is recorded."""
    ctx = _context(tmp_path / "f", "FROM scratch\nRUN mkdir /a && rm /missing\n")
    with pytest.raises(BuildError) as info:
        build(host, ctx)
    assert str(info.value) == (
        "RUN mkdir /a && rm /missing: rm: cannot remove '/missing': No such file or directory"
    )
    assert host.log.head().seq == 0


def test_copy_with_dockerignore_chown_chmod_and_globs(host, tmp_path) -> None:
    """.dockerignore excludes, ! re-includes; --chown by name or number; --chmod; globs."""
    ctx = _context(
        tmp_path / "c",
        """FROM scratch
COPY etc/ /etc/
COPY --chown=app:staff app/ /srv/app/
COPY --chown=7:8 --chmod=600 *.txt /data/
WORKDIR /srv
COPY one.txt rel/
""",
        {
            ".dockerignore": "secret*\n**/*.log\n!keep.log\n",
            "etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "etc/group": "root:x:0:\nstaff:x:50:\n",
            "app/main.py": "print(1)\n",
            "app/debug.log": "noise",
            "keep.log": "kept",
            "one.txt": "1",
            "two.txt": "2",
            "secret.txt": "no",
        },
    )
    image_id, _, _ = build(host, ctx, tags=["c:1"])
    t = tree(host, "c:1")
    assert (t["/srv/app/main.py"].uid, t["/srv/app/main.py"].gid) == (1000, 50)
    assert "/srv/app/debug.log" not in t
    assert (t["/data/one.txt"].uid, t["/data/one.txt"].gid, t["/data/one.txt"].mode) == (
        7,
        8,
        0o600,
    )
    assert "/data/two.txt" in t
    assert "/data/secret.txt" not in t
    assert t["/srv/rel/one.txt"].kind == FILE
    history = [h["created_by"] for h in _config(host, image_id)["history"]]
    assert "COPY --chown=7:8 --chmod=600 *.txt /data/ # buildkit" in history


def test_copy_errors(host, tmp_path) -> None:
    """Sources outside the context or excluded are refused in BuildKit's words."""
    ctx = _context(tmp_path / "e", "FROM scratch\nCOPY ../x /x\n")
    with pytest.raises(BuildError, match="forbidden path outside the build context"):
        build(host, ctx)
    ctx = _context(tmp_path / "e2", "FROM scratch\nCOPY nope /x\n")
    with pytest.raises(BuildError, match='"/nope" not found'):
        build(host, ctx)
    ctx = _context(tmp_path / "e3", "FROM scratch\nCOPY --chown=ghost a /a\n", {"a": "a"})
    with pytest.raises(BuildError, match="no such user: ghost"):
        build(host, ctx)


def test_add_extracts_local_archives(host, tmp_path) -> None:
    """ADD of a local tar unpacks it into the destination."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz") as t:
        info = tarfile.TarInfo("pkg/bin/tool")
        info.size, info.mode = 4, 0o755
        t.addfile(info, io.BytesIO(b"tool"))
    ctx = _context(
        tmp_path / "a",
        "FROM scratch\nADD pkg.tar.gz /opt/\nADD pkg.tar.gz /raw/\n",
        {"pkg.tar.gz": bio.getvalue()},
    )
    build(host, ctx, tags=["a:1"])
    t = tree(host, "a:1")
    assert t["/opt/pkg/bin/tool"].mode == 0o755
    assert content(host, "a:1", "/opt/pkg/bin/tool") == b"tool"
    ctx = _context(tmp_path / "u", "FROM scratch\nADD https://example.com/x /x\n")
    with pytest.raises(BuildError, match="does not download"):
        build(host, ctx)


def test_volumes_become_anonymous_volumes_of_containers(host, tmp_path) -> None:
    """VOLUME paths are registered with the image, so a container gets an anonymous volume."""
    ctx = _context(tmp_path / "v", 'FROM scratch\nVOLUME ["/data", "/logs"]\nVOLUME /cache\n')
    image_id, _, _ = build(host, ctx, tags=["v:1"])
    assert host.state().images[image_id].volumes == ("/cache", "/data", "/logs")
    cid = host.create("v:1")
    mounts = host.state().containers[cid].mounts
    assert sorted(m.target for m in mounts) == ["/cache", "/data", "/logs"]
    assert all(m.anonymous for m in mounts)


def test_config_instructions(host, tmp_path) -> None:
    """CMD/ENTRYPOINT (shell and exec forms), USER, EXPOSE, STOPSIGNAL, SHELL, HEALTHCHECK, LABEL."""
    ctx = _context(
        tmp_path / "k",
        """FROM scratch
CMD ["inherited"]
ENTRYPOINT ["/entry"]
CMD echo hi
USER 1000:1000
EXPOSE 80 53/udp 8000-8001
STOPSIGNAL SIGKILL
SHELL ["/bin/bash", "-c"]
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/
LABEL a="b c" d=e
MAINTAINER someone
ONBUILD RUN echo child
""",
    )
    image_id, _, _ = build(host, ctx)
    cfg = _config(host, image_id)
    c = cfg["config"]
    assert c["Entrypoint"] == ["/entry"]
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["User"] == "1000:1000"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert c["StopSignal"] == "SIGKILL"
    assert c["Shell"] == ["/bin/bash", "-c"]
    assert c["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 5_000_000_000,
        "Retries": 3,
    }
    assert c["Labels"] == {"a": "b c", "d": "e"}
    assert c["OnBuild"] == ["RUN echo child"]
    assert cfg["author"] == "someone"
    by = [h["created_by"] for h in cfg["history"]]
    assert 'CMD ["/bin/sh" "-c" "echo hi"]' in by
    assert "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{}]" in by
    assert all(h.get("empty_layer") for h in cfg["history"])
    assert cfg["rootfs"]["diff_ids"] == []


def test_args_and_build_args(host, tmp_path) -> None:
    """ARG before FROM picks the base, ARG in a stage feeds RUN; unused build args warn."""
    ctx = _context(
        tmp_path / "g",
        """ARG BASE=scratch
FROM ${BASE}
ARG NAME=default
ARG OTHER
RUN mkdir /$NAME
""",
    )
    image_id, _, warnings = build(host, ctx, build_args={"NAME": "given", "UNUSED": "1"})
    assert tree(host, image_id)["/given"].kind == DIR
    assert warnings == ["[Warning] One or more build-args [UNUSED] were not consumed"]
    by = [h["created_by"] for h in _config(host, image_id)["history"]]
    assert by[0] == "ARG NAME=default"
    assert by[-1] == "RUN |1 NAME=given /bin/sh -c mkdir /$NAME # buildkit"


def test_multi_stage_copy_from(host, tmp_path) -> None:
    """COPY --from=<stage> takes files from an earlier stage; the last stage is the image."""
    ctx = _context(
        tmp_path / "m",
        """FROM scratch AS builder
RUN mkdir -p /out && echo built > /out/app
FROM scratch
COPY --from=builder /out/app /app
""",
    )
    image_id, _, _ = build(host, ctx, tags=["m:1"])
    assert content(host, "m:1", "/app") == b"built\n"
    assert len(_config(host, image_id)["rootfs"]["diff_ids"]) == 1


def test_from_a_missing_image_is_refused(host, tmp_path) -> None:
    """dockstate does not pull: a base that is not in the store fails the build."""
    ctx = _context(tmp_path / "n", "FROM alpine:3\n")
    with pytest.raises(BuildError, match="alpine:3: no such image in this store"):
        build(host, ctx)


def test_built_images_round_trip_through_save_and_load(host, tmp_path) -> None:
    """A built image's layers were recorded with their tars: save -> load keeps every id."""
    image_id = _meta(host, tmp_path)
    save(host, ["ds-meta:1"], tmp_path / "out.tar")
    fresh = new_host(tmp_path / "fresh")
    assert load(fresh, tmp_path / "out.tar")[-1] == "Loaded image: ds-meta:1"
    assert fresh.state().images[image_id].chain_ids == host.state().images[image_id].chain_ids
