"""Docker's JSON shapes for dockstate's objects: inspect, ps, volume, image, events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from dockstate.core.lifecycle import State
from dockstate.core.mounts import BIND, TMPFS, VOLUME
from dockstate.core.state import Container, Host, Image, Volume
from dockstate.eventlog.envelope import Envelope
from dockstate.projections import views
from dockstate.projections.query import Reader
from dockstate.tools.format import (
    ZERO_TIME,
    ago,
    docker_time,
    human_duration,
    human_size,
    parse_rfc3339,
    rfc3339,
    rfc3339_seconds,
)


@lru_cache(maxsize=256)
def _config_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def image_config(reader: Reader, image: Image) -> dict[str, Any]:
    """The image's config JSON as stored (empty when it is not valid JSON)."""
    return _config_json(reader.read_blobs(image.config)) if image.config else {}


def container_command(reader: Reader, host: Host, c: Container) -> str:
    if c.command:
        return c.command
    image = host.images.get(c.image_id)
    if image is None:
        return ""
    cfg = image_config(reader, image).get("config") or {}
    parts = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    return " ".join(parts)


def status(c: Container, now: int) -> str:
    """``docker ps`` STATUS (Docker's ``State.String``)."""
    if c.state == State.RUNNING:
        return f"Up {human_duration((now - c.started_at) / 1e9)}"
    if c.state == State.PAUSED:
        return f"Up {human_duration((now - c.started_at) / 1e9)} (Paused)"
    if c.state == State.EXITED:
        return f"Exited ({c.exit_code}) {ago(c.finished_at, now)}"
    if c.state == State.DEAD:
        return "Dead"
    if c.state == State.REMOVED:
        return "Removed"
    return "Created"


def truncate_command(cmd: str, width: int = 20) -> str:
    quoted = f'"{cmd}"'
    if len(cmd) > width:
        quoted = f'"{cmd[: width - 1]}…"'
    return quoted


def mounts_json(c: Container) -> list[dict[str, Any]]:
    out = []
    for m in c.mounts:
        if m.type == TMPFS and m.flag == "--tmpfs":
            continue  # --tmpfs lives in HostConfig.Tmpfs, not in Mounts
        item: dict[str, Any] = {"Type": m.type}
        if m.type == VOLUME:
            item["Name"] = m.source
            item["Source"] = f"/var/lib/docker/volumes/{m.source}/_data"
        elif m.type == BIND:
            item["Source"] = m.source
        else:
            item["Source"] = ""
        item["Destination"] = m.target
        if m.type == VOLUME:
            item["Driver"] = "local"
        item["Mode"] = m.mode
        item["RW"] = m.rw
        item["Propagation"] = m.propagation
        out.append(item)
    return out


def container_inspect(reader: Reader, host: Host, c: Container) -> dict[str, Any]:
    image = host.images.get(c.image_id)
    cfg = (image_config(reader, image).get("config") or {}) if image else {}
    cmd = c.command.split() if c.command else list(cfg.get("Cmd") or [])
    running = c.state in (State.RUNNING, State.PAUSED)
    return {
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": cmd[0] if cmd else "",
        "Args": cmd[1:],
        "State": {
            "Status": c.state,
            "Running": running,
            "Paused": c.state == State.PAUSED,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": c.state == State.DEAD,
            "Pid": 0,
            "ExitCode": c.exit_code,
            "Error": "",
            "StartedAt": rfc3339(c.started_at),
            "FinishedAt": rfc3339(c.finished_at) if c.finished_at else ZERO_TIME,
        },
        "Image": c.image_id,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "Binds": [
                f"{m.source}:{m.target}" + (f":{m.mode}" if m.mode and m.mode != "z" else "")
                for m in c.mounts
                if m.flag == "-v" and m.source and m.type != TMPFS
            ]
            or None,
            "AutoRemove": c.auto_remove,
            "Tmpfs": {m.target: "" for m in c.mounts if m.flag == "--tmpfs"} or None,
        },
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "Mounts": mounts_json(c),
        "Config": {
            "Image": c.image_ref,
            "Cmd": cmd or None,
            "Volumes": {m.target: {} for m in c.mounts if m.type == VOLUME and m.anonymous} or None,
            "WorkingDir": cfg.get("WorkingDir", ""),
            "Env": cfg.get("Env"),
            "Labels": cfg.get("Labels") or {},
        },
        # dockstate's own facts, beside Docker's fields
        "DockstateDiscardOn": c.discard_on,
        "SizeRw": views.rw_size(c),
    }


def ps_json(reader: Reader, host: Host, c: Container, now: int) -> dict[str, Any]:
    # Docker's Mounts column: each mount's Name, else its Source, ellipsized to 15 (trunc is on)
    mounts = ",".join(_ellipsis(m.get("Name") or m["Source"], 15) for m in mounts_json(c))
    return {
        "Command": truncate_command(container_command(reader, host, c)),
        "CreatedAt": docker_time(c.created),
        "ID": c.id[:12],
        "Image": c.image_ref,
        "Labels": "",
        "LocalVolumes": str(sum(1 for m in c.mounts if m.type == VOLUME)),
        "Mounts": mounts,
        "Names": c.name,
        "Networks": "bridge",
        "Platform": None,
        "Ports": "",
        "RunningFor": ago(c.created, now),
        "Size": human_size(views.rw_size(c)),
        "State": c.state,
        "Status": status(c, now),
    }


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def volume_inspect(v: Volume) -> dict[str, Any]:
    return {
        "CreatedAt": rfc3339_seconds(v.created),
        "Driver": v.driver,
        "Labels": v.labels or None,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options or None,
        "Scope": "local",
    }


