"""Event types (core.events): tags, records round-tripping through the log, subjects, evolution."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.core import events as ev
from dockstate.core.commands import DockerHost
from dockstate.core.lifecycle import Trigger
from dockstate.eventlog import InMemoryEventLog, LmdbEventLog, NewEvent
from tests.conftest import FakeClock

CID = "c" * 64
DIGEST = b"\x01" * 32

#: One instance of every event type, with every field set away from its default.
SAMPLES: list[ev.Event] = [
    ev.LayerRegistered(
        chain_id="sha256:" + "a" * 64,
        diff_id="sha256:" + "b" * 64,
        parent=None,
        size=10,
        table=(DIGEST,),
        entries=3,
    ),
    ev.ImageRegistered(
        image_id="sha256:" + "9" * 64,
        config=(DIGEST,),
        diff_ids=("sha256:" + "b" * 64,),
        chain_id="sha256:" + "a" * 64,
        volumes=("/data",),
        created="2024-01-01T00:00:00Z",
        size=10,
    ),
    ev.ImageTagged(image_id="sha256:" + "9" * 64, ref="app:1"),
    ev.ImageUntagged(image_id="sha256:" + "9" * 64, ref="app:1"),
    ev.ImageRemoved(image_id="sha256:" + "9" * 64),
    ev.ContainerCreated(
        container=CID,
        name="web",
        image_id="sha256:" + "9" * 64,
        image_ref="app:1",
        mounts=({"type": "volume", "source": "data", "target": "/data", "rw": False},),
        tmpfs=({"type": "tmpfs", "source": "", "target": "/run", "size": 1024},),
        discard_on="remove",
        auto_remove=True,
        command="sleep 1",
    ),
    ev.ContainerStarted(container=CID),
    ev.ContainerPaused(container=CID),
    ev.ContainerUnpaused(container=CID),
    ev.ContainerStopped(container=CID, exit_code=143),
    ev.ContainerKilled(container=CID, signal="SIGHUP", exit_code=129),
    ev.ContainerDied(container=CID, exit_code=3),
    ev.ContainerRestarted(container=CID),
    ev.ContainerRemoved(container=CID),
    ev.FileWritten(container=CID, path="/f", volume="data", chunks=(DIGEST,), size=4, mode=0o600),
    ev.FileAppended(container=CID, path="/f", host_path="/srv", chunks=(DIGEST,), size=4),
    ev.FileDeleted(container=CID, path="/f"),
    ev.DirCreated(container=CID, path="/d", mode=0o700),
    ev.FileRenamed(container=CID, path="/f", dest="/g"),
    ev.FileModeChanged(container=CID, path="/f", mode=0o400),
    ev.VolumeCreated(name="data", anonymous=True, labels={"k": "v"}, options={"o": "1"}),
    ev.VolumeRemoved(name="data"),
    ev.VolumePopulated(name="data", container=CID, target="/data"),
    ev.HostFileWritten(path="/srv/f", chunks=(DIGEST,), size=4, mode=0o600, append=True),
    ev.HostDirCreated(path="/srv", mode=0o700),
    ev.SettingChanged(key="discard_on", value="remove"),
]


def test_there_is_a_sample_of_every_event_type():
    """The samples cover every registered tag (a new event type must be added here)."""
    assert sorted(type(e).TAG for e in SAMPLES) == sorted(ev.EVENT_TYPES)


def test_tags_are_stable_names_not_module_paths():
    """Each class is registered under its own class name, which is its tag."""
    for tag, cls in ev.EVENT_TYPES.items():
        assert tag == cls.TAG == cls.__name__


def test_a_tag_cannot_be_registered_twice():
    """Registering a taken tag fails loudly."""
    with pytest.raises(ValueError, match="taken"):
        ev._register(ev.ContainerStarted)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).TAG)
def test_an_event_round_trips_through_the_log(event: ev.Event, tmp_path):
    """``to_data`` stored in an LMDB log and read back with ``from_record`` is the same event."""
    log = LmdbEventLog(tmp_path / "s", clock=FakeClock(), durable=False)
    try:
        log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
        (env,) = list(log.read())
    finally:
        log.close()

    back = ev.from_record(env.type, env.data)
    assert _plain(back) == _plain(event)
    assert type(back) is type(event)
    assert env.subjects == event.subjects()


def _plain(event: ev.Event) -> dict[str, Any]:
    """Fields with nested mappings turned into dicts, to compare across msgpack."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict | tuple | list):
            if isinstance(v, dict):
                return {k: norm(x) for k, x in v.items()}
            return tuple(norm(x) for x in v)
        return v

    return {f.name: norm(getattr(event, f.name)) for f in dataclasses.fields(event)}


@given(
    path=st.text(min_size=1, max_size=20).map(lambda s: "/" + s),
    size=st.integers(0, 2**40),
    mode=st.integers(0, 0o7777),
)
def test_file_events_round_trip_any_path_and_size(path: str, size: int, mode: int):
    """Arbitrary paths, sizes and modes survive the in-memory log's codec."""
    event = ev.FileWritten(container=CID, path=path, chunks=(DIGEST,), size=size, mode=mode)
    log = InMemoryEventLog(clock=FakeClock())
    log.append([NewEvent(event.TAG, event.to_data(), event.subjects())])
    (env,) = list(log.read())

    assert ev.from_record(env.type, env.data) == event


