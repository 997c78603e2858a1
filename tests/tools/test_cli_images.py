"""Image verbs end to end: build, image load|build|ls|history|inspect|rm|tag|save, system df."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.tools._cli import Dockstate, copy_store, write_context
from tests.tools._images import digest, layer_tar, legacy_archive

REFERENCE = Path("/work/shared/reference/docker-json")
CHILD = 'FROM app:1\nARG GREETING=hi\nRUN echo "$GREETING" > /app/greeting\nCMD ["/app/greet"]\n'


def _keys(path: Path) -> set[str]:
    return set(json.loads(path.read_text().splitlines()[0]))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, image_template: Path) -> Dockstate:
    """A store read by this module's read-only checks: app:1, child:1 built FROM it, a container."""
    root = tmp_path_factory.mktemp("images")
    (root / "work").mkdir()
    ds = Dockstate(copy_store(image_template, root / "store"), root / "work")
    ctx = root / "child"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(CHILD)
    ds.ok("build", "-t", "child:1", "--build-arg", "GREETING=yo", str(ctx))
    ds.ok("run", "--name", "web", "child:1")
    ds.ok("fs", "write", "web", "/app/rw.txt", "--data", "0123456789")
    return ds


class TestBuild:
    def test_build_prints_buildkits_steps_and_names_the_image(self, ds: Dockstate):
        """build and image build: BuildKit's progress lines; -q prints only the id."""
        ctx = write_context(ds.workdir / "ctx")
        lines = ds.ok("build", "-t", "app:1", str(ctx)).splitlines()
        assert lines[:6] == [
            "#1 [internal] load build definition from Dockerfile",
            "#2 [internal] load .dockerignore",
            "#3 [internal] load build context",
            "#4 [1/2] COPY files/ /app/",
            '#5 [2/2] RUN mkdir -p /data /etc && echo "seed" > /data/seed.txt && echo "conf" > /etc/app.conf',
            "#6 exporting to image",
        ]
        (image,) = ds.json("image", "inspect", "app:1")
        assert lines[6:] == [
            "#6 exporting layers done",
            f"#6 writing image {image['Id']} done",
            "#6 naming to docker.io/library/app:1 done",
        ]
        (ctx / "child.Dockerfile").write_text(CHILD)
        image_id = ds.ok(
            "image", "build", "-q", "-f", str(ctx / "child.Dockerfile"), "-t", "child:1", str(ctx)
        )
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", image_id)
        (child,) = ds.json("image", "inspect", "child:1")
        assert child["Id"] == image_id.strip()
        assert child["RootFS"]["Layers"][:2] == image["RootFS"]["Layers"]
        assert child["Config"]["Cmd"] == ["/app/greet"]
        ds.ok("run", "--name", "c1", "child:1")
        assert ds.ok("fs", "cat", "c1", "/app/greeting") == "hi\n"

    def test_build_refusals(self, ds: Dockstate):
        """A missing context, a missing Dockerfile, and --at on a build."""
        ds.refused("build", "nope", message="unable to prepare context: path 'nope' not found")
        (ds.workdir / "empty").mkdir()
        ds.refused(
            "build",
            "empty",
            message=f"failed to read dockerfile: open {ds.workdir}/empty/Dockerfile: "
            "No such file or directory",
        )
        ds.refused(
            "image",
            "build",
            "--at",
            "1",
            "empty",
            message="--at is for read commands: 'image build' changes the store and always acts now",
        )


