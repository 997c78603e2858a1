"""Content as chunks: how bytes are cut and named before the log stores them."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from dockstate.eventlog import CHUNK_SIZE, content_digest
from dockstate.eventlog.blobs import Digested, chunks_of, digested, rechunk, split

#: Enough random bytes for three chunks and a bit, made once.
SOURCE = random.Random(0).randbytes(CHUNK_SIZE * 3 + 4096)


def test_chunk_size_is_one_mebibyte():
    """Chunks are cut at 1 MiB, the size DESIGN.md promises for a stored chunk."""
    assert CHUNK_SIZE == 1 << 20


def test_split_cuts_at_chunk_size_and_names_each_chunk_by_its_sha256():
    """Content is cut into full chunks and a shorter last one, each keyed by its digest."""
    content = SOURCE[: CHUNK_SIZE * 2 + 10]

    chunks = list(split(content))

    assert [len(chunk) for _, chunk in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 10]
    assert all(digest == hashlib.sha256(chunk).digest() for digest, chunk in chunks)
    assert b"".join(chunk for _, chunk in chunks) == content


def test_content_of_exactly_whole_chunks_has_no_empty_tail():
    """Content a multiple of the chunk size ends on a full chunk; empty content has none."""
    assert [len(c) for _, c in split(SOURCE[: CHUNK_SIZE * 2])] == [CHUNK_SIZE, CHUNK_SIZE]
    assert list(split(b"")) == []
    assert list(rechunk([])) == []
    assert list(rechunk([b"", b""])) == []


def test_identical_chunks_get_identical_digests_wherever_they_are():
    """Repeated content yields repeated digests, which is what lets the store keep it once."""
    block = SOURCE[:CHUNK_SIZE]

    digests = [d for d, _ in split(block * 3)]

    assert digests[0] == digests[1] == digests[2]


@given(sizes=st.lists(st.integers(0, CHUNK_SIZE // 2 + 7), max_size=8))
def test_a_stream_is_cut_exactly_like_its_concatenation(sizes: list[int]):
    """However a stream is split into pieces, its chunks equal those of the whole."""
    pieces, at = [], 0
    for size in sizes:
        pieces.append(SOURCE[at : at + size])
        at += size

    assert list(rechunk(iter(pieces))) == list(split(b"".join(pieces)))


def test_content_digest_is_spelled_as_docker_spells_digests():
    """Whole-content digests read ``sha256:<64 hex digits>``."""
    assert content_digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@given(
    size=st.sampled_from([0, 1, 4096, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, CHUNK_SIZE * 3])
)
def test_chunks_of_is_split_whatever_the_content_is_held_in(size: int):
    """Bytes, a memoryview, or bytes whose digest is known: the same chunks as `split`."""
    content = SOURCE[:size]
    expected = list(split(content))
    known = digested(content, hashlib.sha256(content).digest())
    assert known is not None

    assert list(chunks_of(content)) == expected
    assert list(chunks_of(memoryview(content))) == expected
    assert list(chunks_of(known)) == expected


def test_digested_bytes_carry_their_digest_only_when_it_is_theirs():
    """A digest is attached only after checking it; the bytes are otherwise plain bytes."""
    content = b"some file"
    digest = hashlib.sha256(content).digest()

    known = digested(content, digest)

    assert isinstance(known, Digested)
    assert known == content
    assert known.sha256 == digest
    assert type(known[1:]) is bytes
    assert type(b"\x00" + known) is bytes
    assert digested(content, hashlib.sha256(b"other").digest()) is None
