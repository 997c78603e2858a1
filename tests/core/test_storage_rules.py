"""Storage rules of a container's filesystem: copy-up, whiteouts, mounts, read-only, discard policies.

docker-semantics.md sections 4, 5.4 and 7; the image is ``app:1`` of tests/core/helpers.py.
"""

from __future__ import annotations

import pytest

from dockstate.core.commands import DockerHost
from dockstate.core.errors import (
    ContainerNotRunningError,
    ContainerPausedError,
    FileSystemError,
    InvalidParameterError,
)
from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT
from dockstate.core.state import Container, Host
from dockstate.eventlog import LmdbEventLog
from tests.core.helpers import fingerprint, fold, read_file, types_since

HOSTS = b"127.0.0.1 localhost\n"


def container(docker: DockerHost, ref: str) -> tuple[Host, Container]:
    host = docker.state()
    (c,) = [c for c in host.containers.values() if ref in (c.name, c.id)]
    return host, c


@pytest.fixture
def web(docker: DockerHost) -> str:
    """A running container ``web`` of ``app:1`` with no mounts."""
    docker.create("app:1", name="web", start=True)
    return "web"


class TestCopyUp:
    def test_first_write_to_an_image_file_copies_it_up_whole(self, docker: DockerHost, web: str):
        """Overwriting an image file records a copy-up of the file's full lower size."""
        docker.write_file(web, "/etc/hosts", b"10.0.0.1 db\n")

        _host, c = container(docker, web)
        assert c.copy_ups == {"/etc/hosts": len(HOSTS)}
        assert c.rw["/etc/hosts"].kind == FILE
        assert read_file(docker, web, "/etc/hosts") == b"10.0.0.1 db\n"

    def test_append_to_an_image_file_copies_it_up_and_keeps_its_content(
        self, docker: DockerHost, web: str
    ):
        """Appending to an image file copies it up first: the result is old content then new."""
        docker.write_file(web, "/etc/hosts", b"10.0.0.2 cache\n", append=True)

        _, c = container(docker, web)
        assert c.copy_ups == {"/etc/hosts": len(HOSTS)}
        assert read_file(docker, web, "/etc/hosts") == HOSTS + b"10.0.0.2 cache\n"

    def test_chmod_of_an_image_file_copies_it_up(self, docker: DockerHost, web: str):
        """A metadata change copies the whole file up, as overlay2 does without metacopy."""
        docker.chmod(web, "/app/main.py", 0o700)

        host, c = container(docker, web)
        assert c.copy_ups == {"/app/main.py": len(b"print('hello')\n")}
        entry = host.lookup(c, "/app/main.py")
        assert entry is not None
        assert (entry.mode, entry.size) == (0o700, len(b"print('hello')\n"))

    def test_only_the_first_write_copies_up(self, docker: DockerHost, web: str):
        """Later writes hit the copy: the copy-up is counted once."""
        docker.write_file(web, "/etc/hosts", b"one")
        docker.write_file(web, "/etc/hosts", b"two", append=True)
        docker.chmod(web, "/etc/hosts", 0o600)

        _, c = container(docker, web)
        assert c.copy_ups == {"/etc/hosts": len(HOSTS)}

    def test_a_new_file_is_not_a_copy_up(self, docker: DockerHost, web: str):
        """Creating a file that no image layer has copies nothing up."""
        docker.write_file(web, "/var/log/app.log", b"started\n")

        _, c = container(docker, web)
        assert c.copy_ups == {}
        assert c.rw["/var/log/app.log"].size == 8

    def test_the_image_is_not_changed_by_a_containers_write(self, docker: DockerHost, web: str):
        """Another container of the same image still reads the image's file."""
        docker.write_file(web, "/etc/hosts", b"changed")
        docker.create("app:1", name="other", start=True)

        assert read_file(docker, "other", "/etc/hosts") == HOSTS


