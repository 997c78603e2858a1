"""Replaying a recorded session through the current code, and where it diverges.

Each recorded command is executed again against a destination store, with the
ids and times taken from the recording, so that equal behaviour gives equal
events. The events it produces are compared with the recorded ones; the first
command whose events differ is the divergence, reported with the expected and
actual events and the difference in state they lead to.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgpack

from dockstate.core.commands import DockerHost
from dockstate.core.errors import DockstateError
from dockstate.core.names import RandomIds, RecordedIds
from dockstate.core.state import Host
from dockstate.eventlog.envelope import Command, Envelope, NewEvent
from dockstate.eventlog.log import EventLog
from dockstate.projections import _gc, snapshot
from dockstate.projections.compare import diff_hosts
from dockstate.projections.ledger import Ledger
from dockstate.tools.exportfile import ExportFile

#: ids for a replayed command that draws more than it recorded (it diverges anyway).
_FALLBACK_IDS = RandomIds(random.Random(0))

#: Commands whose inputs are not in the log (an archive, a build context): replayed as facts.
FACT_COMMANDS = frozenset({"image load", "image build", "build"})


@dataclasses.dataclass(slots=True)
class Divergence:
    seq: int
    command: str
    args: dict[str, Any]
    expected: list[dict[str, Any]]
    got: list[dict[str, Any]]
    error: str | None
    state: list[str]


@dataclasses.dataclass(slots=True)
class Report:
    commands: int = 0
    events: int = 0
    divergence: Divergence | None = None

    @property
    def matched(self) -> bool:
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "commands": self.commands,
            "events": self.events,
            "divergence": None if self.divergence is None else dataclasses.asdict(self.divergence),
        }


def command_groups(events: Sequence[Envelope]) -> Iterator[list[Envelope]]:
    """Events grouped by the command that produced them, in order."""
    group: list[Envelope] = []
    for env in events:
        cmd = env.cmd  # Envelope.begins_command, spelled out: once per replayed event
        if group and (cmd is None or cmd[2] == 0):
            yield group
            group = []
        group.append(env)
    if group:
        yield group


def _event_json(env: Envelope) -> dict[str, Any]:
    return {"seq": env.seq, "type": env.type, "data": _plain(env.data)}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _same(a: Envelope, b: Envelope) -> bool:
    if a.type != b.type:
        return False
    if a.data == b.data:
        return True
    # A list where the other has a tuple, say: compare as they would be stored.
    pack = msgpack.packb
    return bool(pack(a.data) == pack(b.data) or pack(_plain(a.data)) == pack(_plain(b.data)))


#: The events whose data holds an id or a name the command drew.
_DRAWN: Final = frozenset({"VolumeCreated", "ContainerCreated"})


def _recorded_ids(group: Sequence[Envelope]) -> RecordedIds | None:
    """The ids the command drew when it was recorded (None: it drew none)."""
    if len(group) == 1 and group[0].type not in _DRAWN:
        return None  # most commands: one event, which names nothing drawn
    ids: list[str] = []
    names: list[str] = []
    cmd = group[0].cmd
    unnamed_create = cmd is not None and cmd[0] == "volume create" and cmd[1].get("name") is None
    for env in group:
        if env.type == "VolumeCreated" and (env.data.get("anonymous") or unnamed_create):
            ids.append(env.data["name"])  # a name the command drew with new_id()
        elif env.type == "ContainerCreated":
            ids.append(env.data["container"])
            names.append(env.data["name"])
    return RecordedIds(ids, names, _FALLBACK_IDS) if ids or names else None


_FILE_DATA: Final = ("FileWritten", "FileAppended")


def _data_of(group: Sequence[Envelope], xf: ExportFile, *types: str) -> bytes:
    for env in group:
        if env.type in types:
            return xf.read_blobs(env.data.get("chunks") or ())
    return b""


def execute(
    host: DockerHost, name: str, args: Mapping[str, Any], group: Sequence[Envelope], xf: ExportFile
) -> None:
    """Run one recorded command again."""
    a = args
    if name in ("write", "append"):  # most recorded commands: tested first
        # `_data_of`, spelled out for the usual one event of one chunk (a blob the
        # export holds; anything else, a missing blob included, goes the long way)
        env = group[0]
        chunks = env.data.get("chunks") if env.type in _FILE_DATA else None
        data = None
        if type(chunks) is tuple and len(chunks) == 1 and type(chunks[0]) is bytes:
            data = xf.blobs.get(chunks[0])
        if data is None:
            data = _data_of(group, xf, *_FILE_DATA)
        host.write_file(
            a["container"], a["path"], data, append=name == "append", mode=a.get("mode", 0o644)
        )
    elif name in ("create", "run"):
        host.create(
            a["image"],
            name=a.get("name"),
            volumes=a.get("volumes") or (),
            mounts=a.get("mounts") or (),
            tmpfs=a.get("tmpfs") or (),
            auto_remove=a.get("auto_remove", False),
            discard_on=a.get("discard_on"),
            command=a.get("command", ""),
            start=name == "run",
        )
    elif name in ("start", "stop", "pause", "unpause", "restart"):
        getattr(host, name)(a["container"])
    elif name == "kill":
        host.kill(a["container"], a.get("signal", "SIGKILL"))
    elif name == "rm" and "path" in a:
        host.delete(a["container"], a["path"], recursive=a.get("recursive", False))
    elif name == "rm":
        host.remove(a["container"], force=a.get("force", False), volumes=a.get("volumes", False))
    elif name == "mkdir":
        host.mkdir(
            a["container"], a["path"], parents=a.get("parents", False), mode=a.get("mode", 0o755)
        )
    elif name == "mv":
        host.rename(a["container"], a["path"], a["dest"])
    elif name == "chmod":
        host.chmod(a["container"], a["path"], a["mode"])
    elif name == "volume create":
        host.volume_create(
            a.get("name"),
            driver=a.get("driver", "local"),
            labels=a.get("labels"),
            options=a.get("options"),
        )
    elif name == "volume rm":
        host.volume_remove(list(a["names"]), force=a.get("force", False))
    elif name == "volume prune":
        host.volume_prune(all_volumes=a.get("all", False))
    elif name == "host mkdir":
        host.host_mkdir(a["path"], parents=a.get("parents", False))
    elif name == "host write":
        host.host_write(
            a["path"], _data_of(group, xf, "HostFileWritten"), append=a.get("append", False)
        )
    elif name == "config":
        host.set_default_discard(a["discard_on"])
    elif name == "image tag":
        host.tag(a["source"], a["target"])
    elif name == "image rm":
        host.remove_image(a["image"], force=a.get("force", False))
    else:
        raise DockstateError(f"cannot replay command {name!r}")


def _as_new(env: Envelope) -> NewEvent:
    return NewEvent(env.type, env.data, env.subjects, env.ts)


def _groups_as_facts(
    groups: Sequence[Sequence[Envelope]],
) -> list[tuple[Command | None, str, list[NewEvent]]]:
    out = []
    for group in groups:
        first = group[0]
        cmd = None if first.cmd is None else Command(first.cmd[0], first.cmd[1])
        out.append((cmd, first.session, [_as_new(e) for e in group]))
    return out


def missing_seeds(state: Host, xf: ExportFile) -> list[Envelope]:
    """The export's image registrations that ``state`` does not hold yet."""
    wanted = []
    for env in xf.seeds:
        d = env.data
        if env.type == "LayerRegistered" and d["chain_id"] in state.layers:
            continue
        if env.type == "ImageRegistered" and d["image_id"] in state.images:
            continue
        if env.type == "ImageTagged" and state.tags.get(d["ref"]) == d["image_id"]:
            continue
        wanted.append(env)
    return wanted


