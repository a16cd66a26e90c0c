"""Case queries: one case (now or as of an instant), the list, the timeline, who was responsible when."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from api.commands import etag
from api.identity import IdentityStatus, IdentityStore
from api.problems import NOT_CAUGHT_UP, VALIDATION_FAILED, ApiProblem, documented
from api.routes.common import READ_ERRORS, Reader, ReadScope, Views, aware, read_route
from api.routes.events import covering_checkpoint
from api.routes.ledger import b64
from domain.case import Case
from domain.errors import NotFound
from domain.ledger import Ledger
from projections.merkle.hashing import ProofError
from projections.merkle.leaf import leaf_bytes
from projections.merkle.store import NodeReader
from projections.queries import (
    CaseFilter,
    CaseRow,
    Readable,
    Responsibility,
    TimelineRow,
    case_as_of,
    case_timeline,
    get_case,
    list_cases,
    responsibility_at,
)
from projections.store import ViewConnection
from projections.views.event_log import EVENT_LOG

router = APIRouter(prefix="/cases", tags=["case queries"], responses=READ_ERRORS)


class CaseView(CaseRow):
    """A case as the views hold it; `petitioner_id` is withheld from a reader accused in the case."""

    petitioner_id: UUID | None  # type: ignore[assignment]
    petitioner_withheld: bool = False
    petitioner_identity: IdentityStatus | Literal["withheld"] = Field(
        description="Whether an identity is on file for the petitioner (read it at /cases/{id}/petitioner), "
        "was erased, or is withheld from this reader."
    )


class CasePage(BaseModel):
    """A page of cases; pass `next` as `after` for the following page (absent on the last)."""

    items: list[CaseView]
    next: str | None


class CaseSnapshot(BaseModel):
    """A case as a from-scratch replay of its events up to an instant gives it."""

    model_config = ConfigDict(from_attributes=True)
    case_id: UUID = Field(validation_alias=AliasChoices("case_id", "id"))
    version: int
    as_of: datetime
    axis: Literal["recorded", "occurred"]
    status: str
    unit_id: UUID | None
    responsible_cadre_id: UUID | None
    handler_id: UUID | None
    owning_leader_id: UUID | None
    first_receiver_id: UUID | None
    acceptance_notice_due: date | None
    accepted_at: datetime | None
    reply_due: date | None
    extended: bool
    replied_at: datetime | None
    reply_outcome: str | None
    rating: str | None
    review_stage: str
    closure: str | None
    closed_at: datetime | None
    ended: bool
    reopen_count: int
    action_count: int
    hearing_count: int
    leapfrog_count: int


def _today(request: Request) -> date:
    ledger: Ledger = request.app.state.ledger
    return ledger.clock.now().date()


def _visible(request: Request, views: ViewConnection, reader: ReadScope, case_id: UUID) -> CaseView:
    """The case if the reader may see it: 404 when there is none, 403 when it is outside the scope."""
    row = get_case(views, case_id, _today(request))
    if row is None:
        raise NotFound(f"no case {case_id}", kind="Case")
    reader.check_case(row)
    return _shown(request, views, [row], reader)[0]


def _shown(request: Request, views: ViewConnection, rows: list[CaseRow], reader: ReadScope) -> list[CaseView]:
    """The rows as this reader may see them: what identifies the petitioner withheld from the accused.

    That is the petitioner's id, and the link to an earlier petition of the same petitioner
    (`repeat_of`) in either direction: from a case accusing the reader, and to one.
    """
    identities: IdentityStore = request.app.state.identities
    statuses = identities.statuses(row.petitioner_id for row in rows)
    earlier = {row.repeat_of for row in rows if row.repeat_of is not None}
    accusing = {
        case_id
        for case_id in earlier
        if (found := get_case(views, case_id, _today(request))) is not None and reader.accused_in(found)
    }
    shown = []
    for row in rows:
        if reader.accused_in(row):
            hidden = {
                "petitioner_id": None,
                "petitioner_withheld": True,
                "petitioner_identity": "withheld",
                "repeat_of": None,
            }
            shown.append(CaseView.model_construct(**(vars(row) | hidden)))
            continue
        seen: dict[str, object] = {"petitioner_identity": statuses[row.petitioner_id]}
        if row.repeat_of in accusing:
            seen["repeat_of"] = None
        shown.append(CaseView.model_construct(**(vars(row) | seen)))
    return shown


@router.get("/{case_id}", response_model=CaseView, summary="Get a case's current state.")
@read_route
def get_one(request: Request, response: Response, case_id: UUID, views: Views, reader: Reader) -> CaseView:
    """The case as the `case_state` view holds it, deadlines judged against today; `ETag` is its version."""
    case = _visible(request, views, reader, case_id)
    response.headers["ETag"] = etag(case.version)
    return case


@router.get("", response_model=CasePage, summary="List cases, filtered, a page at a time.")
@read_route
def list_some(
    request: Request,
    views: Views,
    reader: Reader,
    filters: Annotated[CaseFilter, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="The `next` cursor of the previous page.")] = None,
) -> CasePage:
    """Cases in registration order; only those this key may read (filters narrow further)."""
    readable = None if reader.everything else Readable(reader.unit_ids, reader.cadre_id)
    try:
        page = list_cases(views, filters, _today(request), limit=limit, after=after, readable=readable)
    except ValueError as error:
        raise ApiProblem(VALIDATION_FAILED, str(error)) from None
    return CasePage(items=_shown(request, views, page.items, reader), next=page.next)


class EventInclusion(BaseModel):
    """That the stored event is the leaf `log_index` of the checkpoint's tree."""

    leaf: str = Field(
        description="The leaf bytes, base64 (their encoding: docs/verify.md): the event exactly as stored."
    )
    leaf_hash: str = Field(description="SHA-256(0x00 ‖ leaf), base64.")
    proof: list[str] = Field(description="The audit path to the checkpoint's root, base64, bottom up.")


