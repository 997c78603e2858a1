"""Paths, trees and layers (core.fs): normalisation, whiteouts and opaque dirs when layers stack."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockstate.core import fs
from dockstate.core.fs import DIR, FILE, WHITEOUT, Entry, PathError, apply_layer

FILE_ENTRY = Entry(FILE, 0o644, 1)


class TestPaths:
    @pytest.mark.parametrize(
        ("path", "norm"),
        [
            ("/", "/"),
            ("/a/b/", "/a/b"),
            ("//a//b", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/..", "/"),
            ("/../../etc", "/etc"),
        ],
    )
    def test_normalize(self, path: str, norm: str):
        """Paths are made canonical, and ``..`` cannot climb above ``/``."""
        assert fs.normalize(path) == norm

    @pytest.mark.parametrize("path", ["", "a/b", "./a"])
    def test_a_relative_path_is_refused(self, path: str):
        """Only absolute paths name something in a container."""
        with pytest.raises(PathError, match="must be absolute"):
            fs.normalize(path)

    def test_ancestors_go_from_nearest_to_farthest_without_root(self):
        """``/a/b/c`` has ancestors ``/a/b`` then ``/a``."""
        assert list(fs.ancestors("/a/b/c")) == ["/a/b", "/a"]
        assert list(fs.ancestors("/a")) == []

    @pytest.mark.parametrize("path", ["/a/b/c", "/a", "/var/log/app/f01.log", "/"])
    def test_ancestry_is_the_ancestors_remembered(self, path: str):
        """`fs.ancestry` answers as `fs.ancestors`, and the same tuple the second time."""
        first = fs.ancestry(path)
        assert list(first) == list(fs.ancestors(path))
        assert fs.ancestry(path) is first
        assert fs.ancestry_of(path) is first

    @pytest.mark.parametrize(
        ("path", "top", "below"),
        [
            ("/a/b", "/a", True),
            ("/a", "/a", True),
            ("/ab", "/a", False),
            ("/a", "/a/b", False),
            ("/x", "/", True),
        ],
    )
    def test_is_below_respects_path_components(self, path: str, top: str, below: bool):
        """``/ab`` is not below ``/a``: a component boundary is required."""
        assert fs.is_below(path, top) is below

    def test_relative_and_join_are_inverse(self):
        """A path seen from inside a mount, and back."""
        assert fs.relative("/data/x/y", "/data") == "/x/y"
        assert fs.relative("/data", "/data") == "/"
        assert fs.join("/data", "/x/y") == "/data/x/y"
        assert fs.join("/data", "/") == "/data"
        assert fs.join("/", "/x") == "/x"

    @given(st.lists(st.sampled_from(["a", "b", "ab", ".."]), min_size=1, max_size=5))
    def test_relative_then_join_gives_the_path_back(self, parts: list[str]):
        """For any path below a top, joining its relative form to the top restores it."""
        top = "/data"
        path = fs.normalize(top + "/" + "/".join(p for p in parts if p != ".."))
        assert fs.join(top, fs.relative(path, top)) == path


class TestTrees:
    def test_subtree_keys_and_children(self):
        """Entries strictly below a dir, and the names directly in it."""
        tree = dict.fromkeys(("/a", "/a/b", "/a/b/c", "/ab", "/z"), FILE_ENTRY)

        assert sorted(fs.subtree_keys(tree, "/a")) == ["/a/b", "/a/b/c"]
        assert fs.children(tree, "/a") == {"b"}
        assert fs.children(tree, "/") == {"a", "ab", "z"}

    def test_tree_size_counts_files_only(self):
        """Directories and whiteouts have no size."""
        tree = {"/d": fs.dir_entry(), "/f": Entry(FILE, size=10), "/w": fs.whiteout(1, 1)}

        assert fs.tree_size(tree) == 10

    @given(
        st.sets(
            st.lists(st.sampled_from("ab"), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
        ),
        st.lists(st.sampled_from("ab"), min_size=0, max_size=3).map(lambda p: "/" + "/".join(p)),
    )
    def test_sorted_paths_below_equals_subtree_keys(self, paths: set[str], top: str):
        """The bisect index finds exactly the keys the linear scan finds."""
        tree = dict.fromkeys(paths, FILE_ENTRY)

        assert fs.SortedPaths(paths).below(top) == sorted(fs.subtree_keys(tree, top))


LOWER = {
    "/etc": fs.dir_entry(),
    "/etc/hosts": FILE_ENTRY,
    "/etc/hostsx": FILE_ENTRY,
    "/app": fs.dir_entry(),
    "/app/a.py": FILE_ENTRY,
    "/app/lib": fs.dir_entry(),
    "/app/lib/b.py": FILE_ENTRY,
}


class TestApplyLayer:
    def test_a_whiteout_hides_exactly_its_path(self):
        """``.wh.hosts`` removes /etc/hosts, not /etc/hostsx, and leaves no whiteout in the result."""
        out = apply_layer(LOWER, [("/etc/hosts", Entry(WHITEOUT))])

        assert "/etc/hosts" not in out
        assert "/etc/hostsx" in out
        assert all(e.kind != WHITEOUT for e in out.values())

    def test_a_whiteout_of_a_dir_hides_its_subtree(self):
        """Whiting out /app removes it and all below it."""
        out = apply_layer(LOWER, [("/app", Entry(WHITEOUT))])

        assert set(out) == {"/etc", "/etc/hosts", "/etc/hostsx"}

    def test_an_opaque_dir_hides_lower_children_but_keeps_its_own(self):
        """``.wh..wh..opq`` hides what lower layers have in the dir, whatever the tar order."""
        new = Entry(FILE, 0o644, 2)
        for order in (
            [("/app/new.py", new), ("/app", fs.dir_entry(opaque=True))],
            [("/app", fs.dir_entry(opaque=True)), ("/app/new.py", new)],
        ):
            out = apply_layer(LOWER, order)
            assert {p for p in out if p.startswith("/app")} == {"/app", "/app/new.py"}
            assert not out["/app"].opaque

    def test_a_whiteout_applies_to_lower_layers_only(self):
        """A file and its whiteout in one layer: the layer's own file stays."""
        out = apply_layer(LOWER, [("/etc/new", FILE_ENTRY), ("/etc/hosts", Entry(WHITEOUT))])

        assert "/etc/new" in out
        assert "/etc/hosts" not in out

    def test_a_file_over_a_dir_drops_the_dirs_children(self):
        """Replacing a directory with a file removes what was below the directory."""
        out = apply_layer(LOWER, [("/app", FILE_ENTRY)])

        assert out["/app"].kind == FILE
        assert not any(p.startswith("/app/") for p in out)

    def test_missing_parents_are_implied(self):
        """A layer with only ``/x/y/z`` gives directories /x and /x/y."""
        out = apply_layer({}, [("/x/y/z", FILE_ENTRY)])

        assert out["/x"].kind == out["/x/y"].kind == DIR

    def test_the_lower_tree_is_not_modified(self):
        """Stacking a layer makes a new tree; the cached lower one stays as it was."""
        before = dict(LOWER)
        apply_layer(LOWER, [("/app", Entry(WHITEOUT)), ("/etc/x", FILE_ENTRY)])

        assert before == LOWER

    @given(
        st.sets(
            st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map(
                lambda p: "/" + "/".join(p)
            ),
            min_size=1,
        ),
        st.data(),
    )
    def test_a_whiteout_hides_exactly_the_lower_path_and_below(self, paths: set[str], data):
        """For any lower tree, whiting out P removes P and its subtree and nothing else."""
        lower = {}
        for p in paths:
            for anc in fs.ancestors(p):
                lower[anc] = fs.dir_entry()
        for p in paths:
            lower.setdefault(p, FILE_ENTRY)
        target = data.draw(st.sampled_from(sorted(lower)))

        out = apply_layer(lower, [(target, Entry(WHITEOUT))])

        assert set(out) == {p for p in lower if not fs.is_below(p, target)}
