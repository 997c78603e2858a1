"""Resolving what a user typed to a container, an image or a volume, as Docker does."""

from __future__ import annotations

from dockstate.core.errors import (
    AmbiguousReferenceError,
    NoSuchContainerError,
    NoSuchImageError,
    NoSuchVolumeError,
)
from dockstate.core.names import looks_like_id_prefix, normalize_image_ref, strip_digest_prefix
from dockstate.core.state import Container, Host, Image, Volume


def find_container(host: Host, ref: str) -> Container:
    """By full id, then exact name (with or without the leading ``/``), then unique id prefix.

    Raises:
        NoSuchContainerError: nothing matches (removed containers never do).
        AmbiguousReferenceError: the prefix matches several containers.
    """
    if not ref:
        raise NoSuchContainerError(ref)
    c = host.containers.get(ref)
    if c is not None:
        return c
    cid = host.names.get(ref.removeprefix("/"))
    if cid is not None:
        return host.containers[cid]
    if looks_like_id_prefix(ref) and len(ref) < 64:
        # a full id was looked up above; only a shorter one can be a prefix
        matches = [k for k in host.containers if k.startswith(ref)]
        if len(matches) == 1:
            return host.containers[matches[0]]
        if matches:
            raise AmbiguousReferenceError("container", ref, matches)
    raise NoSuchContainerError(ref)


def find_image(host: Host, ref: str) -> Image:
    """By ``name[:tag]``, full id (with or without ``sha256:``), or unique id prefix."""
    if not ref:
        raise NoSuchImageError(ref)
    image_id = host.tags.get(normalize_image_ref(ref))
    if image_id is not None:
        return host.images[image_id]
    if looks_like_id_prefix(ref):
        hexid = strip_digest_prefix(ref)
        matches = [k for k in host.images if k[len("sha256:") :].startswith(hexid)]
        if len(matches) == 1:
            return host.images[matches[0]]
        if matches:
            raise AmbiguousReferenceError("image", ref, matches)
    raise NoSuchImageError(normalize_image_ref(ref) if not looks_like_id_prefix(ref) else ref)


def find_volume(host: Host, name: str, op: str = "get") -> Volume:
    vol = host.volumes.get(name)
    if vol is None:
        raise NoSuchVolumeError(name, op)
    return vol