def volume_ls_json(v: Volume) -> dict[str, Any]:
    return {
        "Driver": v.driver,
        "Labels": ",".join(f"{k}={val}" for k, val in v.labels.items()),
        "Links": "N/A",
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": "local",
        "Size": "N/A",
    }


def split_ref(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        return ref, "<none>"
    return repo, tag


def image_created(reader: Reader, image: Image) -> str:
    return str(image_config(reader, image).get("created") or image.created or "")


def image_created_ts(reader: Reader, image: Image) -> int:
    """When the image was made (its config's ``created``, as Docker lists it), in ns.

    An image whose config carries no valid time falls back to when it was registered here.
    """
    ts = parse_rfc3339(image_created(reader, image))
    return image.registered_ts if ts is None else ts


def image_inspect(reader: Reader, host: Host, image: Image) -> dict[str, Any]:
    cfg = image_config(reader, image)
    return {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": [],
        "Parent": "",
        "Comment": cfg.get("comment", ""),
        "Created": image_created(reader, image),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config"),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": views.image_size(host, image.id),
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": ZERO_TIME},
        # dockstate: the ChainID of each layer, as the layer store keys it
        "ChainIDs": list(image.chain_ids),
    }


# -- docker events ----------------------------------------------------------------


def docker_events(env: Envelope, host_before: Host | None = None) -> Iterator[dict[str, Any]]:
    """The Docker event messages one dockstate event stands for (none for file events)."""
    d = env.data
    t = env.type

    def msg(
        kind: str, action: str, actor: str, attrs: dict[str, Any], offset: int = 0
    ) -> dict[str, Any]:
        ts = env.ts + offset
        return {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": {k: str(v) for k, v in attrs.items()}},
            "scope": "local",
            "time": ts // 1_000_000_000,
            "timeNano": ts,
        }

    c = None
    if "container" in d and host_before is not None:
        c = host_before.containers.get(d["container"]) or host_before.removed.get(d["container"])
    attrs: dict[str, Any] = {"image": c.image_ref, "name": c.name} if c else {}
    if t == "ContainerCreated":
        yield msg(
            "container", "create", d["container"], {"image": d["image_ref"], "name": d["name"]}
        )
    elif t in ("ContainerStarted", "ContainerRestarted"):
        if c is not None:
            for m in c.mounts:
                if m.type == VOLUME:
                    yield msg(
                        "volume",
                        "mount",
                        m.source,
                        {
                            "container": c.id,
                            "destination": m.target,
                            "driver": "local",
                            "propagation": m.propagation,
                            "read/write": str(m.rw).lower(),
                        },
                    )
        yield msg("container", "start", d["container"], attrs)
        if t == "ContainerRestarted":
            yield msg("container", "restart", d["container"], attrs)
    elif t == "ContainerStopped":
        yield msg("container", "kill", d["container"], {**attrs, "signal": "15"})
        yield msg("container", "die", d["container"], {**attrs, "exitCode": d.get("exit_code", 0)})
        yield from _unmounts(msg, c)
        yield msg("container", "stop", d["container"], attrs)
    elif t == "ContainerKilled":
        sig = d.get("signal", "SIGKILL")
        from dockstate.core.commands import parse_signal

        yield msg(
            "container", "kill", d["container"], {**attrs, "signal": str(parse_signal(sig)[1])}
        )
        yield msg(
            "container", "die", d["container"], {**attrs, "exitCode": d.get("exit_code", 137)}
        )
        yield from _unmounts(msg, c)
    elif t == "ContainerDied":
        yield msg("container", "die", d["container"], {**attrs, "exitCode": d.get("exit_code", 0)})
        yield from _unmounts(msg, c)
    elif t == "ContainerPaused":
        yield msg("container", "pause", d["container"], attrs)
    elif t == "ContainerUnpaused":
        yield msg("container", "unpause", d["container"], attrs)
    elif t == "ContainerRemoved":
        yield msg("container", "destroy", d["container"], attrs)
    elif t == "VolumeCreated":
        yield msg("volume", "create", d["name"], {"driver": d.get("driver", "local")})
    elif t == "VolumeRemoved":
        yield msg("volume", "destroy", d["name"], {"driver": "local"})
    elif t == "ImageRegistered":
        yield msg("image", "load", d["image_id"], {"name": d["image_id"]})
    elif t == "ImageTagged":
        yield msg("image", "tag", d["image_id"], {"name": d["ref"]})
    elif t == "ImageUntagged":
        yield msg("image", "untag", d["image_id"], {"name": d["ref"]})
    elif t == "ImageRemoved":
        yield msg("image", "delete", d["image_id"], {"name": d["image_id"]})


def _unmounts(msg: Any, c: Container | None) -> Iterator[dict[str, Any]]:
    if c is None:
        return
    for m in c.mounts:
        if m.type == VOLUME:
            yield msg("volume", "unmount", m.source, {"container": c.id, "driver": "local"})
