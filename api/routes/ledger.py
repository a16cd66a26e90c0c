"""Tamper evidence over HTTP: the signed checkpoint, the public keys, inclusion and consistency proofs.

Everything here is public (no key needed): anyone holding evidence must be able to check it.
Hashes and signatures are public; an event's leaf bytes are the event itself, so an inclusion
proof holds them only for a key that may read that event in the feed (an integrator's within
its filters, an administrator's). Hashes are base64, as in the RFC 6962 conformance vectors;
every answer holds what a client needs to verify offline.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from api.access import authenticated, bearer, feed_filter
from api.feed.envelope import Sequenced
from api.feed.log import PublicLog
from api.problems import MALFORMED_PATH, NOT_CAUGHT_UP, VALIDATION_FAILED, ApiProblem, documented
from api.reading import ViewReader
from api.routes.common import LOG_INDEX_MAX
from domain.errors import NotFound
from projections.merkle.checkpoints import CheckpointStore, StoredCheckpoint
from projections.merkle.hashing import ProofError
from projections.merkle.leaf import leaf_bytes
from projections.merkle.store import NodeReader

router = APIRouter(prefix="/ledger", tags=["integrity"], responses=MALFORMED_PATH)

ERRORS = documented(
    {
        404: "No checkpoint has been signed yet, or no event has this index",
        422: "The sizes or index do not fit the log",
        503: "The Merkle log is not built yet (see Retry-After)",
    }
)
NOTE_MEDIA = "text/plain; charset=utf-8"


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def nodes(request: Request) -> Iterator[NodeReader]:
    """The stored Merkle tree, once the view has been built."""
    reader: ViewReader = request.app.state.reader
    if not reader.built():
        raise ApiProblem(NOT_CAUGHT_UP, "the Merkle log is not built yet", {"Retry-After": "5"})
    with reader.connection() as connection:
        yield NodeReader(connection)


Nodes = Annotated[NodeReader, Depends(nodes)]


def latest(request: Request) -> StoredCheckpoint:
    """The latest signed checkpoint; 404 until one is signed."""
    store: CheckpointStore = request.app.state.checkpoints
    found = store.latest()
    if found is None:
        raise NotFound("no checkpoint has been signed yet", kind="Checkpoint")
    return found


class InclusionProof(BaseModel):
    """That the event at `index` is the leaf `leaf_hash` of the tree of `tree_size` leaves with `root`."""

    index: int
    tree_size: int
    leaf_hash: str = Field(description="SHA-256(0x00 ‖ leaf), base64.")
    leaf: str | None = Field(
        None,
        description="The leaf bytes (the event itself), base64, for a key that may read the event in the "
        "feed; their encoding: docs/verify.md.",
    )
    proof: list[str] = Field(description="The audit path, base64, bottom up (RFC 9162 2.1.3).")
    root: str = Field(description="The root of the tree of `tree_size` leaves, base64.")
    checkpoint: str | None = Field(None, description="The signed checkpoint of this tree size, if signed.")


class ConsistencyProof(BaseModel):
    """That the tree of `from` leaves is a prefix of the tree of `to` leaves."""

    from_size: int = Field(serialization_alias="from")
    to_size: int = Field(serialization_alias="to")
    from_root: str
    to_root: str
    proof: list[str] = Field(description="Base64, ordered as RFC 9162 2.1.4 builds it.")


class PublicKeys(BaseModel):
    """Every public key that has signed checkpoints of this log (note verifier keys), oldest first."""

    current: str | None
    keys: list[str]


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="Read the latest signed checkpoint.",
    responses={200: {"content": {NOTE_MEDIA: {}}, "description": "A C2SP signed note"}, **ERRORS},
)
def checkpoint(request: Request) -> PlainTextResponse:
    """The latest checkpoint (origin, tree size, root) as a C2SP signed note, signed with Ed25519."""
    return PlainTextResponse(latest(request).note, headers={"Cache-Control": "no-cache"})


@router.get(
    "/public-key",
    response_class=PlainTextResponse,
    summary="Read the key that signs checkpoints.",
    responses={200: {"content": {NOTE_MEDIA: {}}, "description": "A note verifier key"}, **ERRORS},
)
def public_key(request: Request) -> PlainTextResponse:
    """The current signing key as a note verifier key: `<name>+<hash>+<base64 Ed25519 key>`."""
    keys = _keys(request)
    if keys.current is None:
        raise NotFound("this ledger has no signing key yet (`dutyledger init` makes one)", kind="SigningKey")
    return PlainTextResponse(keys.current + "\n")


@router.get("/public-keys", response_model=PublicKeys, summary="List every key that has signed checkpoints.")
def public_keys(request: Request) -> PublicKeys:
    """The current signing key and every earlier one: checkpoints signed before a rotation stay verifiable."""
    return _keys(request)


def _keys(request: Request) -> PublicKeys:
    store: CheckpointStore = request.app.state.checkpoints
    known = [key.text() for key in store.verifiers()]
    signer = request.app.state.signer
    return PublicKeys(
        current=signer.verifier.text() if signer else (known[-1] if known else None), keys=known
    )


@router.get(
    "/proofs/inclusion",
    response_model=InclusionProof,
    response_model_exclude_none=True,
    summary="Prove an event is in the log.",
    responses=ERRORS,
)
def inclusion(
    request: Request,
    tree: Nodes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    index: Annotated[int, Query(ge=0, le=LOG_INDEX_MAX, description="The event's log index.")],
    tree_size: Annotated[
        int | None,
        Query(
            ge=1, le=LOG_INDEX_MAX, description="The tree to prove it in; default: the latest checkpoint's."
        ),
    ] = None,
) -> InclusionProof:
    """The audit path of the event at `index` in the tree of `tree_size` leaves, with the leaf and root."""
    size = tree_size if tree_size is not None else latest(request).checkpoint.size
    return inclusion_proof(request, tree, index, size, readable=_readable(request, credentials, index))


def _readable(
    request: Request, credentials: HTTPAuthorizationCredentials | None, index: int
) -> Sequenced | None:
    """The event at `index` if the caller's key (if any; 401 if not a live one) reads it in the feed."""
    if credentials is None:
        return None
    try:
        chosen = feed_filter(request, authenticated(request, credentials))
    except ApiProblem as refused:
        if refused.kind.status == 401:
            raise
        return None
    log: PublicLog = request.app.state.public_log
    event = log.at(index)
    return event if event is not None and log.lets_through(event, chosen) else None


