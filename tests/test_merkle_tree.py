"""The one Merkle tree (`merkle.Tree`, and `merkle.Frontier`, the same tree kept compact) against
RFC 9162's recursive definitions written out literally, for every prefix of a growing tree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import RejectedInput
from parley.protocol import crypto, merkle


def _k(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, over leaf hashes."""
    if not d:
        return merkle.EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return merkle.node_hash(mth(d[:k]), mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(crypto.sha256(i.to_bytes(4, "big"))) for i in range(n)]


def test_every_prefix_root_and_proof_of_a_growing_tree_is_the_rfcs() -> None:
    leaves = _leaves(40)
    grown = merkle.Tree()
    compact = merkle.Frontier()
    for n in range(41):
        assert grown.root(n) == merkle.root(leaves[:n]) == mth(leaves[:n])
        assert compact.root() == mth(leaves[:n])
        for i in range(n):
            assert grown.inclusion_proof(i, n) == path(i, leaves[:n])
            assert grown.consistency_proof(i + 1, n) == subproof(i + 1, leaves[:n], True)
        if n < 40:
            grown.append(leaves[n])
            compact.append(leaves[n])
    built = merkle.Tree(leaves)
    assert [built.root(n) for n in range(41)] == [grown.root(n) for n in range(41)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), data=st.data())
def test_large_trees_agree_with_the_rfc(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    tree = merkle.Tree(leaves)
    m = data.draw(st.integers(1, n))
    i = data.draw(st.integers(0, n - 1))
    assert tree.root(m) == mth(leaves[:m])
    assert tree.inclusion_proof(i, m if i < m else n) == path(i, leaves[: m if i < m else n])
    assert tree.consistency_proof(m, n) == subproof(m, leaves, True)
    merkle.verify_consistency(m, n, tree.consistency_proof(m, n), tree.root(m), tree.root())


def test_a_compact_tree_keeps_only_its_edge_and_refuses_what_it_dropped() -> None:
    frontier = merkle.Frontier()
    frontier.extend(_leaves(1000))
    assert len(frontier.hashes) == bin(1000).count("1")
    with pytest.raises(ValueError):
        frontier.root(999)
    with pytest.raises(ValueError):
        frontier.inclusion_proof(0)


def test_bad_leaves_and_impossible_prefixes_are_refused() -> None:
    with pytest.raises(RejectedInput):
        merkle.Tree([b"short"])
    with pytest.raises(RejectedInput):
        merkle.Tree().append(b"")
    tree = merkle.Tree(_leaves(5))
    for bad in (-1, 6):
        with pytest.raises(ValueError):
            tree.root(bad)
    with pytest.raises(ValueError):
        tree.consistency_proof(0)
    with pytest.raises(ValueError):
        tree.inclusion_proof(5)


@settings(max_examples=50, deadline=None)
@given(chunks=st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_extend_makes_the_nodes_append_makes(chunks: list[int]) -> None:
    # extend builds a batch a level at a time: every node, root and proof as one append each.
    leaves = _leaves(sum(chunks))
    one_by_one, batched = merkle.Tree(), merkle.Tree()
    at = 0
    for size in chunks:
        for leaf in leaves[at : at + size]:
            one_by_one.append(leaf)
        batched.extend(iter(leaves[at : at + size]))
        at += size
        assert batched.size == one_by_one.size
        assert [batched.root(n) for n in range(at + 1)] == [
            one_by_one.root(n) for n in range(at + 1)
        ]
        assert batched.root() == mth(leaves[:at])
        for i in range(at):
            assert batched.leaf(i) == leaves[i]
        if at > 1:
            assert batched.consistency_proof(1, at) == one_by_one.consistency_proof(1, at)


def test_extend_refuses_a_bad_leaf_and_keeps_the_tree_as_it_was() -> None:
    tree = merkle.Tree(_leaves(7))
    with pytest.raises(RejectedInput):
        tree.extend([*_leaves(3), b"short"])
    assert tree.size == 7 and tree.root() == mth(_leaves(7))


@settings(max_examples=50, deadline=None)
@given(chunks=st.lists(st.integers(0, 40), min_size=1, max_size=6), compact=st.booleans())
def test_extend_packed_makes_the_tree_append_makes(chunks: list[int], compact: bool) -> None:
    # A transcript's verifier adds a span's leaves as one byte string: every root and leaf as
    # one append each, in a full tree and in a compact one.
    leaves = _leaves(sum(chunks))
    make = merkle.Frontier if compact else merkle.Tree
    one_by_one, packed = make(), make()
    at = 0
    for size in chunks:
        for leaf in leaves[at : at + size]:
            one_by_one.append(leaf)
        packed.extend_packed(b"".join(leaves[at : at + size]))
        at += size
        assert packed.size == one_by_one.size
        assert packed.root() == one_by_one.root() == mth(leaves[:at])
        if not compact:
            assert [packed.root(n) for n in range(at + 1)] == [
                one_by_one.root(n) for n in range(at + 1)
            ]
            assert [packed.leaf(i) for i in range(at)] == leaves[:at]


@pytest.mark.parametrize("leaves", [b"x" * 31, b"x" * 65, bytearray(64)], ids=["31", "65", "ba"])
def test_extend_packed_refuses_what_is_not_whole_hashes(leaves: bytes) -> None:
    tree = merkle.Tree(_leaves(7))
    with pytest.raises(RejectedInput):
        tree.extend_packed(leaves)
    assert tree.size == 7 and tree.root() == mth(_leaves(7))


@settings(max_examples=50, deadline=None)
@given(entries=st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_leaf_hashes_are_each_entrys_leaf_hash_end_to_end(entries: list[bytes]) -> None:
    # A transcript span's leaves are made in one call over its envelope hashes laid end to end.
    assert merkle.leaf_hashes(b"".join(entries)) == b"".join(map(merkle.leaf_hash, entries))
    assert merkle.leaf_hashes(bytearray(b"".join(entries))) == merkle.leaf_hashes(b"".join(entries))


@pytest.mark.parametrize("length", [1, 31, 33, 63])
def test_leaf_hashes_refuse_entries_that_are_not_whole_hashes(length: int) -> None:
    with pytest.raises(RejectedInput):
        merkle.leaf_hashes(bytes(length))