class DossierEvent(TimelineRow):
    """One event of the case, at its log index, with its inclusion proof."""

    log_index: int
    inclusion: EventInclusion | None = Field(
        description="Absent when the timeline withholds part of this event from this reader (the "
        "petitioner's id, the accusation's evidence): its stored bytes would give them away."
    )


class CaseDossier(BaseModel):
    """A case's timeline as evidence: each event's inclusion proof against one signed checkpoint.

    To verify offline: check `checkpoint` (a C2SP signed note) with a key of /ledger/public-keys;
    for each event, check SHA-256(0x00 ‖ leaf) = leaf_hash, the audit path from leaf_hash at
    `log_index` to the checkpoint's root (RFC 9162 2.1.3.2), and that the leaf encodes this
    case's id, the event's version and what the row shows.
    """

    case_id: UUID
    checkpoint: str = Field(description="The signed checkpoint every proof leads to, as its signed note.")
    tree_size: int = Field(description="The checkpoint's tree size (as the note states it).")
    root: str = Field(description="The checkpoint's root hash, base64 (as the note states it).")
    events: list[DossierEvent]


@router.get(
    "/{case_id}/timeline",
    response_model=list[TimelineRow] | CaseDossier,
    summary="Get every event of a case, with proofs on request.",
    responses=documented(
        {
            503: "The views have not reached min_position yet, or (`proof=true`) no signed checkpoint "
            "covers the case's latest event yet (see Retry-After), or the server signs none"
        }
    ),
)
def timeline(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    proof: Annotated[
        bool,
        Query(
            description="Answer a dossier instead: each event with its log index and inclusion proof "
            "against the latest signed checkpoint, and that checkpoint's signed note (503 until one "
            "covers the case's latest event)."
        ),
    ] = False,
) -> list[TimelineRow] | CaseDossier:
    """Every event of the case in order: who, from which unit, when it happened and was recorded, why.

    A reader the petition accuses sees neither the petitioner's id nor the petition's evidence;
    with `proof=true`, the events that would show them come without their proof.
    """
    # One snapshot: what the case shows this reader, its rows, their log indexes and the Merkle
    # nodes that prove them are read at one position of the views, never across a runner's commit.
    with views.snapshot():
        case = _visible(request, views, reader, case_id)
        stored = case_timeline(views, case_id)
        shown = [_as_shown(row, case) for row in stored]
        return _dossier(request, views, case_id, stored, shown) if proof else shown