def seed(host: DockerHost, xf: ExportFile) -> int:
    """Put the export's blobs and the images its stretch uses into the destination."""
    wanted = missing_seeds(host.state(), xf)
    # keep each recorded command's events together, so a full import is byte-identical
    host.record(_groups_as_facts(list(command_groups(wanted))), blobs=xf.blobs.values())
    return len(wanted)


StepFn = Callable[[Sequence[Envelope], Sequence[Envelope], str | None], None]


def replay(
    xf: ExportFile,
    dest: EventLog,
    *,
    until: int | None = None,
    step: StepFn | None = None,
) -> Report:
    """Re-execute the export's commands against ``dest`` and compare, command by command."""
    host = DockerHost(dest, ids=RandomIds(random.Random(0)))
    seed(host, xf)
    # The recording is expected to do to the destination what it did to its own store:
    # the expected state starts as a copy of the destination after seeding, so what the
    # destination held before (another session, say) is not reported as a difference.
    # It is folded only when a divergence needs it: while the events match, it is the
    # destination's state.
    start = _copy(host.state(), dest.read_blobs)
    # The loop runs only dockstate's own commands and folds, which make no reference
    # cycles: the collector's passes over the growing state would be wasted (~15%).
    with _gc.paused():
        return _replay_commands(xf, host, start, until, step)