class TestList:
    def test_image_ls_table_quiet_and_json(self, images: Dockstate):
        """Newest first; JSON lines with Docker's keys and its CreatedAt and Size spellings."""
        table = images.ok("image", "ls").splitlines()
        assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
        assert [row.split()[:2] for row in table[1:]] == [["child", "1"], ["app", "1"]]
        rows = images.json_lines("image", "ls", "--format", "json")
        assert set(rows[0]) == _keys(REFERENCE / "engine-images.jsonl")
        (child,) = images.json("image", "inspect", "child:1")
        assert rows[0]["ID"] == child["Id"]
        assert (rows[0]["Repository"], rows[0]["Tag"]) == ("child", "1")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC", rows[0]["CreatedAt"])
        assert rows[0]["CreatedAt"] == child["Created"][:19].replace("T", " ") + " +0000 UTC"
        assert (rows[0]["Size"], rows[1]["Size"]) == ("24B", "21B")
        assert images.ok("image", "ls", "-q") == f"{child['Id'][7:19]}\n{rows[1]['ID'][7:19]}\n"
        assert images.ok("image", "ls", "-q", "--at", "-10m") == ""

    def test_history_lists_each_build_step_newest_first(self, images: Dockstate):
        """image history: one row per history entry, empty layers 0B, Docker's JSON keys."""
        rows = images.json_lines("image", "history", "child:1", "--format", "json")
        assert set(rows[0]) == _keys(REFERENCE / "engine-history.jsonl")
        (child,) = images.json("image", "inspect", "child:1")
        assert [r["ID"] for r in rows] == [child["Id"]] + ["<missing>"] * 6
        assert [(r["CreatedBy"], r["Size"]) for r in rows] == [
            ('CMD ["/app/greet"]', "0B"),
            ('RUN |1 GREETING=yo /bin/sh -c echo "$GREETIN…', "3B"),
            ("ARG GREETING=hi", "0B"),
            ('CMD ["/app/run"]', "0B"),
            ("VOLUME [/data]", "0B"),
            ('RUN /bin/sh -c mkdir -p /data /etc && echo "…', "10B"),
            ("COPY files/ /app/ # buildkit", "11B"),
        ]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["CreatedAt"]) for r in rows)
        assert all(r["Comment"] == "buildkit.dockerfile.v0" for r in rows)
        table = images.ok("image", "history", "child:1").splitlines()
        assert table[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
        assert table[1].startswith(child["Id"][7:19] + "   ")
        full = images.json_lines("image", "history", "--no-trunc", "child:1", "--format", "json")
        assert (
            full[1]["CreatedBy"]
            == 'RUN |1 GREETING=yo /bin/sh -c echo "$GREETING" > /app/greeting # buildkit'
        )

    def test_image_inspect_is_dockers_array(self, images: Dockstate):
        """image inspect: Docker's keys (plus ChainIDs); an unknown image is an error after []."""
        out = images.ok("image", "inspect", "app:1")
        assert out.startswith("[\n    {\n")
        (app,) = json.loads(out)
        docker = json.loads((REFERENCE / "engine-image-inspect.json").read_text())[0]
        assert {
            "Id",
            "RepoTags",
            "Created",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "RootFS",
        } <= set(docker)
        assert {
            "Id",
            "RepoTags",
            "Created",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "RootFS",
        } <= set(app)
        assert app["RepoTags"] == ["app:1"]
        assert app["RootFS"]["Type"] == "layers"
        assert len(app["RootFS"]["Layers"]) == len(app["ChainIDs"]) == 2
        assert app["Config"]["Volumes"] == {"/data": {}}
        assert app["Size"] == 21
        r = images("image", "inspect", "nope")
        assert (r.code, r.out, r.err) == (1, "[]\n", "Error: No such image: nope:latest\n")

    def test_system_df_counts_images_containers_and_volumes(self, images: Dockstate):
        """system df: Docker's four rows; -v: the per-object tables; json: one object per row."""
        lines = images.ok("system", "df").splitlines()
        assert lines[0] == "TYPE            TOTAL   ACTIVE   SIZE   RECLAIMABLE"
        # Docker's reclaimable: the total less what images with containers use alone
        assert lines[1].split() == ["Images", "2", "1", "24B", "21B", "(87%)"]
        assert lines[2].split() == ["Containers", "1", "1", "10B", "0B"]
        assert lines[3].split() == ["Local", "Volumes", "1", "1", "5B", "0B"]
        assert lines[4].split() == ["Build", "Cache", "0", "0", "0B", "0B"]
        rows = images.json_lines("system", "df", "--format", "json")
        assert [(r["Type"], r["TotalCount"], r["Size"]) for r in rows] == [
            ("Images", "2", "24B"),
            ("Containers", "1", "10B"),
            ("Local Volumes", "1", "5B"),
            ("Build Cache", "0", "0B"),
        ]
        verbose = images.ok("system", "df", "-v")
        assert verbose.startswith("Images space usage:\n\nREPOSITORY   TAG   IMAGE ID ")
        assert "\nContainers space usage:\n\n" in verbose
        assert "\nLocal Volumes space usage:\n\n" in verbose
        assert verbose.endswith("\nBuild cache usage: 0B\n")
        app_row = next(line for line in verbose.splitlines() if line.startswith("app "))
        assert app_row.split()[-4:] == ["21B", "21B", "0B", "0"]
        before = images.ok("system", "df", "--at", "4").splitlines()
        assert before[2].split() == ["Containers", "0", "0", "0B", "0B"]


class TestTagRmSaveLoad:
    def test_tag_and_rm(self, app: Dockstate):
        """tag adds a name; rm untags, then deletes; an image in use is refused."""
        (image,) = app.json("image", "inspect", "app:1")
        assert app.ok("image", "tag", "app:1", "mirror/app:2") == ""
        assert app.json("image", "inspect", "mirror/app:2")[0]["RepoTags"] == [
            "app:1",
            "mirror/app:2",
        ]
        assert app.ok("image", "rm", "mirror/app:2") == "Untagged: mirror/app:2\n"
        app.refused("image", "tag", "nope", "x:1", message="No such image: nope:latest")
        app.refused("image", "rm", "nope", message="No such image: nope:latest")
        cid = app.ok("run", "--name", "web", "app:1").strip()
        app.refused(
            "image",
            "rm",
            "app:1",
            message=f"conflict: unable to delete {image['Id'][7:19]} (cannot be forced) - "
            f"image is being used by running container {cid[:12]}",
        )
        app.ok("rm", "-f", "web")
        out = app.ok("image", "rm", "app:1").splitlines()
        assert out[:2] == ["Untagged: app:1", f"Deleted: {image['Id']}"]
        assert len(out) == 4  # and its two layers
        assert app.ok("image", "ls", "-q") == ""

    def test_save_then_load_into_a_fresh_store_and_a_store_that_has_the_layers(
        self, app: Dockstate, tmp_path: Path
    ):
        """A saved archive loads with the same ids; layers already stored say "Already exists"."""
        (image,) = app.json("image", "inspect", "app:1")
        archive = tmp_path / "app.tar"
        assert app.ok("image", "save", "-o", str(archive), "app:1") == ""
        assert archive.stat().st_size > 0

        fresh = Dockstate(tmp_path / "fresh", app.workdir)
        out = fresh.ok("image", "load", "-i", str(archive)).splitlines()
        assert out[-1] == "Loaded image: app:1"
        assert all(": Loading layer" in line for line in out[:-1])
        assert fresh.json("image", "inspect", "app:1")[0]["Id"] == image["Id"]
        again = fresh.ok("image", "load", "-i", str(archive)).splitlines()
        short = [d[7:19] for d in image["RootFS"]["Layers"]]
        assert again == [f"{s}: Already exists" for s in short] + ["Loaded image: app:1"]
        assert fresh.ok("image", "load", "-q", "-i", str(archive)) == "Loaded image: app:1\n"

    def test_load_refusals(self, ds: Dockstate, tmp_path: Path):
        """A layer whose digest is not the config's diff_id, a missing archive: nothing appended."""
        wrong = "sha256:" + "0" * 64
        layer = layer_tar([("etc/", None), ("etc/motd", b"hi\n")])
        legacy_archive(tmp_path / "bad.tar", [([layer], ["bad:1"])], diff_ids=[[wrong]])
        ds.refused(
            "image",
            "load",
            "-i",
            str(tmp_path / "bad.tar"),
            message=f'invalid diffID for layer 0: expected "{wrong}", got "{digest(layer)}"',
        )
        ds.refused(
            "image",
            "load",
            "-i",
            "missing.tar",
            message="open missing.tar: no such file or directory",
        )
        ds.refused(
            "image", "load", message="give an archive with -i FILE or an OCI layout directory"
        )
        ds.refused("image", "save", "-o", "x.tar", "nope", message="No such image: nope:latest")
        assert ds.ok("image", "ls", "-q") == ""