def _dossier(
    request: Request,
    views: ViewConnection,
    case_id: UUID,
    stored: list[TimelineRow],
    shown: list[TimelineRow],
) -> CaseDossier:
    """The shown rows, each at its log index with its proof against the latest signed checkpoint."""
    found = views.execute(
        f"SELECT version, log_index, position, recorded_at FROM {EVENT_LOG.name} WHERE aggregate_id = ?",
        (str(case_id),),
    )
    sequenced = {int(version): (int(index), int(position), str(at)) for version, index, position, at in found}
    unsequenced = [row.version for row in stored if row.version not in sequenced]
    if unsequenced:
        raise ApiProblem(
            NOT_CAUGHT_UP,
            f"version {unsequenced[0]} of the case has no log index yet (the sequencer is behind); retry",
            {"Retry-After": "1"},
        )
    signed = covering_checkpoint(request, max((sequenced[row.version][0] for row in stored), default=-1))
    size = signed.checkpoint.size
    provable = [
        (row, seen)
        for row, seen in zip(stored, shown, strict=True)
        if row.details == seen.details and row.evidence == seen.evidence
    ]
    ledger: Ledger = request.app.state.ledger
    payloads = {
        found[0]: found
        for found in ledger.command_log.read_positions([sequenced[row.version][1] for row, _ in provable])
    }
    tree = NodeReader(views)
    inclusions: dict[int, EventInclusion] = {}
    for row, _ in provable:
        index, position, recorded_at = sequenced[row.version]
        _, aggregate_id, version, topic, payload = payloads[position]
        leaf = leaf_bytes(index, aggregate_id, version, topic, recorded_at, payload)
        try:
            path, hashed, _ = tree.proving(index, size)
        except ProofError as error:  # the tree is smaller than what was signed: it is being rebuilt
            raise ApiProblem(
                NOT_CAUGHT_UP, f"the Merkle log is behind: {error}", {"Retry-After": "5"}
            ) from None
        inclusions[row.version] = EventInclusion(
            leaf=b64(leaf), leaf_hash=b64(hashed), proof=[b64(h) for h in path]
        )
    events = [
        DossierEvent(
            **seen.model_dump(), log_index=sequenced[seen.version][0], inclusion=inclusions.get(seen.version)
        )
        for seen in shown
    ]
    return CaseDossier(
        case_id=case_id,
        checkpoint=signed.note,
        tree_size=size,
        root=b64(signed.checkpoint.root),
        events=events,
    )


def _as_shown(row: TimelineRow, case: CaseView) -> TimelineRow:
    """The row with no more of the petitioner than the case shows this reader.

    For a reader the petition accuses: no petitioner id, no link to an earlier petition, and
    neither the narrative nor the evidence of the registration or an escalation: the
    accusation and its materials (信访工作条例 Art. 28: never passed to those it accuses).
    """
    details = dict(row.details)
    if "repeat_of" in details:
        details["repeat_of"] = None if case.repeat_of is None else str(case.repeat_of)
    if not case.petitioner_withheld:
        return row.model_copy(update={"details": details})
    details.pop("petitioner_id", None)
    if row.type not in ACCUSING:
        return row.model_copy(update={"details": details})
    return row.model_copy(update={"details": details, "evidence": [], "narrative": WITHHELD_NARRATIVE})


ACCUSING = frozenset({"Registered", "Escalated"})
"""The events that carry the accusation itself: its narrative and materials."""
WITHHELD_NARRATIVE = "（对被反映人隐去 withheld from those the petition accuses）"


@router.get("/{case_id}/as-of", response_model=CaseSnapshot, summary="Get a case as it stood at an instant.")
def as_of(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    at: Annotated[datetime, Query(description="The instant, with a zone offset.")],
    axis: Annotated[
        Literal["recorded", "occurred"],
        Query(description="`recorded`: what the ledger held then; `occurred`: what had happened by then."),
    ] = "recorded",
) -> CaseSnapshot:
    """The case replayed from its events up to `at`; 404 if it did not exist yet."""
    _visible(request, views, reader, case_id)
    instant = aware(at)
    case = case_as_of(request.app.state.ledger, case_id, instant, axis)
    if case is None:
        raise NotFound(f"case {case_id} did not exist at {instant.isoformat()}", kind="Case")
    return _snapshot(case, instant, axis)


def _snapshot(case: Case, instant: datetime, axis: str) -> CaseSnapshot:
    return CaseSnapshot.model_validate(
        {
            **{name: getattr(case, name) for name in CaseSnapshot.model_fields if hasattr(case, name)},
            "case_id": case.id,
            "as_of": instant,
            "axis": axis,
        }
    )


@router.get(
    "/{case_id}/responsibility", response_model=Responsibility, summary="Get who held a case at an instant."
)
def responsibility(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    at: Annotated[datetime, Query(description="The instant of business time, with a zone offset.")],
) -> Responsibility:
    """The unit, responsible person, handler and owning leader of the case at `at` (business time)."""
    _visible(request, views, reader, case_id)
    instant = aware(at)
    found = responsibility_at(request.app.state.ledger, case_id, instant)
    if found is None:
        raise NotFound(f"case {case_id} was not registered by {instant.isoformat()}", kind="Case")
    return found
