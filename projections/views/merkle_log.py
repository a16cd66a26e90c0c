"""`merkle_log`: the RFC 6962 Merkle tree over the public log, one leaf per log index.

A tracked follower like every view: the leaves and the position move in one transaction.
It keeps every aligned subtree's hash (`merkle_nodes`: a leaf, and each parent the leaf
completes; two rows per event on average), so the root of any past tree size, and any
inclusion or consistency proof, costs O(log n) stored hashes (`projections.merkle.store`).
The leaf index is the event's rank in the log, as the sequencer (`event_log`) numbers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from projections.merkle.hashing import CompactRange, leaf_hash
from projections.merkle.leaf import leaf_bytes
from projections.merkle.store import MERKLE_NODES, NodeReader
from projections.view import Envelope, View, Writer

if TYPE_CHECKING:
    from domain.ledger import Ledger


class MerkleLogView(View):
    """The Merkle tree of the log: every leaf hash and every complete subtree's hash."""

    name = "merkle_log"
    schema_version = 1
    tables = (MERKLE_NODES,)
    shareable = False
    """A leaf's index is its rank over the whole log: it cannot be built in shares of aggregates."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self._range: CompactRange | None = None

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        if self._range is None:
            self._range = NodeReader(writer.connection, writer.table(MERKLE_NODES)).compact_range()
        growing, rows = self._range, []
        for envelope in batch:
            aggregate_id, version = envelope.aggregate
            leaf = leaf_bytes(
                growing.size,
                aggregate_id,
                version,
                envelope.topic,
                envelope.stored["timestamp"],
                envelope.payload,
            )
            rows += [(level, index, value.hex()) for level, index, value in growing.append(leaf_hash(leaf))]
        writer.executemany(
            f"INSERT INTO {writer.table(MERKLE_NODES)} (level, node_index, hash) VALUES (?, ?, ?)", rows
        )

    def forget(self) -> None:
        self._range = None
