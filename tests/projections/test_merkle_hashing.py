"""RFC 6962 hashing: the conformance vectors pass, and every proof agrees with a naive recomputation."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.merkle.hashing import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    edge_hash,
    inclusion_proof,
    is_whole,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion,
    split,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc6962"
"""The RFC 6962 conformance vectors of transparency-dev/merkle (Apache 2.0, its licence beside them),
copied from ../shared/testdata so that a clean checkout tests itself anywhere."""


def b64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def vectors(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).glob("*/*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return [pytest.param(json.loads(f.read_text()), id=f"{f.parent.name}/{f.stem}") for f in files]


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 defines it, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def naive_subtree(leaves: list[bytes]) -> Any:
    return lambda start, end: naive_root(leaves[start:end])


def stored_subtree(leaves: list[bytes]) -> Any:
    """Subtree hashes the way the log answers them: stored aligned nodes, folded at the edge."""
    nodes: dict[tuple[int, int], bytes] = {}
    growing = CompactRange()
    for leaf in leaves:
        for level, index, value in growing.append(leaf):
            nodes[(level, index)] = value

    def whole(start: int, end: int) -> bytes:
        assert is_whole(start, end)
        level = (end - start).bit_length() - 1
        return nodes[(level, start >> level)]

    return lambda start, end: edge_hash(start, end, whole)


def test_the_reference_leaf_and_node_hashes() -> None:
    reference = json.loads((VECTORS / "reference.json").read_text())
    assert EMPTY_ROOT.hex() == reference["empty_root"]
    assert leaf_hash(b"").hex() == reference["leaf_hash_of_empty"]
    leaves = [leaf_hash(bytes.fromhex(h)) for h in reference["leaf_inputs_hex"]]
    for size, expected in enumerate(reference["roots_by_tree_size_hex"]):
        assert naive_root(leaves[:size]).hex() == expected
        assert root(size, stored_subtree(leaves[:size])).hex() == expected


@pytest.mark.parametrize("case", vectors("inclusion"))
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    proof = [b64(p) for p in case["proof"] or []]
    check = (case["leafIdx"], case["treeSize"], b64(case["leafHash"]), proof, b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*check)
    else:
        verify_inclusion(*check)


@pytest.mark.parametrize("case", vectors("consistency"))
def test_consistency_vectors(case: dict[str, Any]) -> None:
    proof = [b64(p) for p in case["proof"] or []]
    check = (case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*check)
    else:
        verify_consistency(*check)


def test_the_compact_range_names_every_subtree_a_leaf_completes() -> None:
    growing = CompactRange()
    made = [growing.append(leaf_hash(bytes([i]))) for i in range(8)]
    assert [[(level, index) for level, index, _ in m] for m in made] == [
        [(0, 0)], [(0, 1), (1, 0)], [(0, 2)], [(0, 3), (1, 1), (2, 0)],
        [(0, 4)], [(0, 5), (1, 2)], [(0, 6)], [(0, 7), (1, 3), (2, 1), (3, 0)],
    ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 1000), data=st.data())
def test_every_proof_agrees_with_a_naive_recomputation(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    stored, naive = stored_subtree(leaves), naive_subtree(leaves)
    tree_root = naive_root(leaves)
    growing = CompactRange()
    for leaf in leaves:
        growing.append(leaf)
    assert growing.root() == tree_root == root(size, stored)
    for index in data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=5)):
        proof = inclusion_proof(index, size, stored)
        assert proof == inclusion_proof(index, size, naive)
        assert root_from_inclusion(index, size, leaves[index], proof) == tree_root
    for old in data.draw(st.lists(st.integers(1, size), min_size=1, max_size=5)):
        proof = consistency_proof(old, size, stored)
        assert proof == consistency_proof(old, size, naive)
        verify_consistency(old, size, naive_root(leaves[:old]), tree_root, proof)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(2, 300), data=st.data())
def test_a_proof_with_one_hash_changed_fails(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    subtree = naive_subtree(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, subtree)
    if proof:
        spot = data.draw(st.integers(0, len(proof) - 1))
        proof[spot] = bytes([proof[spot][0] ^ 1]) + proof[spot][1:]
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[index], proof, naive_root(leaves))
    old = data.draw(st.integers(1, size - 1))
    consistency = consistency_proof(old, size, subtree)
    consistency[0] = bytes([consistency[0][0] ^ 1]) + consistency[0][1:]
    with pytest.raises(ProofError):
        verify_consistency(old, size, naive_root(leaves[:old]), naive_root(leaves), consistency)
