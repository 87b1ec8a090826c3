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
- One tree, `Tree`: appends leaf hashes and gives the root and proofs of any prefix without
  rehashing; `Frontier` is the same tree kept compact (O(log n) memory) for walking long chains.
  `root`, `inclusion_proof` and `consistency_proof` over a list are that tree built once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from parley.errors import Code, RejectedInput
from parley.protocol.crypto import sha256, sha256_new

HASH_BYTES = 32
EMPTY_ROOT = sha256(b"")
# Tree sizes travel as uint64 in C2SP checkpoints and RFC 9162 structures.
MAX_TREE_SIZE = 2**64 - 1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return sha256(_LEAF_PREFIX + entry)


def leaf_hashes(entries: bytes | bytearray) -> bytes:
    """The leaf hashes of 32-byte entries laid end to end, laid end to end likewise (a
    transcript span's envelope hashes: one call per span, not one per envelope)."""
    if len(entries) % HASH_BYTES:
        raise _fail("argument", f"entries must be {HASH_BYTES}-byte hashes end to end")
    prefix = _LEAF_PREFIX
    return b"".join(
        [
            sha256_new(prefix + entries[i : i + HASH_BYTES]).digest()
            for i in range(0, len(entries), HASH_BYTES)
        ]
    )


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return sha256(_NODE_PREFIX + left + right)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes (the tree head of RFC 9162 §2.1.1)."""
    return Tree(leaf_hashes).root()


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw entries: the root of their leaf hashes."""
    return root([leaf_hash(e) for e in entries])


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- inclusion proofs (RFC 9162 §2.1.3) -----------------------------------------------------------


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the audit path for leaf `index`, nearest sibling first."""
    return Tree(leaf_hashes).inclusion_proof(index)


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
    return Tree(leaf_hashes).consistency_proof(old_size)


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
        if type(h) is not bytes or len(h) != HASH_BYTES:  # the message only if needed
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


# --- the tree -----------------------------------------------------------------------------------


class Tree:
    """An append-only RFC 9162 tree that keeps the hash of every complete, aligned subtree.

    Level h holds the roots of the aligned subtrees of 2^h leaves, so it has size >> h nodes.
    Every subtree the RFC's recursive definitions ask for is either one of them (a lookup) or
    splits into one plus a smaller right part, so a root or proof for any prefix costs
    O(log^2 n) hashes instead of rehashing the leaves: a station checkpointing a long chain every
    few dozen envelopes would otherwise hash it from the start each time.

    Appending is binary addition: a new node merges with the last node of its level while that
    level's count is odd. A compact tree (`Frontier`) drops every node a later append or the
    current root cannot need, keeping one per set bit of the size (at most 64).
    """

    __slots__ = ("_base", "_compact", "_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = (), *, compact: bool = False) -> None:
        self._size = 0
        self._compact = compact
        self._levels: list[list[bytes]] = [[]]
        self._base = [0]  # the index within its level of each level's first node still held
        leaves = list(leaf_hashes)
        if compact or not leaves:
            for leaf in leaves:
                self.append(leaf)
            return
        for i, leaf in enumerate(leaves):
            _check_hash(leaf, f"leaf hash {i}")
        if len(leaves) > MAX_TREE_SIZE:
            raise _fail("argument", "tree is full")
        # Built level by level: the same nodes `append` makes, without a loop per leaf.
        level = leaves
        self._levels = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)
        self._base = [0] * len(self._levels)
        self._size = len(leaves)

    @property
    def size(self) -> int:
        return self._size

    def leaf(self, index: int) -> bytes:
        return self._node(0, index)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        _check_hash(leaf, "leaf hash")
        if self._size >= MAX_TREE_SIZE:
            raise _fail("argument", "tree is full")
        levels, base = self._levels, self._base
        i, h, node = self._size, 0, leaf
        levels[0].append(leaf)
        while i & 1:  # this node completes a subtree one level up
            node = node_hash(levels[h][i - 1 - base[h]], node)
            h, i = h + 1, i >> 1
            if len(levels) == h:
                levels.append([])
                base.append(i)
            levels[h].append(node)
        self._size += 1
        if self._compact:
            # Levels below h now have an even count: their nodes are merged into level h.
            for k in range(h):
                base[k] += len(levels[k])
                levels[k].clear()
            base[h] += len(levels[h]) - 1
            del levels[h][:-1]

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaf hashes: the nodes `append` makes one by one, made a level at a time (a
        transcript's verifier adds a span of some 3,200 envelopes at once)."""
        new = list(leaves)
        if self._compact or len(new) < 2:
            for leaf in new:
                self.append(leaf)
            return
        for i, leaf in enumerate(new):
            if type(leaf) is not bytes or len(leaf) != HASH_BYTES:  # the message only if needed
                _check_hash(leaf, f"leaf hash {i}")
        self._extend_checked(new)

    def extend_packed(self, leaves: bytes) -> None:
        """`extend` with the leaf hashes laid end to end, HASH_BYTES each (a transcript span's
        leaves as spans.Run holds them): each slice is a hash, so none is checked alone."""
        if type(leaves) is not bytes or len(leaves) % HASH_BYTES:
            raise _fail("argument", f"leaves must be {HASH_BYTES}-byte hashes end to end")
        new = [leaves[i : i + HASH_BYTES] for i in range(0, len(leaves), HASH_BYTES)]
        if self._compact or len(new) < 2:
            for leaf in new:
                self.append(leaf)
            return
        self._extend_checked(new)

    def _extend_checked(self, new: list[bytes]) -> None:
        count = len(new)
        if self._size + count > MAX_TREE_SIZE:
            raise _fail("argument", "tree is full")
        levels = self._levels  # a full tree: every level holds its nodes from index 0
        start, h = self._size, 0
        while new:
            level = levels[h]
            level += new
            # Nodes start..end-1 of level h are new; each pair they complete makes a parent.
            lo, hi = start >> 1, (start + len(new)) >> 1
            if lo >= hi:
                break
            prefix = _NODE_PREFIX  # node_hash, without a call per node
            new = [
                sha256_new(prefix + level[2 * j] + level[2 * j + 1]).digest() for j in range(lo, hi)
            ]
            start, h = lo, h + 1
            if len(levels) == h:
                levels.append([])
                self._base.append(0)
        self._size += count

    def subtree(self, height: int, index: int) -> bytes:
        """The root of the aligned subtree of 2^height leaves number `index` (it must be
        complete within the tree): the hashes C2SP tlog-tiles serves."""
        if height < 0 or index < 0 or (index + 1) << height > self._size:
            raise ValueError(f"no complete subtree {index} of height {height} in {self._size}")
        return self._node(height, index)

    def _node(self, h: int, i: int) -> bytes:
        j = i - self._base[h]
        if j < 0:
            raise ValueError("a compact tree keeps only what its root needs")
        return self._levels[h][j]

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0:  # a power of two: the RFC's recursion only asks for aligned ones
            h = n.bit_length() - 1
            return self._node(h, lo >> h)
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def _prefix(self, n: int | None) -> int:
        n = self._size if n is None else n
        if not 0 <= n <= self._size:
            raise ValueError(f"the tree has {self._size} leaves, not {n}")
        return n

    def root(self, n: int | None = None) -> bytes:
        """MTH of the first `n` leaves (all of them by default); EMPTY_ROOT for none."""
        n = self._prefix(n)
        return self._mth(0, n) if n else EMPTY_ROOT

    def inclusion_proof(self, index: int, n: int | None = None) -> list[bytes]:
        """PATH(index, D[n]) (RFC 9162 §2.1.3.1), nearest the leaf first."""
        n = self._prefix(n)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} is outside a tree of size {n}")
        path: list[bytes] = []
        lo, hi = 0, n
        # Walk down from the root, remembering each sibling subtree; the RFC lists them bottom-up.
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) (RFC 9162 §2.1.4.1) for 0 < m <= n, nearest the leaves first."""
        n = self._prefix(n)
        if not 0 < m <= n:
            raise ValueError(f"old size {m} must be in 1..{n}")
        proof: list[bytes] = []
        lo, hi, complete = 0, n, True
        # SUBPROOF(m, D[lo:hi], complete), unrolled: each step descends into one child and
        # records the root of the other.
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._mth(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._mth(lo, hi))
        proof.reverse()
        return proof


class Frontier(Tree):
    """A compact `Tree`: the right edge of a growing tree, one hash per complete subtree,
    largest first, enough to append and to compute the root in O(log n) memory."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(compact=True)

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
        height = max(size.bit_length(), 1)
        out._levels = [[] for _ in range(height)]
        out._base = [size >> level for level in range(height)]
        edge = iter(hashes)
        for level in reversed(range(height)):
            if size >> level & 1:
                out._levels[level].append(next(edge))
                out._base[level] -= 1
        out._size = size
        return out

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(level[-1] for level in reversed(self._levels) if level)


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
