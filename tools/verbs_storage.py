"""Volume and image verbs, and ``system df``."""

from __future__ import annotations

import sys

from dockstate.core.errors import DockstateError, InvalidParameterError
from dockstate.core.mounts import VOLUME
from dockstate.tools import format as fmt
from dockstate.tools import shapes
from dockstate.tools.context import Context


def _key_values(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not key:
            raise InvalidParameterError(f"invalid {what} {item!r}: use KEY=VALUE")
        out[key] = value if eq else ""
    return out


def volume_create(ctx: Context) -> int:
    a = ctx.args
    name = ctx.host.volume_create(
        a.name,
        driver=a.driver,
        labels=_key_values(a.label, "label"),
        options=_key_values(a.opt, "option"),
    )
    print(name)
    return 0


def volume_ls(ctx: Context) -> int:
    vols = sorted(ctx.reader.volumes(ctx.at()), key=lambda v: v.name)
    if ctx.args.quiet:
        for v in vols:
            print(v.name)
        return 0
    if ctx.args.format == "json":
        fmt.print_json_lines(shapes.volume_ls_json(v) for v in vols)
        return 0
    fmt.table(["DRIVER", "VOLUME NAME"], [(v.driver, v.name) for v in vols])
    return 0


def volume_inspect(ctx: Context) -> int:
    out, failed = [], False
    for name in ctx.args.names:
        try:
            out.append(shapes.volume_inspect(ctx.reader.volume(name, ctx.at())))
        except DockstateError as exc:
            failed = True
            print(f"Error: {exc}", file=sys.stderr)
    fmt.print_json_array(out)
    return 1 if failed else 0


def volume_rm(ctx: Context) -> int:
    """Each volume on its own, as the Docker CLI does: the rest go even if one is refused."""
    failed = False
    for name in ctx.args.names:
        try:
            for removed in ctx.host.volume_remove([name], force=ctx.args.force):
                print(removed)
        except DockstateError as exc:
            failed = True
            print(f"Error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def volume_prune(ctx: Context) -> int:
    names, size = ctx.host.volume_prune(all_volumes=ctx.args.all)
    if names:
        print("Deleted Volumes:")
        for n in names:
            print(n)
        print()
    print(f"Total reclaimed space: {fmt.human_size(size)}")
    return 0


# -- images ----------------------------------------------------------------------------


def image_ls(ctx: Context) -> int:
    reader, at = ctx.reader, ctx.at()
    host = reader.host(at)
    now = ctx.at_time()
    rows = []
    created = {i.id: shapes.image_created_ts(reader, i) for i in host.images.values()}
    for image in sorted(host.images.values(), key=lambda i: created[i.id], reverse=True):
        refs = image.tags or ["<none>:<none>"]
        for ref in refs:
            repo, tag = shapes.split_ref(ref) if ref != "<none>:<none>" else ("<none>", "<none>")
            rows.append((repo, tag, image, ref))
    if ctx.args.quiet:
        seen = []
        for _, _, image, _ in rows:
            if image.id not in seen:
                seen.append(image.id)
                print(image.id[7:19])
        return 0
    from dockstate.projections import views

    if ctx.args.format == "json":
        fmt.print_json_lines(
            {
                "Containers": "N/A",
                "CreatedAt": fmt.docker_time(created[image.id]),
                "CreatedSince": fmt.ago(created[image.id], now),
                "Digest": "<none>",
                "ID": image.id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": fmt.human_size(views.image_size(host, image.id), 3),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": fmt.human_size(views.image_size(host, image.id)),
            }
            for repo, tag, image, _ in rows
        )
        return 0
    fmt.table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        [
            (
                repo,
                tag,
                image.id[7:19],
                fmt.ago(created[image.id], now),
                fmt.human_size(views.image_size(host, image.id), 3),
            )
            for repo, tag, image, _ in rows
        ],
    )
    return 0


def _history_age(created: str, now: int) -> str:
    """``N minutes ago`` for a history entry; ``N/A`` for unknown or pre-2000 times (Docker)."""
    import datetime as dt
    import re

    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", created)
    if not m:
        return "N/A"
    frac = (m.group(2) or "")[:7]
    when = dt.datetime.fromisoformat(m.group(1) + frac + (m.group(3) or "Z").replace("Z", "+00:00"))
    if when.year < 2000:
        return "N/A"
    return fmt.ago(int(when.timestamp() * 1e9), now)


def image_history(ctx: Context) -> int:
    now = ctx.at_time()
    reader = ctx.reader
    host = reader.host(ctx.at())
    image = reader.image(ctx.args.image, ctx.at())
    cfg = shapes.image_config(reader, image)
    history = list(cfg.get("history") or [])
    layers = [host.layers.get(ch) for ch in image.chain_ids]
    sizes = []
    li = 0
    for h in history:
        if h.get("empty_layer"):
            sizes.append(0)
        else:
            layer = layers[li] if li < len(layers) else None
            sizes.append(layer.size if layer else 0)
            li += 1
    rows = []
    for i, (h, size) in enumerate(reversed(list(zip(history, sizes, strict=True)))):
        created_by = str(h.get("created_by", ""))
        if not ctx.args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created = str(h.get("created", ""))
        rows.append(
            {
                "Comment": h.get("comment", ""),
                # Docker: time.Unix(created, 0).Format(time.RFC3339)
                "CreatedAt": fmt.rfc3339_seconds(fmt.parse_rfc3339(created) or 0),
                "CreatedBy": created_by,
                "CreatedSince": _history_age(created, now),
                "ID": image.id if i == 0 else "<missing>",
                "Size": fmt.human_size(size),
            }
        )
    if ctx.args.format == "json":
        fmt.print_json_lines(rows)
        return 0
    fmt.table(
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        [
            (
                r["ID"] if r["ID"] == "<missing>" else str(r["ID"])[7:19],
                r["CreatedSince"],
                r["CreatedBy"],
                r["Size"],
                r["Comment"],
            )
            for r in rows
        ],
    )
    return 0


def image_inspect(ctx: Context) -> int:
    reader = ctx.reader
    host = reader.host(ctx.at())
    out, failed = [], False
    for ref in ctx.args.images:
        try:
            out.append(shapes.image_inspect(reader, host, reader.image(ref, ctx.at())))
        except DockstateError as exc:
            failed = True
            print(f"Error: {exc}", file=sys.stderr)
    fmt.print_json_array(out)
    return 1 if failed else 0


def image_rm(ctx: Context) -> int:
    failed = False
    for ref in ctx.args.images:
        try:
            for what, name in ctx.host.remove_image(ref, force=ctx.args.force):
                print(f"{what}: {name}")
        except DockstateError as exc:
            failed = True
            print(f"Error: {exc}", file=sys.stderr)
    return 1 if failed else 0


def image_tag(ctx: Context) -> int:
    ctx.host.tag(ctx.args.source, ctx.args.target)
    return 0


# -- system df ---------------------------------------------------------------------------


def _reclaim(size: int, total: int) -> str:
    if size <= 0:
        return "0B"
    pct = int(size * 100 / total) if total else 0
    return f"{fmt.human_size(size)} ({pct}%)"


def system_df(ctx: Context) -> int:
    reader = ctx.reader
    host = reader.host(ctx.at())
    du = reader.df(ctx.at())
    now = ctx.at_time()
    if ctx.args.format == "json":
        rows = [
            {
                "Type": "Images",
                "TotalCount": str(len(du.images)),
                "Active": str(du.images_active),
                "Size": fmt.human_size(du.images_size),
                "Reclaimable": _reclaim(du.images_reclaimable, du.images_size),
            },
            {
                "Type": "Containers",
                "TotalCount": str(len(du.containers)),
                "Active": str(du.containers_active),
                "Size": fmt.human_size(du.containers_size),
                "Reclaimable": _reclaim(du.containers_reclaimable, du.containers_size),
            },
            {
                "Type": "Local Volumes",
                "TotalCount": str(len(du.volumes)),
                "Active": str(du.volumes_active),
                "Size": fmt.human_size(du.volumes_size),
                "Reclaimable": _reclaim(du.volumes_reclaimable, du.volumes_size),
            },
            {
                "Type": "Build Cache",
                "TotalCount": "0",
                "Active": "0",
                "Size": "0B",
                "Reclaimable": "0B",
            },
        ]
        fmt.print_json_lines(rows)
        return 0
    if not ctx.args.verbose:
        fmt.table(
            ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            [
                (
                    "Images",
                    len(du.images),
                    du.images_active,
                    fmt.human_size(du.images_size),
                    _reclaim(du.images_reclaimable, du.images_size),
                ),
                (
                    "Containers",
                    len(du.containers),
                    du.containers_active,
                    fmt.human_size(du.containers_size),
                    _reclaim(du.containers_reclaimable, du.containers_size),
                ),
                (
                    "Local Volumes",
                    len(du.volumes),
                    du.volumes_active,
                    fmt.human_size(du.volumes_size),
                    _reclaim(du.volumes_reclaimable, du.volumes_size),
                ),
                ("Build Cache", 0, 0, "0B", "0B"),
            ],
        )
        return 0
    print("Images space usage:\n")
    usage_rows: list[tuple[object, ...]] = []
    for iu in du.images:
        for ref in list(iu.tags) or ["<none>:<none>"]:
            repo, tag = shapes.split_ref(ref) if ref != "<none>:<none>" else ("<none>", "<none>")
            image = host.images[iu.image_id]
            usage_rows.append(
                (
                    repo,
                    tag,
                    iu.image_id[7:19],
                    fmt.ago(shapes.image_created_ts(reader, image), now),
                    fmt.human_size(iu.size),
                    fmt.human_size(iu.shared_size),
                    fmt.human_size(iu.unique_size),
                    iu.containers,
                )
            )
    fmt.table(
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ],
        usage_rows,
    )
    print("\nContainers space usage:\n")
    fmt.table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
        [
            (
                c.id[:12],
                c.image_ref,
                shapes.truncate_command(shapes.container_command(reader, host, c)),
                sum(1 for m in c.mounts if m.type == VOLUME),
                fmt.human_size(size),
                fmt.ago(c.created, now),
                shapes.status(c, now),
                c.name,
            )
            for c, size in du.containers
        ],
    )
    print("\nLocal Volumes space usage:\n")
    fmt.table(
        ["VOLUME NAME", "LINKS", "SIZE"],
        [(v.name, len(v.refs), fmt.human_size(size)) for v, size in du.volumes],
    )
    print("\nBuild cache usage: 0B")
    return 0
