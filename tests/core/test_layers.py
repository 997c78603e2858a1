"""core.layers: tar members to a layer table, whiteouts and names as Docker applies them."""

from __future__ import annotations

import pytest

from dockstate.core.fs import DIR, FILE, SYMLINK, WHITEOUT, Entry, apply_layer
from dockstate.core.layers import HARDLINK, OTHER, InvalidLayerError, Member, clean_name, table_of

LOWER = {
    "/srv": Entry(DIR, 0o755),
    "/srv/old": Entry(DIR, 0o755),
    "/srv/old/o1.txt": Entry(FILE, 0o644, 4),
    "/srv/data": Entry(DIR, 0o755),
    "/srv/data/b.txt": Entry(FILE, 0o644, 6),
}


def _stack(members: list[Member]) -> dict[str, Entry]:
    entries, _ = table_of(members)
    return apply_layer(dict(LOWER), entries)


def test_names_are_cleaned_and_re_rooted() -> None:
    """A leading slash is dropped, ./ and a/.. cleaned; the root is '/'."""
    assert clean_name("./a/b/../c") == "/a/c"
    assert clean_name("/abs/x") == "/abs/x"
    assert clean_name("./") == "/"
    with pytest.raises(InvalidLayerError, match=r'invalid entry name "\.\./x"'):
        clean_name("../x")


def test_whiteout_hides_the_lower_path_and_is_not_visible() -> None:
    """.wh.b.txt removes the lower b.txt; the marker itself never appears."""
    t = _stack([Member("srv/data/.wh.b.txt", FILE)])
    assert "/srv/data/b.txt" not in t
    assert "/srv/data/.wh.b.txt" not in t
    assert "/srv/data" in t


def test_whiteout_of_a_directory_hides_its_subtree() -> None:
    """.wh.old hides /srv/old and everything below it."""
    t = _stack([Member("srv/.wh.old", FILE)])
    assert not [p for p in t if p.startswith("/srv/old")]


def test_opaque_directory_hides_lower_children_whatever_the_order() -> None:
    """The opaque marker before or after a new child: lower children go, the new one stays."""
    for order in (0, 1):
        members = [Member("srv/old/n.txt", FILE, size=1), Member("srv/old/.wh..wh..opq", FILE)]
        if order:
            members.reverse()
        t = _stack([Member("srv/old/", DIR, 0o700), *members])
        assert sorted(p for p in t if p.startswith("/srv/old")) == ["/srv/old", "/srv/old/n.txt"]
        assert t["/srv/old"].mode == 0o700
        assert not t["/srv/old"].opaque


def test_whiteout_then_directory_makes_it_opaque() -> None:
    """.wh.old then old/: the new directory replaces the lower one (its children stay hidden)."""
    entries, _ = table_of([Member("srv/.wh.old", FILE), Member("srv/old/", DIR)])
    assert dict(entries)["/srv/old"].opaque
    t = apply_layer(dict(LOWER), entries)
    assert "/srv/old/o1.txt" not in t


def test_whiteout_after_its_own_layers_path_is_refused() -> None:
    """overlay2's mknod fails when the layer already wrote the path (or a child of it)."""
    with pytest.raises(InvalidLayerError, match=r'failed to mknod\("/srv/x", S_IFCHR, 0\)'):
        table_of([Member("srv/x", FILE), Member("srv/.wh.x", FILE)])
    with pytest.raises(InvalidLayerError, match="file exists"):
        table_of([Member("srv/d/f", FILE), Member("srv/.wh.d", FILE)])


@pytest.mark.parametrize("name", ["srv/.wh.", "srv/.wh..", "srv/.wh..."])
def test_empty_whiteout_names_are_invalid(name: str) -> None:
    """A whiteout must name something."""
    with pytest.raises(InvalidLayerError, match="invalid whiteout entry"):
        table_of([Member(name, FILE)])


def test_meta_markers_are_skipped() -> None:
    """AUFS' .wh..wh..plnk hardlink store is not content."""
    entries, _ = table_of([Member(".wh..wh..plnk/123", FILE), Member("a", FILE)])
    assert [p for p, _ in entries] == ["/a"]


def test_hardlink_shares_content_and_counts_once() -> None:
    """A hardlink is its source under a second name; the layer size counts the bytes once."""
    entries, size = table_of(
        [Member("f", FILE, 0o755, size=3, chunks=(b"d",)), Member("g", HARDLINK, linkname="/f")]
    )
    table = dict(entries)
    assert table["/g"].chunks == (b"d",)
    assert table["/g"].mode == 0o755
    assert size == 3


def test_hardlink_targets_must_be_inside_and_in_the_layer() -> None:
    """Climbing out is refused; a target from a lower layer does not exist for overlay2."""
    with pytest.raises(InvalidLayerError, match=r'invalid hardlink target "\.\./f"'):
        table_of([Member("g", HARDLINK, linkname="../f")])
    with pytest.raises(InvalidLayerError, match="link /srv/x /g: no such file"):
        table_of([Member("g", HARDLINK, linkname="srv/x")])


def test_symlink_targets_are_kept_and_writes_through_them_are_re_rooted() -> None:
    """A member under a symlink of the same layer lands where the link points, in the root."""
    entries, _ = table_of(
        [
            Member("up", SYMLINK, linkname="../../.."),
            Member("up/etc/x", FILE),
            Member("rel", SYMLINK, linkname="srv"),
            Member("rel/y", FILE),
        ]
    )
    table = dict(entries)
    assert table["/up"].target == "../../.."
    assert table["/etc/x"].kind == FILE
    assert table["/srv/y"].kind == FILE


def test_symlink_loops_are_refused() -> None:
    """Too many levels of links."""
    with pytest.raises(InvalidLayerError, match="too many levels of symbolic links"):
        table_of(
            [
                Member("a", SYMLINK, linkname="b"),
                Member("b", SYMLINK, linkname="a"),
                Member("a/x", FILE),
            ]
        )


def test_devices_become_empty_files_and_whiteouts_stay_in_the_table() -> None:
    """dockstate has no device kind; a whiteout of an absent path is still recorded."""
    entries, _ = table_of([Member("dev/null", OTHER, 0o666), Member(".wh.nothing", FILE)])
    table = dict(entries)
    assert table["/dev/null"] == Entry(FILE, 0o666)
    assert table["/nothing"].kind == WHITEOUT


def test_a_file_over_a_directory_of_the_same_layer_drops_its_children() -> None:
    """Duplicate paths: the later member wins; a non-directory replaces a subtree."""
    entries, _ = table_of([Member("d/", DIR), Member("d/x", FILE), Member("d", FILE, size=2)])
    assert dict(entries) == {"/d": Entry(FILE, 0o644, 2)}
