"""RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion and consistency proofs, and their verification.

The tree is never held in memory. Every function takes `subtree(start, end)`: the hash of the
leaves `[start, end)`. The ranges asked for are whole aligned subtrees (a power of two leaves,
starting at a multiple of it), which a store keeps, or the right edge of a tree, which
`edge_hash` folds from O(log n) whole subtrees. So a proof costs O(log n) stored hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

Subtree = Callable[[int, int], bytes]
"""The hash of the leaves `[start, end)` of the tree."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify (or cannot, for the sizes and index given)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """The largest power of two smaller than `size` (size ≥ 2): where RFC 6962 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def is_whole(start: int, end: int) -> bool:
    """Whether `[start, end)` is an aligned subtree: a power of two leaves, starting at a multiple of it."""
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def whole_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The aligned subtrees `[start, end)` is made of, left to right, as RFC 6962 splits it."""
    if start >= end:
        return []
    parts = []
    while not is_whole(start, end):
        middle = start + split(end - start)
        parts.append((start, middle))
        start = middle
    return [*parts, (start, end)]


def edge_hash(start: int, end: int, whole: Subtree) -> bytes:
    """The hash of `[start, end)` from the hashes of its aligned subtrees (`whole`)."""
    parts = [whole(a, b) for a, b in whole_subtrees(start, end)]
    value = parts[-1]
    for part in reversed(parts[:-1]):
        value = node_hash(part, value)
    return value


def root(size: int, subtree: Subtree) -> bytes:
    """The root of the tree of `size` leaves."""
    return EMPTY_ROOT if size == 0 else subtree(0, size)


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[size]): the audit path of a leaf (RFC 9162 2.1.3.1)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + split(end - start)
        if index < middle:
            proof.append(subtree(middle, end))
            end = middle
        else:
            proof.append(subtree(start, middle))
            start = middle
    return proof[::-1]


def consistency_proof(old: int, new: int, subtree: Subtree) -> list[bytes]:
    """PROOF(old, D[new]): the tree of `old` leaves is a prefix of the tree of `new` (RFC 9162 2.1.4.1)."""
    if not 0 <= old <= new:
        raise ProofError(f"no consistency proof from {old} to {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    start, end, whole_old = 0, new, True
    while True:
        if old - start == end - start:  # SUBPROOF(m, D[m], b)
            if not whole_old:
                proof.append(subtree(start, end))
            break
        middle = start + split(end - start)
        if old <= middle:
            proof.append(subtree(middle, end))
            end = middle
        else:
            proof.append(subtree(start, middle))
            start, whole_old = middle, False
    return proof[::-1]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a leaf and its audit path lead to (RFC 9162 2.1.3.2); ProofError if they cannot."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    _check_hash(leaf)
    fn, sn, value = index, size - 1, leaf
    for sibling in proof:
        _check_hash(sibling)
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            value = node_hash(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return value


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise ProofError unless `proof` shows the leaf at `index` in the tree of `size` and `expected_root`."""
    _check_hash(expected_root)
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise ProofError(f"leaf {index} is not in the tree of {size} with that root")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless `proof` shows the tree of `old` leaves is a prefix of the tree of `new`
    (RFC 9162 2.1.4.2)."""
    for value in proof:
        _check_hash(value)
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from {old} to {new} (the empty tree proves nothing)")
    if old == new:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need an empty proof and equal roots")
        return
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(value, fr)
            sr = node_hash(value, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the root of the tree of {old}")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the root of the tree of {new}")


def _check_hash(value: bytes) -> None:
    if len(value) != 32:
        raise ProofError("every hash is 32 bytes (SHA-256)")


class CompactRange:
    """The root of a growing tree in O(log n) memory: append leaf hashes, ask for the root at any time.

    Holds the hashes of the aligned subtrees the leaves so far make (at most one per level),
    as the verifier needs to recompute a million-leaf tree in one pass.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    @classmethod
    def resume(cls, size: int, whole: Subtree) -> CompactRange:
        """The range of a tree of `size` leaves, from the hashes of its aligned subtrees."""
        growing = cls()
        if size:
            growing._stack = [whole(a, b) for a, b in whole_subtrees(0, size)]
        growing.size = size
        return growing

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns every aligned subtree it completes, as (level, index, hash)."""
        index = self.size
        made = [(0, index, leaf)]
        value, bits, level = leaf, index, 0
        while bits & 1:
            value = node_hash(self._stack.pop(), value)
            bits, level = bits >> 1, level + 1
            made.append((level, index >> level, value))
        self._stack.append(value)
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        value = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            value = node_hash(left, value)
        return value