def test_subjects_index_the_objects_an_event_is_about():
    """Container, volume, image and host-path subjects are spelled ``c:``, ``v:``, ``i:``, ``h:``."""
    created = SAMPLES[5]
    assert created.subjects() == ("c:" + CID, "i:sha256:" + "9" * 64, "v:data")
    assert ev.FileWritten(container=CID, path="/f", volume="data").subjects() == (
        "c:" + CID,
        "v:data",
    )
    assert ev.FileWritten(container=CID, path="/f", host_path="/srv").subjects() == (
        "c:" + CID,
        "h:/srv",
    )
    assert ev.LayerRegistered(
        chain_id="sha256:1", diff_id="d", parent=None, size=0, table=(), entries=0
    ).subjects() == ("l:sha256:1",)
    assert ev.SettingChanged(key="k", value="v").subjects() == ()


def test_old_records_without_new_fields_get_the_defaults():
    """Evolution is additive: a record lacking a later field decodes with its default."""
    event = ev.from_record(
        "ContainerCreated", {"container": CID, "name": "web", "image_id": "i", "image_ref": "r"}
    )

    assert isinstance(event, ev.ContainerCreated)
    assert (event.discard_on, event.auto_remove, event.mounts) == ("stop", False, ())


def test_unknown_fields_from_a_newer_writer_are_ignored():
    """A field this version does not know is dropped, not an error."""
    event = ev.from_record("ContainerStarted", {"container": CID, "runtime": "runc"})

    assert event == ev.ContainerStarted(container=CID)


def test_an_older_version_is_upcast(monkeypatch: pytest.MonkeyPatch):
    """A record with ``_v`` below the class's VERSION goes through the registered upcasters."""

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Renamed(ev.Event):
        TAG: ClassVar[str] = "TestRenamed"
        VERSION: ClassVar[int] = 2
        new_name: str

    monkeypatch.setitem(ev.EVENT_TYPES, "TestRenamed", Renamed)
    monkeypatch.setitem(ev.UPCASTERS, ("TestRenamed", 1), lambda d: {"new_name": d.pop("old_name")})

    assert ev.from_record("TestRenamed", {"old_name": "x"}) == Renamed(new_name="x")
    assert ev.from_record("TestRenamed", {"_v": 2, "new_name": "y"}) == Renamed(new_name="y")
    assert Renamed(new_name="z").to_data() == {"new_name": "z", "_v": 2}


def test_container_triggers_cover_the_lifecycle_events():
    """Every container event but creation moves the lifecycle, by a trigger of the Machine."""
    lifecycle_tags = {
        cls.TAG
        for cls in ev.EVENT_TYPES.values()
        if issubclass(cls, ev.ContainerEvent)
        and not issubclass(cls, ev.FileEvent)
        and cls is not ev.ContainerCreated
    }
    assert set(ev.CONTAINER_TRIGGERS) == lifecycle_tags
    assert set(ev.CONTAINER_TRIGGERS.values()) <= {t.value for t in Trigger}


def test_commands_only_record_registered_event_types(docker: DockerHost, store: LmdbEventLog):
    """What a DockerHost appends decodes with the typed decoder."""
    docker.create("app:1", name="web", volumes=["data:/var/lib/data", "/anon"], start=True)
    docker.write_file("web", "/var/lib/data/x", b"x")
    docker.remove("web", force=True, volumes=True)

    for env in store.read():
        event = ev.from_record(env.type, env.data)
        assert env.subjects == event.subjects()


def _dataclass_twin(cls: type[ev.Event]) -> type[Any]:
    """The class as the dataclass decorator alone makes it, with its own ``__init__``."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory))
        for f in dataclasses.fields(cls)
    ]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True, kw_only=True)


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=lambda c: c.TAG)
def test_each_event_class_is_built_and_turned_into_data_as_its_dataclass_would(cls):
    """The per-class ``__init__`` and ``to_data`` take what the dataclass's take, with the
    same defaults (a default factory makes a fresh value each time), set every field, and
    give the fields in their order (the order the record is packed in)."""
    twin = _dataclass_twin(cls)
    sample = next(e for e in SAMPLES if type(e) is cls)
    given_fields = {f.name: getattr(sample, f.name) for f in dataclasses.fields(cls)}

    built = cls(**given_fields)

    assert built == sample
    assert list(built.to_data().items()) == [
        *given_fields.items(),
        *([("_v", cls.VERSION)] if cls.VERSION > 1 else []),
    ]
    assert built.to_data() == ev.Event.to_data(built)  # the generic version
    required = {
        f.name: given_fields[f.name]
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert dataclasses.asdict(cls(**required)) == dataclasses.asdict(twin(**required))
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(cls(**required), f.name) is not getattr(cls(**required), f.name)
    for name in required:
        missing = {k: v for k, v in required.items() if k != name}
        with pytest.raises(TypeError, match=f"missing 1 required keyword-only argument: '{name}'"):
            cls(**missing)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        cls(**required, nonsense=1)
    with pytest.raises(TypeError, match="positional"):
        cls(*required.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(next(iter(required)), None)
