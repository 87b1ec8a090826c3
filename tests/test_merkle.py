"""RFC 9162 Merkle hashing: published vectors (transparency-dev/merkle) and properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.errors import Code, RejectedInput
from parley.protocol import merkle

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "merkle" / "rfc9162.json").read_text("utf-8")
)

# Vectors the source accepts and Parley refuses on purpose: we require every root to be a
# 32-byte SHA-256 hash, and this probe uses 9-byte placeholder "roots" for equal sizes.
STRICTER_THAN_SOURCE = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaf_inputs"]]


# --- published vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["hashing"], ids=lambda c: c["desc"])
def test_hashing_matches_published_values(case: dict[str, Any]) -> None:
    if case["kind"] == "empty_root":
        got = merkle.root([])
    elif case["kind"] == "leaf":
        got = merkle.leaf_hash(bytes.fromhex(case["input"]))
    else:
        got = merkle.node_hash(bytes.fromhex(case["left"]), bytes.fromhex(case["right"]))
    assert got.hex() == case["want"]


def test_roots_of_every_prefix_match_published_roots() -> None:
    for size, want in enumerate(VECTORS["roots_by_size"]):
        assert merkle.root(LEAVES[:size]).hex() == want
        entries = [bytes.fromhex(x) for x in VECTORS["leaf_inputs"][:size]]
        assert merkle.mth(entries).hex() == want


def test_frontier_matches_published_roots_at_every_size() -> None:
    frontier = merkle.Frontier()
    assert frontier.root().hex() == VECTORS["roots_by_size"][0]
    for size, leaf in enumerate(LEAVES, start=1):
        frontier.append(leaf)
        assert frontier.root().hex() == VECTORS["roots_by_size"][size]


def test_complete_subtrees_match_published_node_hashes() -> None:
    for level, row in enumerate(VECTORS["node_hashes"]):
        width = 1 << level
        for i, want in enumerate(row):
            assert merkle.root(LEAVES[i * width : (i + 1) * width]).hex() == want


@pytest.mark.parametrize("case", VECTORS["inclusion_proofs"])
def test_inclusion_proofs_match_published_proofs(case: dict[str, Any]) -> None:
    leaves = LEAVES[: case["size"]]
    proof = merkle.inclusion_proof(case["index"], leaves)
    assert [p.hex() for p in proof] == case["proof"]
    merkle.verify_inclusion(
        leaves[case["index"]],
        case["index"],
        case["size"],
        _h(case["proof"]),
        bytes.fromhex(VECTORS["roots_by_size"][case["size"]]),
    )


@pytest.mark.parametrize("case", VECTORS["consistency_proofs"])
def test_consistency_proofs_match_published_proofs(case: dict[str, Any]) -> None:
    proof = merkle.consistency_proof(case["old_size"], LEAVES[: case["new_size"]])
    assert [p.hex() for p in proof] == case["proof"]
    merkle.verify_consistency(
        case["old_size"],
        case["new_size"],
        _h(case["proof"]),
        bytes.fromhex(VECTORS["roots_by_size"][case["old_size"]]),
        bytes.fromhex(VECTORS["roots_by_size"][case["new_size"]]),
    )


@pytest.mark.parametrize("probe", VECTORS["probes"]["inclusion"], ids=lambda p: p["file"])
def test_inclusion_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        merkle.verify_inclusion(
            bytes.fromhex(probe["leaf_hash"]),
            probe["index"],
            probe["size"],
            _h(probe["proof"]),
            bytes.fromhex(probe["root"]),
        )

    if probe["valid"]:
        run()
    else:
        with pytest.raises(RejectedInput) as err:
            run()
        assert err.value.code == Code.MALFORMED


@pytest.mark.parametrize("probe", VECTORS["probes"]["consistency"], ids=lambda p: p["file"])
def test_consistency_probes(probe: dict[str, Any]) -> None:
    def run() -> None:
        merkle.verify_consistency(
            probe["old_size"],
            probe["new_size"],
            _h(probe["proof"]),
            bytes.fromhex(probe["old_root"]),
            bytes.fromhex(probe["new_root"]),
        )

    if probe["valid"] and probe["file"] not in STRICTER_THAN_SOURCE:
        run()
    else:
        with pytest.raises(RejectedInput) as err:
            run()
        assert err.value.code == Code.MALFORMED


def test_probe_files_cover_every_category() -> None:
    assert len(VECTORS["probes"]["inclusion"]) >= 90
    assert len(VECTORS["probes"]["consistency"]) >= 90
    files = {p["file"] for p in VECTORS["probes"]["consistency"]}
    assert STRICTER_THAN_SOURCE.issubset(files)


# --- failures say which check failed -------------------------------------------------------------


def test_inclusion_failure_names_the_check() -> None:
    root = merkle.root(LEAVES)
    proof = merkle.inclusion_proof(5, LEAVES)
    with pytest.raises(RejectedInput) as err:
        merkle.verify_inclusion(LEAVES[4], 5, 8, proof, root)
    assert err.value.details["check"] == "root"
    with pytest.raises(RejectedInput) as err:
        merkle.verify_inclusion(LEAVES[5], 5, 8, proof[:-1], root)
    assert err.value.details["check"] == "proof_length"
    assert "needs exactly 3" in err.value.message
    with pytest.raises(RejectedInput) as err:
        merkle.verify_inclusion(LEAVES[5], 8, 8, proof, root)
    assert err.value.details["check"] == "argument"
    with pytest.raises(RejectedInput) as err:
        merkle.verify_inclusion(LEAVES[5], 5, 8, [*proof[:-1], b"short"], root)
    assert err.value.details["check"] == "argument"


def test_consistency_failure_names_the_check() -> None:
    old, new = merkle.root(LEAVES[:6]), merkle.root(LEAVES)
    proof = merkle.consistency_proof(6, LEAVES)
    with pytest.raises(RejectedInput) as err:
        merkle.verify_consistency(6, 8, proof, merkle.root(LEAVES[:5]), new)
    assert err.value.details["check"] == "old_root"
    with pytest.raises(RejectedInput) as err:
        merkle.verify_consistency(6, 8, proof, old, merkle.root(LEAVES[:7]))
    assert err.value.details["check"] == "root"
    with pytest.raises(RejectedInput) as err:
        merkle.verify_consistency(8, 6, proof, new, old)
    assert err.value.details["check"] == "argument"
    with pytest.raises(RejectedInput) as err:
        merkle.verify_consistency(3, 3, [], old, new)
    assert "forked" in err.value.message


def test_bad_arguments_are_rejected_not_crashed() -> None:
    root = merkle.root(LEAVES)
    for size in (-1, 2**64, True, "8"):
        with pytest.raises(RejectedInput):
            merkle.verify_inclusion(LEAVES[0], 0, size, [], root)  # type: ignore[arg-type]
    with pytest.raises(RejectedInput):
        merkle.Frontier.from_state(3, [LEAVES[0]])


def test_proof_generation_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(8, LEAVES)
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, LEAVES)
    with pytest.raises(ValueError):
        merkle.consistency_proof(9, LEAVES)


def test_frontier_round_trips_through_saved_state() -> None:
    frontier = merkle.Frontier()
    frontier.extend(LEAVES[:5])
    resumed = merkle.Frontier.from_state(frontier.size, frontier.hashes)
    frontier.extend(LEAVES[5:])
    resumed.extend(LEAVES[5:])
    assert resumed.root() == frontier.root() == merkle.root(LEAVES)
    assert len(resumed.hashes) == 1


def test_frontier_handles_a_long_chain_quickly() -> None:
    # 200,000 envelopes is the design's target chain length; the frontier must keep up.
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(200_000)]
    frontier = merkle.Frontier()
    frontier.extend(leaves)
    assert frontier.root() == merkle.root(leaves)
    assert len(frontier.hashes) == bin(200_000).count("1")
    proof = merkle.inclusion_proof(123_456, leaves)
    merkle.verify_inclusion(leaves[123_456], 123_456, 200_000, proof, frontier.root())


# --- properties -----------------------------------------------------------------------------------

_leaves = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(_leaves)
    return leaves, draw(st.integers(0, len(leaves) - 1))


@st.composite
def tree_and_old_size(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(_leaves)
    return leaves, draw(st.integers(1, len(leaves)))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@given(tree_and_index())
def test_every_inclusion_proof_verifies(case: tuple[list[bytes], int]) -> None:
    leaves, index = case
    proof = merkle.inclusion_proof(index, leaves)
    assert len(proof) == merkle.inclusion_proof_length(index, len(leaves))
    merkle.verify_inclusion(leaves[index], index, len(leaves), proof, merkle.root(leaves))


@given(tree_and_old_size())
def test_every_consistency_proof_verifies(case: tuple[list[bytes], int]) -> None:
    leaves, old_size = case
    proof = merkle.consistency_proof(old_size, leaves)
    assert len(proof) == merkle.consistency_proof_length(old_size, len(leaves))
    merkle.verify_consistency(
        old_size, len(leaves), proof, merkle.root(leaves[:old_size]), merkle.root(leaves)
    )


@given(tree_and_index(), st.integers(0, 255), st.integers(0, 3))
def test_tampered_inclusion_fails(case: tuple[list[bytes], int], bit: int, what: int) -> None:
    leaves, index = case
    n = len(leaves)
    leaf, proof, root = leaves[index], merkle.inclusion_proof(index, leaves), merkle.root(leaves)
    if what == 0:
        leaf = _flip(leaf, bit)
    elif what == 1 and proof:
        proof[bit % len(proof)] = _flip(proof[bit % len(proof)], bit)
    elif what == 2:
        root = _flip(root, bit)
    else:
        # A different tree size. Only sizes whose proof shape differs must fail: the path alone
        # cannot tell size 3 from size 4 (the root hash, signed with its size, does that).
        n = n + 1 + bit
        if merkle.inclusion_proof_length(index, n) == len(proof):
            return
    if what == 1 and not proof:
        return
    with pytest.raises(RejectedInput):
        merkle.verify_inclusion(leaf, index, n, proof, root)


@given(tree_and_index(), st.integers(0, len(LEAVES)))
def test_inclusion_at_wrong_index_fails(case: tuple[list[bytes], int], delta: int) -> None:
    leaves, index = case
    other = (index + 1 + delta) % len(leaves)
    if other == index or leaves[other] == leaves[index]:
        return
    proof = merkle.inclusion_proof(index, leaves)
    with pytest.raises(RejectedInput):
        merkle.verify_inclusion(leaves[index], other, len(leaves), proof, merkle.root(leaves))


@given(tree_and_old_size(), st.integers(0, 255), st.integers(0, 3))
def test_tampered_consistency_fails(case: tuple[list[bytes], int], bit: int, what: int) -> None:
    leaves, old_size = case
    new_size = len(leaves)
    proof = merkle.consistency_proof(old_size, leaves)
    old_root, new_root = merkle.root(leaves[:old_size]), merkle.root(leaves)
    if what == 0:
        old_root = _flip(old_root, bit)
    elif what == 1:
        new_root = _flip(new_root, bit)
    elif what == 2:
        if not proof:
            return
        proof[bit % len(proof)] = _flip(proof[bit % len(proof)], bit)
    else:
        new_size += 1 + bit % 7
        if merkle.consistency_proof_length(old_size, new_size) == len(proof):
            return  # same proof shape: only the signed (size, root) pair can tell them apart
    with pytest.raises(RejectedInput):
        merkle.verify_consistency(old_size, new_size, proof, old_root, new_root)


@given(tree_and_old_size(), st.binary(min_size=32, max_size=32))
def test_fork_is_detected(case: tuple[list[bytes], int], other: bytes) -> None:
    # A log that rewrites any old leaf cannot prove consistency with its old checkpoint.
    leaves, old_size = case
    forked = list(leaves)
    i = old_size - 1
    if forked[i] == other:
        return
    forked[i] = other
    proof = merkle.consistency_proof(old_size, forked)
    with pytest.raises(RejectedInput):
        merkle.verify_consistency(
            old_size, len(leaves), proof, merkle.root(leaves[:old_size]), merkle.root(forked)
        )


@settings(max_examples=50)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=300))
def test_incremental_root_equals_batch_root(leaves: list[bytes]) -> None:
    frontier = merkle.Frontier()
    for i, leaf in enumerate(leaves):
        assert frontier.root() == merkle.root(leaves[:i])
        frontier.append(leaf)
    assert frontier.root() == merkle.root(leaves)
    assert frontier.size == len(leaves)
    assert len(frontier.hashes) == len(leaves).bit_count()


def _reference_mth(leaves: list[bytes]) -> bytes:
    # RFC 9162 §2.1.1 written literally, to check the level-by-level `root`.
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_reference_mth(leaves[:k]), _reference_mth(leaves[k:]))


@given(_leaves)
def test_root_equals_the_rfc_recursive_definition(leaves: list[bytes]) -> None:
    assert merkle.root(leaves) == _reference_mth(leaves)