class TestWhiteouts:
    def test_deleting_an_image_file_leaves_a_whiteout_and_hides_it(
        self, docker: DockerHost, web: str
    ):
        """``rm`` of a lower file writes a whiteout into the rw layer; the file is gone from view."""
        docker.delete(web, "/etc/hosts")

        host, c = container(docker, web)
        assert c.rw["/etc/hosts"].kind == WHITEOUT
        assert host.lookup(c, "/etc/hosts") is None
        assert host.lookup(c, "/etc") is not None

    def test_deleting_a_file_only_in_the_rw_layer_leaves_no_whiteout(
        self, docker: DockerHost, web: str
    ):
        """A file the container made itself is simply dropped from the rw layer."""
        docker.write_file(web, "/var/log/app.log", b"x")
        docker.delete(web, "/var/log/app.log")

        host, c = container(docker, web)
        assert "/var/log/app.log" not in c.rw
        assert host.lookup(c, "/var/log/app.log") is None

    def test_deleting_a_copied_up_file_leaves_a_whiteout(self, docker: DockerHost, web: str):
        """A copied-up image file still exists below: deleting it needs a whiteout."""
        docker.write_file(web, "/etc/hosts", b"copied up")
        docker.delete(web, "/etc/hosts")

        host, c = container(docker, web)
        assert c.rw["/etc/hosts"].kind == WHITEOUT
        assert host.lookup(c, "/etc/hosts") is None

    def test_deleting_an_image_dir_whiteouts_the_dir_not_its_children(
        self, docker: DockerHost, web: str
    ):
        """``rm -r`` of a lower directory is one whiteout hiding everything below it."""
        docker.delete(web, "/app", recursive=True)

        host, c = container(docker, web)
        assert {p: e.kind for p, e in c.rw.items()} == {"/app": WHITEOUT}
        for path in ("/app", "/app/main.py", "/app/lib", "/app/lib/util.py"):
            assert host.lookup(c, path) is None

    def test_a_dir_recreated_over_a_whiteout_is_opaque(self, docker: DockerHost, web: str):
        """``mkdir`` where a lower dir was deleted makes an opaque dir: the old children stay hidden."""
        docker.delete(web, "/app", recursive=True)
        docker.mkdir(web, "/app")

        host, c = container(docker, web)
        assert c.rw["/app"].kind == DIR
        assert c.rw["/app"].opaque
        assert host.lookup(c, "/app/main.py") is None
        assert host.lookup(c, "/app") is not None

    def test_a_file_written_under_a_deleted_dir_makes_its_parent_opaque(
        self, docker: DockerHost, web: str
    ):
        """Writing into a whited-out dir re-creates it opaque; only the new file is visible in it."""
        docker.delete(web, "/app", recursive=True)
        docker.write_file(web, "/app/new.py", b"new")

        host, c = container(docker, web)
        assert c.rw["/app"].opaque
        assert read_file(docker, web, "/app/new.py") == b"new"
        assert host.lookup(c, "/app/main.py") is None

    def test_a_new_dir_over_nothing_is_not_opaque(self, docker: DockerHost, web: str):
        """A directory that never existed below is a plain dir, not an opaque one."""
        docker.mkdir(web, "/opt")

        _, c = container(docker, web)
        assert not c.rw["/opt"].opaque

    def test_an_image_whiteout_hides_the_base_layers_file(self, docker: DockerHost, web: str):
        """``/etc/motd`` of the base layer is deleted by the image's upper layer's whiteout."""
        host, c = container(docker, web)
        assert host.lookup(c, "/etc/motd") is None
        assert "/etc/motd" not in host.lower(c)

    def test_image_symlinks_are_visible(self, docker: DockerHost, web: str):
        """A symlink from a layer tar is a symlink entry with its target."""
        host, c = container(docker, web)
        entry = host.lookup(c, "/bin/sh")
        assert entry is not None
        assert (entry.kind, entry.target) == (SYMLINK, "busybox")