def _replay_commands(
    xf: ExportFile, host: DockerHost, start: Host, until: int | None, step: StepFn | None
) -> Report:
    report = Report()
    commands = events = 0  # kept in locals, put in the report when it is returned
    for group in command_groups(xf.events):
        first = group[0]
        if until is not None and first.seq > until:
            break
        cmd = first.cmd
        name, args = (cmd[0], cmd[1]) if cmd else ("", {})
        error: str | None = None
        got: list[Envelope] = []
        try:
            if not name or name in FACT_COMMANDS:
                got = host.record(_groups_as_facts([group]))
            else:
                # A command that draws no id gets the fallback's, and diverges anyway.
                if len(group) == 1 and first.type not in _DRAWN:
                    host.ids = _FALLBACK_IDS  # `_recorded_ids` would say None
                else:
                    host.ids = _recorded_ids(group) or _FALLBACK_IDS
                host.session = first.session
                host.next_ts = first.ts
                host.last_events = []
                execute(host, name, args, group, xf)
                got = host.last_events
        except DockstateError as exc:
            error = str(exc)
        finally:
            host.next_ts = None
        commands += 1
        if step is not None:
            step(group, got, error)
        if len(got) == len(group) == 1:  # most commands: `_same` on one pair, spelled out
            a, b = group[0], got[0]
            same = a.type == b.type and (a.data == b.data or _same(a, b))
        else:
            same = len(got) == len(group) and all(map(_same, group, got))
        if not same:
            report.commands, report.events = commands, events
            report.divergence = _divergence(xf, start, host, group=group, got=got, error=error)
            return report
        events += len(group)
    report.commands, report.events = commands, events
    return report


def _divergence(
    xf: ExportFile,
    start: Host,
    host: DockerHost,
    *,
    group: Sequence[Envelope],
    got: Sequence[Envelope],
    error: str | None,
) -> Divergence:
    first = group[0]
    name, args = (first.cmd[0], dict(first.cmd[1])) if first.cmd else ("", {})
    at = next(
        (a.seq for a, b in zip(group, got, strict=False) if not _same(a, b)),
        group[min(len(got), len(group) - 1)].seq,
    )
    try:
        start.apply_all(e for e in xf.events if e.seq <= group[-1].seq)
        state = diff_hosts(start, host.state()).lines()
    except DockstateError as exc:
        # the recording needs a state the destination does not have (an export that
        # starts mid-session, say): the commands are refused too, and this says why
        state = [f"the recorded events do not apply to the destination: {exc}"]
    return Divergence(
        seq=at,
        command=name,
        args=_plain(args),
        expected=[_event_json(e) for e in group],
        got=[_event_json(e) for e in got],
        error=error,
        state=state,
    )


def _copy(host: Host, read_blobs: Callable[[Sequence[bytes]], bytes]) -> Host:
    """A state of one's own to fold into, through the snapshot codec."""
    copy, _ledger = snapshot.decode(snapshot.encode(host, Ledger()), read_blobs)
    return copy
