"""Mount specs (core.mounts): ``-v``, ``--mount`` and ``--tmpfs`` parsed with Docker's rules and messages."""

from __future__ import annotations

import pytest

from dockstate.core.commands import DockerHost
from dockstate.core.errors import InvalidMountError
from dockstate.core.mounts import (
    BIND,
    TMPFS,
    VOLUME,
    Mount,
    check_duplicates,
    parse_mount_flag,
    parse_size,
    parse_tmpfs_flag,
    parse_volume_flag,
)
from dockstate.eventlog import LmdbEventLog
from tests.core.helpers import fingerprint


class TestVolumeFlag:
    def test_a_bare_path_is_an_anonymous_volume(self):
        """``-v /data``: no source, so a new anonymous volume."""
        m = parse_volume_flag("/data")

        assert (m.type, m.source, m.target, m.anonymous, m.rw) == (VOLUME, "", "/data", True, True)

    def test_a_name_source_is_a_named_volume(self):
        """``-v name:/data``: a named volume, mode ``z`` as the daemon labels it."""
        m = parse_volume_flag("data:/srv/data")

        assert (m.type, m.source, m.target, m.mode, m.anonymous) == (
            VOLUME,
            "data",
            "/srv/data",
            "z",
            False,
        )

    @pytest.mark.parametrize(
        ("spec", "rw", "nocopy"),
        [
            ("data:/d:ro", False, False),
            ("data:/d:rw", True, False),
            ("data:/d:nocopy", True, True),
            ("data:/d:ro,nocopy", False, True),
            ("data:/d:z", True, False),
        ],
    )
    def test_volume_options(self, spec: str, rw: bool, nocopy: bool):
        """``ro`` / ``rw`` and ``nocopy`` are read from the third field."""
        m = parse_volume_flag(spec)

        assert (m.rw, m.nocopy, m.mode) == (rw, nocopy, spec.split(":")[2])

    def test_an_absolute_source_is_a_bind_that_creates_its_source(self):
        """``-v /host:/ctr``: a bind, rprivate by default, whose missing source is created."""
        m = parse_volume_flag("/host/dir/:/ctr")

        assert (m.type, m.source, m.target, m.propagation, m.create_source) == (
            BIND,
            "/host/dir",
            "/ctr",
            "rprivate",
            True,
        )

    def test_bind_options(self):
        """A bind takes ``ro`` and a propagation mode."""
        m = parse_volume_flag("/host:/ctr:ro,rshared")

        assert (m.rw, m.propagation, m.mode) == (False, "rshared", "ro,rshared")

    def test_the_target_is_normalised(self):
        """``/a/../b/`` mounts at ``/b``."""
        assert parse_volume_flag("data:/a/../b/").target == "/b"

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("/foo:ro", "invalid volume specification: '/foo:ro'"),
            ("a:/b:ro:x", "invalid volume specification: 'a:/b:ro:x'"),
            ("", "invalid volume specification: ''"),
            ("data:/d:bogus", "invalid mode: bogus"),
            ("data:/d:ro,rw", "invalid mode: ro,rw"),
            ("data:/d:nocopy,nocopy", "invalid mode: nocopy,nocopy"),
            ("data:rel", "invalid mount path: 'rel' mount path must be absolute"),
            ("data:/", "invalid specification: destination can't be '/'"),
        ],
    )
    def test_a_bad_spec_is_refused_with_dockers_message(self, spec: str, message: str):
        """Malformed ``-v`` specs fail as Docker's Linux parser fails them."""
        with pytest.raises(InvalidMountError) as info:
            parse_volume_flag(spec)

        assert str(info.value) == message