def inclusion_proof(
    request: Request, tree: NodeReader, index: int, size: int, *, readable: Sequenced | None
) -> InclusionProof:
    """The inclusion proof of one event, with the checkpoint of that size if signed, and the event's
    leaf bytes if the caller may read the event (`readable`)."""
    try:
        path, leaf, root = tree.proving(index, size)
    except ProofError as error:
        raise ApiProblem(VALIDATION_FAILED, str(error), index=index, tree_size=size) from None
    store: CheckpointStore = request.app.state.checkpoints
    signed = store.of_size(size)
    return InclusionProof(
        index=index,
        tree_size=size,
        leaf_hash=b64(leaf),
        leaf=None if readable is None else b64(_leaf_bytes(readable)),
        proof=[b64(h) for h in path],
        root=b64(root),
        checkpoint=signed.note if signed else None,
    )


def _leaf_bytes(event: Sequenced) -> bytes:
    _, aggregate_id, version, topic, payload = event.row
    return leaf_bytes(event.index, aggregate_id, version, topic, event.common().recorded_at, payload)


@router.get(
    "/proofs/consistency",
    response_model=ConsistencyProof,
    summary="Prove an older tree is a prefix of a newer one.",
    responses=ERRORS,
)
def consistency(
    tree: Nodes,
    from_size: Annotated[
        int, Query(alias="from", ge=1, le=LOG_INDEX_MAX, description="The older tree size.")
    ],
    to_size: Annotated[int, Query(alias="to", ge=1, le=LOG_INDEX_MAX, description="The newer tree size.")],
) -> ConsistencyProof:
    """The consistency proof from the tree of `from` leaves to the tree of `to` leaves, with both roots."""
    try:
        proof = tree.consistency(from_size, to_size)
        roots = tree.root(from_size), tree.root(to_size)
    except ProofError as error:
        raise ApiProblem(VALIDATION_FAILED, str(error), from_size=from_size, to_size=to_size) from None
    return ConsistencyProof(
        from_size=from_size,
        to_size=to_size,
        from_root=b64(roots[0]),
        to_root=b64(roots[1]),
        proof=[b64(h) for h in proof],
    )
