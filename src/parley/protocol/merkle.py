"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, as small pure functions.

Rules:
- SHA-256 only. leaf = H(0x00 || entry), node = H(0x01 || left || right), the empty tree's root
  is H(""). This is byte-for-byte RFC 6962 hashing, so C2SP checkpoints and transparency-dev
  tooling agree with us.
- Trees are given as lists of *leaf hashes*; callers hash their entries with `leaf_hash` first.
- Verification fails closed: `verify_inclusion` and `verify_consistency` return None or raise
  `RejectedInput(Code.MALFORMED, ...)` whose message says which check failed and whose
  `details["check"]` is a stable name for programs: "argument" (a size, index or hash of the
  wrong shape), "proof_length", "old_root" or "root" (a recomputed root differs).
- Every hash argument must be exactly 32 bytes; a proof's length is checked against the length
  the tree shape requires before anything is hashed, so a hostile proof costs O(log n) at most.
- A consistency proof from the empty tree is refused, as transparency-dev/merkle does: every
  tree extends the empty tree, so such a proof proves nothing; callers treat old size 0 apart.
- `Frontier` appends leaf hashes and yields the root in O(log n) memory, for checkpointing long
  chains without keeping every leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from parley.errors import Code, RejectedInput

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
# Tree sizes travel as uint64 in C2SP checkpoints and RFC 9162 structures.
MAX_TREE_SIZE = 2**64 - 1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes (the tree head of RFC 9162 §2.1.1)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    # Pairing level by level and carrying a lone last node up unchanged builds exactly the tree
    # RFC 9162 defines by splitting at the largest power of two below n, without recursion.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw entries: the root of their leaf hashes."""
    return root([leaf_hash(e) for e in entries])


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- inclusion proofs (RFC 9162 §2.1.3) -----------------------------------------------------------


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the audit path for leaf `index`, nearest sibling first."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of size {n}")
    path: list[bytes] = []
    lo, hi = 0, n
    # Walk down from the root, remembering each sibling subtree; the RFC lists them bottom-up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes an inclusion proof for `index` in a tree of `size` leaves has."""
    # The paths to `index` and to the last leaf share a prefix; below the split point every level
    # contributes a sibling, above it only the levels where `index` is a right child do.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check that `leaf` (a leaf hash) is at `index` in the tree of `size` with `expected_root`.

    RFC 9162 §2.1.3.2. Returns None; raises RejectedInput naming the failed check.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise _fail("argument", f"leaf index {index} is not inside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    _check_hash(expected_root, "root hash")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise _fail(
            "proof_length",
            f"inclusion proof has {len(proof)} hashes; leaf {index} of a tree of size {size} "
            f"needs exactly {want}",
        )
    for i, h in enumerate(proof):
        _check_hash(h, f"inclusion proof hash {i}")

    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where our node is a left child with no right sibling.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # The length check above makes sn == 0 here; keep the RFC's own check as a guard.
    if sn != 0:
        raise _fail("proof_length", "inclusion proof does not reach the root")
    if r != expected_root:
        raise _fail(
            "root",
            f"inclusion proof for leaf {index} gives a root that is not the expected root of the "
            f"tree of size {size}: the leaf is not in that tree, or the proof is corrupt",
        )


# --- consistency proofs (RFC 9162 §2.1.4) ---------------------------------------------------------


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): proof that the first `old_size` leaves' tree is a prefix of this tree."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise ValueError(f"old size {old_size} must be in 1..{n}")
    if old_size == n:
        return []
    proof: list[bytes] = []
    m, lo, hi, complete = old_size, 0, n, True
    # SUBPROOF(m, D[lo:hi], complete), unrolled: each step descends into one child and records
    # the root of the other.
    while True:
        size = hi - lo
        if m == size:
            if not complete:
                proof.append(root(leaf_hashes[lo:hi]))
            break
        k = _split(size)
        if m <= k:
            proof.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    proof.reverse()
    return proof


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """How many hashes a consistency proof from `old_size` to `new_size` has (0 < old <= new)."""
    if old_size == new_size:
        return 0
    # The old tree's last complete subtree sits at `level`; above it the proof is an inclusion
    # proof of that subtree, plus the subtree's own hash unless the old tree is that subtree.
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    length = inclusion_proof_length(index, ((new_size - 1) >> level) + 1)
    return length + (0 if index == 0 else 1)


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check that the tree (`new_size`, `new_root`) extends the tree (`old_size`, `old_root`).

    RFC 9162 §2.1.4.2, plus the equal-size case (empty proof, equal roots). Returns None;
    raises RejectedInput naming the failed check.
    """
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    if old_size > new_size:
        raise _fail("argument", f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0:
        raise _fail(
            "argument",
            "a consistency proof from the empty tree proves nothing; check the new tree directly",
        )
    want = consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise _fail(
            "proof_length",
            f"consistency proof has {len(proof)} hashes; from size {old_size} to size "
            f"{new_size} it needs exactly {want}",
        )
    for i, h in enumerate(proof):
        _check_hash(h, f"consistency proof hash {i}")
    if old_size == new_size:
        if old_root != new_root:
            raise _fail(
                "root",
                f"two different roots for the same tree size {old_size}: the log has forked",
            )
        return

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one: its root is the proof's first node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _fail("proof_length", "consistency proof is longer than the tree is tall")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("proof_length", "consistency proof does not reach the new root")
    if fr != old_root:
        raise _fail(
            "old_root",
            f"consistency proof does not rebuild the old root of size {old_size}: the old "
            "checkpoint is not a prefix of the new one, or the proof is corrupt",
        )
    if sr != new_root:
        raise _fail(
            "root",
            f"consistency proof does not rebuild the new root of size {new_size}: the new "
            "checkpoint does not extend the old one, or the proof is corrupt",
        )


# --- incremental root -----------------------------------------------------------------------------


class Frontier:
    """The right edge of a growing tree: one hash per complete subtree, largest first.

    A tree of n leaves is the concatenation of complete subtrees whose sizes are the set bits of
    n, so popcount(n) <= 64 hashes are enough to append and to compute the root.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_state(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """Rebuild from `size` and `hashes` as saved from `.size` and `.hashes`."""
        _check_size(size, "frontier size")
        if len(hashes) != size.bit_count():
            raise _fail(
                "argument",
                f"a frontier of size {size} has {size.bit_count()} hashes, got {len(hashes)}",
            )
        for i, h in enumerate(hashes):
            _check_hash(h, f"frontier hash {i}")
        out = cls()
        out._size = size
        out._hashes = list(hashes)
        return out

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        _check_hash(leaf, "leaf hash")
        if self._size >= MAX_TREE_SIZE:
            raise _fail("argument", "tree is full")
        h = leaf
        # Each trailing 1 bit of the old size is a complete subtree of the same height as the
        # carry: merge them, like binary addition.
        n = self._size
        while n & 1:
            h = node_hash(self._hashes.pop(), h)
            n >>= 1
        self._hashes.append(h)
        self._size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The root of the tree so far (EMPTY_ROOT when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r


# --- checks ---------------------------------------------------------------------------------------


def _fail(check: str, message: str) -> RejectedInput:
    return RejectedInput(Code.MALFORMED, message, check=check)


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise _fail("argument", f"{what} must be a {HASH_BYTES}-byte SHA-256 hash, got {got}")


def _check_size(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise _fail("argument", f"{what} must be an integer in 0..2^64-1, got {value!r}")
