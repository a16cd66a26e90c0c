"""Reading the stored Merkle tree: its size, the root of any past size, proofs, in O(log n) hashes.

Proofs are computed twice: once to learn which stored hashes they need, then, with those
fetched in one query, for real. So a proof costs one round trip, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from projections.merkle.hashing import (
    CompactRange,
    ProofError,
    Subtree,
    consistency_proof,
    edge_hash,
    inclusion_proof,
    is_whole,
    root,
    whole_subtrees,
)
from projections.store import ViewConnection
from projections.view import Table

MERKLE_NODES = Table(
    "merkle_nodes",
    "level INTEGER NOT NULL, node_index BIGINT NOT NULL, hash TEXT NOT NULL",
    key=("level", "node_index"),
)
"""Node (level, index) is the hash (hex) of the leaves [index·2^level, (index+1)·2^level)."""

_PLACEHOLDER = bytes(32)
T = TypeVar("T")


class NodeReader:
    """The stored tree, read through one connection (readers use the SQL view named `merkle_nodes`)."""

    def __init__(self, connection: ViewConnection, table: str = MERKLE_NODES.name) -> None:
        self.connection = connection
        self.table = table

    def size(self) -> int:
        """How many leaves the tree has."""
        ((found,),) = self.connection.execute(f"SELECT MAX(node_index) FROM {self.table} WHERE level = 0")
        return 0 if found is None else int(found) + 1

    def compact_range(self) -> CompactRange:
        """The tree as it stands, ready to grow."""
        size = self.size()
        parts = self._computed(lambda subtree: [subtree(a, b) for a, b in whole_subtrees(0, size)])
        hashes = dict(zip(whole_subtrees(0, size), parts, strict=True))
        return CompactRange.resume(size, lambda start, end: hashes[(start, end)])

    def root(self, size: int) -> bytes:
        """The root of the tree when it had `size` leaves."""
        self._check(size)
        return self._computed(lambda subtree: root(size, subtree))

    def proving(self, index: int, size: int) -> tuple[list[bytes], bytes, bytes]:
        """The audit path of leaf `index` in the tree of `size` leaves, the leaf's hash and the tree's
        root: one round trip for the three."""
        self._check(size)
        return self._computed(
            lambda subtree: (
                inclusion_proof(index, size, subtree),
                subtree(index, index + 1),
                root(size, subtree),
            )
        )

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The proof that the tree of `old` leaves is a prefix of the tree of `new`."""
        self._check(new)
        return self._computed(lambda subtree: consistency_proof(old, new, subtree))

    def _check(self, size: int) -> None:
        held = self.size()
        if size > held:
            raise ProofError(f"the tree has {held} leaves, not {size}")

    def _computed(self, compute: Callable[[Subtree], T]) -> T:
        """Run `compute` once to learn the stored hashes it needs, fetch them at once, run it for real."""
        wanted: set[tuple[int, int]] = set()

        def recording(start: int, end: int) -> bytes:
            wanted.update(_node(a, b) for a, b in whole_subtrees(start, end))
            return _PLACEHOLDER

        compute(recording)
        hashes = self._fetch(wanted)
        return compute(lambda start, end: edge_hash(start, end, lambda a, b: hashes[_node(a, b)]))

    def _fetch(self, nodes: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not nodes:
            return {}
        ordered = sorted(nodes)
        where = " OR ".join(["(level = ? AND node_index = ?)"] * len(ordered))
        rows = self.connection.execute(
            f"SELECT level, node_index, hash FROM {self.table} WHERE {where}",
            [value for node in ordered for value in node],
        )
        found = {(int(level), int(index)): bytes.fromhex(value) for level, index, value in rows}
        if len(found) != len(ordered):
            raise RuntimeError(f"the Merkle tree lacks stored nodes {sorted(set(ordered) - set(found))}")
        return found


def _node(start: int, end: int) -> tuple[int, int]:
    """The (level, index) of the aligned subtree [start, end)."""
    assert is_whole(start, end)
    level = (end - start).bit_length() - 1
    return level, start >> level