class TestMountRouting:
    def test_a_write_below_a_volume_goes_to_the_volume(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """A file written under a volume's target lands in the volume, not the rw layer."""
        docker.create("app:1", name="web", volumes=["cache:/cache"], start=True)
        head = store.head().seq

        docker.write_file("web", "/cache/sub/f.txt", b"kept")

        host, c = container(docker, "web")
        assert set(host.volumes["cache"].files) == {"/sub", "/sub/f.txt"}
        assert c.rw == {}
        (event,) = list(store.read(head + 1))
        assert (event.data["volume"], event.data["host_path"]) == ("cache", "")
        assert "v:cache" in event.subjects
        assert read_file(docker, "web", "/cache/sub/f.txt") == b"kept"

    def test_a_write_below_a_bind_goes_to_the_host(self, docker: DockerHost, store: LmdbEventLog):
        """A file written under a bind target lands in the host directory."""
        docker.create("app:1", name="web", volumes=["/srv/site:/site"], start=True)
        head = store.head().seq

        docker.write_file("web", "/site/index.html", b"<p>host</p>")

        host, c = container(docker, "web")
        assert host.host_files["/srv/site/index.html"].size == len(b"<p>host</p>")
        assert c.rw == {}
        (event,) = list(store.read(head + 1))
        assert event.data["host_path"] == "/srv/site"
        assert store.read_blobs(host.host_files["/srv/site/index.html"].chunks) == b"<p>host</p>"

    def test_nested_mounts_the_longest_target_wins(self, docker: DockerHost):
        """With volumes at /data and /data/inner, a path goes to the deepest mount containing it."""
        docker.create("app:1", name="web", volumes=["outer:/data", "inner:/data/inner"], start=True)

        docker.write_file("web", "/data/inner/deep.txt", b"inner")
        docker.write_file("web", "/data/top.txt", b"outer")
        docker.write_file("web", "/data/innerish.txt", b"outer too")

        host, c = container(docker, "web")
        assert set(host.volumes["inner"].files) == {"/deep.txt"}
        assert set(host.volumes["outer"].files) == {"/top.txt", "/innerish.txt"}
        mount = c.mount_for("/data/inner/deep.txt")
        assert mount is not None
        assert mount.source == "inner"

    def test_the_mount_order_does_not_decide_nesting(self, docker: DockerHost):
        """The deeper mount wins even when it is listed first."""
        docker.create("app:1", name="web", volumes=["inner:/data/inner", "outer:/data"], start=True)
        docker.write_file("web", "/data/inner/deep.txt", b"inner")

        host, _ = container(docker, "web")
        assert set(host.volumes["inner"].files) == {"/deep.txt"}
        assert host.volumes["outer"].files == {}

    def test_a_write_below_a_tmpfs_stays_in_the_tmpfs(self, docker: DockerHost):
        """tmpfs contents live in the container's tmpfs, not the rw layer."""
        docker.create("app:1", name="web", tmpfs=["/run/app"], start=True)

        docker.write_file("web", "/run/app/pid", b"1")

        _, c = container(docker, "web")
        assert set(c.tmpfs["/run/app"]) == {"/pid"}
        assert c.rw == {}


class TestReadOnlyMounts:
    @pytest.mark.parametrize(
        ("kwargs", "target"),
        [
            ({"volumes": ["data:/data:ro"]}, "/data"),
            ({"mounts": ["type=volume,source=data,target=/data,readonly"]}, "/data"),
            ({"mounts": ["type=volume,src=data,dst=/data,ro=true"]}, "/data"),
            ({"volumes": ["/srv/conf:/data:ro"]}, "/data"),
            ({"tmpfs": ["/data:ro"]}, "/data"),
        ],
        ids=["-v ro", "--mount readonly", "--mount ro=true", "bind ro", "tmpfs ro"],
    )
    def test_a_write_to_a_read_only_mount_is_refused(
        self, docker: DockerHost, store: LmdbEventLog, kwargs, target
    ):
        """Writing, appending, deleting, mkdir and chmod under a read-only mount fail with EROFS."""
        docker.create("app:1", name="web", start=True, **kwargs)
        before = fingerprint(store)

        refused = [
            lambda: docker.write_file("web", f"{target}/f", b"x"),
            lambda: docker.write_file("web", f"{target}/f", b"x", append=True),
            lambda: docker.mkdir("web", f"{target}/d"),
        ]
        for attempt in refused:
            with pytest.raises(FileSystemError, match=r"Read-only file system$") as info:
                attempt()
            assert info.value.reason == "Read-only file system"
        with pytest.raises(FileSystemError) as info:
            docker.write_file("web", f"{target}/f", b"x")
        assert str(info.value) == f"write {target}/f: Read-only file system"
        assert fingerprint(store) == before

    def test_deleting_or_chmod_in_a_read_only_volume_is_refused(self, docker: DockerHost):
        """Existing files of a read-only volume cannot be removed or changed."""
        docker.create("app:1", name="db", volumes=["data:/data"], start=True)
        docker.write_file("db", "/data/f", b"x")
        docker.create("app:1", name="reader", volumes=["data:/data:ro"], start=True)

        with pytest.raises(FileSystemError, match=r"^rm /data/f: Read-only file system$"):
            docker.delete("reader", "/data/f")
        with pytest.raises(FileSystemError, match=r"^chmod /data/f: Read-only file system$"):
            docker.chmod("reader", "/data/f", 0o600)
        assert read_file(docker, "reader", "/data/f") == b"x"

    def test_a_read_write_mount_of_the_same_volume_still_writes(self, docker: DockerHost):
        """Read-only is a property of the mount, not of the volume."""
        docker.create("app:1", name="reader", volumes=["data:/data:ro"], start=True)
        docker.create("app:1", name="writer", volumes=["data:/data"], start=True)

        docker.write_file("writer", "/data/f", b"x")

        assert read_file(docker, "reader", "/data/f") == b"x"


class TestWhenTheContainerIsNotRunning:
    @pytest.mark.parametrize("state", ["created", "exited"])
    def test_a_file_command_on_a_stopped_container_is_refused(
        self, docker: DockerHost, store: LmdbEventLog, state: str
    ):
        """Writing into a container that is not running fails as ``docker exec`` does."""
        cid = docker.create("app:1", name="web", start=state == "exited")
        if state == "exited":
            docker.stop("web")
        before = fingerprint(store)

        for attempt in (
            lambda: docker.write_file("web", "/f", b"x"),
            lambda: docker.delete("web", "/etc/hosts"),
            lambda: docker.mkdir("web", "/d"),
            lambda: docker.chmod("web", "/etc/hosts", 0o600),
            lambda: docker.rename("web", "/etc/hosts", "/etc/h2"),
        ):
            with pytest.raises(ContainerNotRunningError) as info:
                attempt()
            assert str(info.value) == f"container {cid} is not running"
        assert fingerprint(store) == before

    def test_a_file_command_on_a_paused_container_is_refused(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Writing into a paused container fails with Docker's paused-exec message."""
        cid = docker.create("app:1", name="web", start=True)
        docker.pause("web")
        before = fingerprint(store)

        with pytest.raises(ContainerPausedError) as info:
            docker.write_file("web", "/f", b"x")

        assert str(info.value) == f"Container {cid} is paused, unpause the container before exec"
        assert fingerprint(store) == before


class TestDiscardPolicies:
    def test_discard_on_stop_drops_the_rw_layer_at_stop(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Under discard_on=stop a stopped container's rw layer is empty and a start begins afresh."""
        cid = docker.create("app:1", name="web", discard_on="stop", start=True)
        docker.write_file("web", "/etc/hosts", b"changed")
        docker.write_file("web", "/var/log/app.log", b"log")
        docker.delete("web", "/app/main.py")

        docker.stop("web")
        stopped = docker.state().containers[cid]
        assert (stopped.rw, stopped.copy_ups, stopped.rw_generation) == ({}, {}, 2)

        docker.start("web")
        _host, c = container(docker, "web")
        assert c.rw == {}
        assert read_file(docker, "web", "/etc/hosts") == HOSTS
        assert read_file(docker, "web", "/var/log/app.log") is None
        assert read_file(docker, "web", "/app/main.py") == b"print('hello')\n"
        assert fold(store).containers[cid].rw == {}

    @pytest.mark.parametrize("how", ["kill", "restart"])
    def test_discard_on_stop_also_applies_to_kill_and_restart(self, docker: DockerHost, how: str):
        """Any end of the process discards the rw layer under discard_on=stop."""
        docker.create("app:1", name="web", discard_on="stop", start=True)
        docker.write_file("web", "/var/log/app.log", b"log")

        getattr(docker, how)("web")

        _, c = container(docker, "web")
        assert c.rw == {}

    def test_discard_on_remove_keeps_the_rw_layer_across_stop_and_restart(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """Under discard_on=remove (real Docker) files survive stop, start and restart, and go at rm."""
        cid = docker.create("app:1", name="web", discard_on="remove", start=True)
        docker.write_file("web", "/etc/hosts", b"changed")
        docker.write_file("web", "/var/log/app.log", b"log")

        docker.stop("web")
        _, stopped = container(docker, "web")
        assert set(stopped.rw) == {"/etc/hosts", "/var/log/app.log"}
        assert stopped.copy_ups == {"/etc/hosts": len(HOSTS)}
        docker.start("web")
        docker.restart("web")
        assert read_file(docker, "web", "/etc/hosts") == b"changed"
        assert read_file(docker, "web", "/var/log/app.log") == b"log"

        docker.remove("web", force=True)
        removed = docker.state().removed[cid]
        assert removed.rw == {}
        assert fold(store).removed[cid].rw == {}

    @pytest.mark.parametrize("policy", ["stop", "remove"])
    def test_tmpfs_contents_are_discarded_at_stop_under_both_policies(
        self, docker: DockerHost, policy: str
    ):
        """tmpfs lives in memory: whatever the rw-layer policy, its files are gone after stop."""
        docker.create("app:1", name="web", tmpfs=["/run/app"], discard_on=policy, start=True)
        docker.write_file("web", "/run/app/pid", b"1")
        docker.write_file("web", "/var/log/app.log", b"log")

        docker.stop("web")
        docker.start("web")

        host, c = container(docker, "web")
        assert host.lookup(c, "/run/app/pid") is None
        assert c.tmpfs.get("/run/app", {}) == {}
        kept = read_file(docker, "web", "/var/log/app.log")
        assert kept == (b"log" if policy == "remove" else None)

    def test_the_store_default_policy_applies_to_new_containers(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """``set_default_discard`` records a setting; containers created later take it, earlier ones keep theirs."""
        early = docker.create("app:1", name="early", start=True)
        head = store.head().seq

        docker.set_default_discard("remove")
        assert types_since(store, head) == ["SettingChanged"]
        late = docker.create("app:1", name="late", start=True)
        explicit = docker.create("app:1", name="explicit", discard_on="stop", start=True)

        host = docker.state()
        assert host.settings == {"discard_on": "remove"}
        policies = {k: host.containers[k].discard_on for k in (early, late, explicit)}
        assert policies == {early: "stop", late: "remove", explicit: "stop"}
        docker.write_file("late", "/f", b"kept")
        docker.stop("late")
        assert container(docker, "late")[1].rw != {}

    def test_setting_the_default_to_its_current_value_records_nothing(
        self, docker: DockerHost, store: LmdbEventLog
    ):
        """The default is ``stop``: setting it again appends no event."""
        head = store.head()

        docker.set_default_discard("stop")

        assert store.head() == head

    def test_an_unknown_policy_is_refused(self, docker: DockerHost, store: LmdbEventLog):
        """Only ``stop`` and ``remove`` are policies, for the store and per container."""
        head = store.head()

        with pytest.raises(InvalidParameterError, match="invalid discard policy 'never'"):
            docker.set_default_discard("never")
        with pytest.raises(InvalidParameterError, match="invalid --discard-on value 'never'"):
            docker.create("app:1", discard_on="never")

        assert store.head() == head


class TestFileCommandRefusals:
    def test_renaming_an_image_directory_is_a_cross_device_link(
        self, docker: DockerHost, store: LmdbEventLog, web: str
    ):
        """overlay2 without redirect_dir refuses rename(2) of a lower directory with EXDEV."""
        before = fingerprint(store)

        with pytest.raises(FileSystemError) as info:
            docker.rename(web, "/app", "/application")

        assert str(info.value) == "mv /app -> /application: Invalid cross-device link"
        assert fingerprint(store) == before

    def test_renaming_an_image_file_copies_it_up(self, docker: DockerHost, web: str):
        """Renaming a lower file works: a whiteout at the old name, the file at the new."""
        docker.rename(web, "/etc/hosts", "/etc/hosts.bak")

        _host, c = container(docker, web)
        assert c.rw["/etc/hosts"].kind == WHITEOUT
        assert read_file(docker, web, "/etc/hosts.bak") == HOSTS

    def test_renaming_a_directory_made_by_the_container_works(self, docker: DockerHost, web: str):
        """A directory only in the rw layer renames with its contents."""
        docker.write_file(web, "/work/a/b.txt", b"b")

        docker.rename(web, "/work", "/done")

        assert read_file(docker, web, "/done/a/b.txt") == b"b"
        host, c = container(docker, web)
        assert host.lookup(c, "/work") is None

    def test_a_dir_recreated_over_a_whiteout_can_be_renamed(self, docker: DockerHost, web: str):
        """An opaque dir is pure upper, so rename(2) moves it; the image dir stays hidden."""
        docker.delete(web, "/app", recursive=True)
        docker.write_file(web, "/app/new.py", b"new")

        docker.rename(web, "/app", "/app2")

        host, c = container(docker, web)
        assert read_file(docker, web, "/app2/new.py") == b"new"
        assert host.lookup(c, "/app") is None
        assert host.lookup(c, "/app2/main.py") is None
        assert c.rw["/app"].kind == WHITEOUT

    def test_renaming_across_mounts_is_a_cross_device_link(self, docker: DockerHost):
        """A rename from a volume to the rw layer crosses filesystems: EXDEV."""
        docker.create("app:1", name="web", volumes=["data:/data"], start=True)
        docker.write_file("web", "/data/f", b"x")

        with pytest.raises(FileSystemError, match=r"^mv /data/f -> /f: Invalid cross-device link$"):
            docker.rename("web", "/data/f", "/f")
        with pytest.raises(FileSystemError, match="Invalid cross-device link"):
            docker.rename("web", "/etc/hosts", "/data/hosts")

    def test_removing_a_directory_needs_recursive(self, docker: DockerHost, web: str):
        """``rm`` of a directory without ``-r`` fails with EISDIR."""
        with pytest.raises(FileSystemError) as info:
            docker.delete(web, "/app")

        assert str(info.value) == "rm /app: Is a directory"

    def test_removing_a_mount_point_is_busy(self, docker: DockerHost):
        """A mount point cannot be removed, nor a directory containing one."""
        docker.create("app:1", name="web", volumes=["data:/srv/data"], start=True)

        with pytest.raises(FileSystemError, match=r"^rm /srv/data: Device or resource busy$"):
            docker.delete("web", "/srv/data", recursive=True)
        with pytest.raises(FileSystemError, match=r"^rm /srv: Device or resource busy$"):
            docker.delete("web", "/srv", recursive=True)

    def test_mkdir_without_parents_needs_the_parent(self, docker: DockerHost, web: str):
        """``mkdir`` of /a/b when /a is missing fails with ENOENT; ``mkdir -p`` makes both."""
        with pytest.raises(FileSystemError) as info:
            docker.mkdir(web, "/a/b")
        assert str(info.value) == "mkdir /a/b: No such file or directory"

        docker.mkdir(web, "/a/b", parents=True)

        _host, c = container(docker, web)
        assert set(c.rw) == {"/a", "/a/b"}

    def test_mkdir_of_an_existing_path(self, docker: DockerHost, web: str):
        """``mkdir`` of an existing dir fails with EEXIST; ``mkdir -p`` of it does nothing."""
        with pytest.raises(FileSystemError, match=r"^mkdir /etc: File exists$"):
            docker.mkdir(web, "/etc")
        docker.mkdir(web, "/etc", parents=True)

        _, c = container(docker, web)
        assert c.rw == {}

    def test_writing_over_a_directory_is_refused(self, docker: DockerHost, web: str):
        """A file cannot be written where a directory is (EISDIR)."""
        with pytest.raises(FileSystemError, match=r"^write /app: Is a directory$"):
            docker.write_file(web, "/app", b"x")

    def test_a_file_cannot_be_a_parent(self, docker: DockerHost, web: str):
        """Writing below a regular file fails with ENOTDIR."""
        with pytest.raises(FileSystemError, match=r"^write /etc/hosts/x: Not a directory$"):
            docker.write_file(web, "/etc/hosts/x", b"x")

    def test_deleting_a_missing_file(self, docker: DockerHost, web: str):
        """``rm`` of a path nobody has fails with ENOENT."""
        with pytest.raises(FileSystemError, match=r"^rm /nope: No such file or directory$"):
            docker.delete(web, "/nope")

    def test_a_relative_path_is_refused(self, docker: DockerHost, web: str):
        """Paths inside a container are absolute."""
        with pytest.raises(InvalidParameterError, match="must be absolute"):
            docker.write_file(web, "etc/hosts", b"x")