class TestMountFlag:
    def test_the_default_type_is_volume(self):
        """``--mount src=data,dst=/d`` is a named volume."""
        m = parse_mount_flag("src=data,dst=/d")

        assert (m.type, m.source, m.target, m.flag) == (VOLUME, "data", "/d", "--mount")

    @pytest.mark.parametrize("key", ["target", "dst", "destination"])
    def test_target_has_three_spellings(self, key: str):
        """``target``, ``dst`` and ``destination`` are the same key."""
        assert parse_mount_flag(f"type=volume,source=v1,{key}=/x").target == "/x"

    @pytest.mark.parametrize(
        ("field", "rw"),
        [
            ("readonly", False),
            ("ro", False),
            ("readonly=true", False),
            ("readonly=0", True),
            ("ro=false", True),
        ],
    )
    def test_readonly_may_be_bare_or_a_bool(self, field: str, rw: bool):
        """``readonly`` alone means true; ``readonly=false`` keeps it writable."""
        assert parse_mount_flag(f"type=volume,src=v1,dst=/x,{field}").rw is rw

    def test_a_volume_without_source_is_anonymous(self):
        """``--mount type=volume,dst=/x`` makes an anonymous volume."""
        m = parse_mount_flag("type=volume,dst=/x")

        assert (m.source, m.anonymous) == ("", True)

    def test_a_bind_does_not_create_its_source_unless_asked(self):
        """``--mount type=bind`` refuses a missing source; ``bind-create-src`` lifts that."""
        plain = parse_mount_flag("type=bind,source=/h,target=/c")
        create = parse_mount_flag("type=bind,source=/h,target=/c,bind-create-src")

        assert (plain.type, plain.create_source, create.create_source) == (BIND, False, True)
        assert plain.propagation == "rprivate"

    def test_tmpfs_size_and_mode(self):
        """``tmpfs-size`` in bytes (with unit) and ``tmpfs-mode`` in octal."""
        m = parse_mount_flag("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=1700")

        assert (m.type, m.size, m.tmpfs_mode) == (TMPFS, 64 << 20, 0o1700)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("type=volume,dst=/x,foo=bar", "unknown option 'foo' in 'foo=bar'"),
            ("type=volume,dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
            ("type=volume,target", "invalid field 'target' must be a key=value pair"),
            (
                "type=volume,src=v1,dst=/x,bind-propagation=shared",
                "cannot mix 'bind-*' options with mount type 'volume'",
            ),
            (
                "type=bind,src=/h,dst=/x,volume-nocopy",
                "cannot mix 'volume-*' options with mount type 'bind'",
            ),
            (
                "type=volume,src=v1",
                'invalid mount config for type "volume": field Target must not be empty',
            ),
            (
                "type=bind,dst=/x",
                'invalid mount config for type "bind": field Source must not be empty',
            ),
            (
                "type=tmpfs,src=x,dst=/x",
                'invalid mount config for type "tmpfs": field Source must not be specified',
            ),
            ("type=npipe,dst=/x", 'invalid mount config: mount type unknown: "npipe"'),
            (
                "type=volume,dst=/x,readonly=maybe",
                "invalid value for 'readonly' in 'readonly=maybe': maybe",
            ),
            ("type=volume,src=v1,dst=rel", "invalid mount path: 'rel' mount path must be absolute"),
        ],
    )
    def test_a_bad_spec_is_refused_with_dockers_message(self, spec: str, message: str):
        """Malformed ``--mount`` specs fail with the CLI's and daemon's words."""
        with pytest.raises(InvalidMountError) as info:
            parse_mount_flag(spec)

        assert str(info.value) == message


class TestTmpfsFlag:
    def test_options_are_mount_options(self):
        """``--tmpfs /run:rw,noexec,size=65536k,mode=1700``."""
        m = parse_tmpfs_flag("/run:rw,noexec,size=65536k,mode=1700")

        assert (m.type, m.target, m.rw, m.size, m.tmpfs_mode, m.flag) == (
            TMPFS,
            "/run",
            True,
            65536 << 10,
            0o1700,
            "--tmpfs",
        )

    def test_defaults(self):
        """No options: writable, unlimited, mode 1777."""
        m = parse_tmpfs_flag("/tmp")

        assert (m.rw, m.size, m.tmpfs_mode) == (True, 0, 0o1777)

    def test_ro(self):
        """``ro`` makes the tmpfs read-only."""
        assert parse_tmpfs_flag("/tmp:ro").rw is False


@pytest.mark.parametrize(
    ("text", "size"), [("100", 100), ("1k", 1024), ("2M", 2 << 20), ("1g", 1 << 30), ("5kb", 5120)]
)
def test_sizes_take_binary_units(text: str, size: int):
    """Sizes are bytes with an optional k/m/g (1024-based) unit."""
    assert parse_size(text) == size


def test_a_bad_size_is_refused():
    """A size that is not a number with a unit is refused."""
    with pytest.raises(InvalidMountError, match=r"^invalid size: 'lots'$"):
        parse_size("lots")


def test_mounts_round_trip_through_their_event_form():
    """``to_data`` / ``from_data`` (what ContainerCreated records) keep every field."""
    for spec in ("/data", "data:/d:ro,nocopy", "/h:/c:rshared"):
        m = parse_volume_flag(spec)
        assert Mount.from_data(m.to_data()) == m


def test_two_mounts_at_one_target_are_refused():
    """Docker refuses the same destination twice, whatever the flags."""
    with pytest.raises(InvalidMountError, match=r"^Duplicate mount point: /data$"):
        check_duplicates([parse_volume_flag("a1:/data"), parse_tmpfs_flag("/data")])


def test_create_refuses_duplicate_targets_before_recording(docker: DockerHost, store: LmdbEventLog):
    """``create -v x:/data --tmpfs /data`` is refused and appends nothing."""
    before = fingerprint(store)

    with pytest.raises(InvalidMountError, match="Duplicate mount point: /data"):
        docker.create("app:1", volumes=["x1:/data"], tmpfs=["/data/"])

    assert fingerprint(store) == before
