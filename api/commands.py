"""One endpoint per domain command, generated from the command's own signature.

Each route below names a `Ledger` command, where it lives, and an example. The request
body is a model built from the command's parameters (those not in the path) plus the
context every event carries: `narrative`, and optionally `occurred_at`, `evidence` and
`correlation_id`. There is no actor field: the actor is the key's cadre (`acting`).

- `Idempotency-Key` becomes the command id: a retry answers with the first answer (and
  `Idempotent-Replayed: true`); another command under the same key is 409.
- `If-Match: "<version>"` (the `ETag` a case read or a command answer gave) makes the
  command conditional on the aggregate's version: 412 when it moved on.
- The answer gives the aggregate's new version and the log position of what was recorded
  (pass it as `min_position` to a query to read your own write).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from api.access import Acting, acting
from api.lean import CommandRoute
from api.problems import PRECONDITION_MALFORMED, ApiProblem, documented
from domain.errors import VersionConflict
from domain.ledger import CommandContext, CommandResult, Ledger
from domain.values import Evidence

EXAMPLE_CASE = "6c4697ed-1b8a-5c1e-9a52-0d4f3b1e2a10"
EXAMPLE_UNIT = "0b1f5a4e-8d3c-5f21-b6a7-4e2c9d8f1a33"
EXAMPLE_CADRE = "3e7d2c1b-9a8f-5e4d-a3c2-b1f0e9d8c7b6"


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique printable-ASCII string (a UUID): a retry with it is answered, not applied.",
    ),
]


class CommandAnswer(BaseModel):
    """What a command recorded: the aggregate, its new version, and where in the log."""

    command_id: str = Field(description="The Idempotency-Key given, or the id the ledger chose.")
    aggregate_id: UUID
    version: int = Field(description="The aggregate's version now; send it back as If-Match.")
    position: int = Field(description="Log position of the last event recorded (use as min_position).")
    positions: list[int]
    replayed: bool = Field(description="True when this answers a retry: nothing new was recorded.")


@dataclass(frozen=True)
class Route:
    """A command's endpoint: `POST path`, in the OpenAPI group `tag`."""

    command: str
    path: str
    tag: str
    example: dict[str, Any] = field(default_factory=dict)
    creates: str | None = None
    """For a command that creates a record: its URL, `{id}` standing for the new aggregate's id."""


def _case(command: str, path: str, narrative: str, **example: Any) -> Route:
    return Route(command, f"/cases/{{case_id}}{path}", "case commands", {"narrative": narrative, **example})


def _packaged(name: str) -> dict[str, Any]:
    """A packaged rules file, as an example body."""
    loaded: dict[str, Any] = orjson.loads(files("domain.rules").joinpath("data", name).read_bytes())
    return loaded


ROUTES: tuple[Route, ...] = (
    Route(
        "register_case",
        "/cases",
        "case commands",
        {
            "narrative": "来访反映工资拖欠，登记受理前初步了解情况",
            "intake": {"channel": "visit", "category": "wage_arrears", "headcount": 1},
            "petitioner_id": "5f0c1d2e-3a4b-5c6d-8e9f-a0b1c2d3e4f5",
        },
        creates="/cases/{id}",
    ),
    _case("forward_case", "/forward", "属县人社局职责，转送办理", to_unit_id=EXAMPLE_UNIT),
    _case("assign_case", "/assign", "交办镇政府限期办理", to_unit_id=EXAMPLE_UNIT, due="2026-12-31"),
    _case("object_to_assignment", "/objection", "该事项不属本单位职责，提出异议"),
    _case("accept_case", "/accept", "符合受理条件，予以受理并告知"),
    _case("decline_case", "/decline", "不属本机关职责范围，告知向有权机关提出", reason="not_competent"),
    _case("appoint_owning_leader", "/owning-leader", "由副县长包案", leader_id=EXAMPLE_CADRE),
    _case("assign_handler", "/handler", "指定承办人", handler_id=EXAMPLE_CADRE),
    _case("assign_responsibility", "/responsible-person", "明确责任人", cadre_id=EXAMPLE_CADRE),
    _case("record_action", "/actions", "上门走访，了解诉求", kind="visit"),
    _case("hold_hearing", "/hearings", "组织听证，三方到场", days=3),
    _case("extend_deadline", "/extension", "情况复杂，经批准延长办理期限", days=30),
    _case("issue_reply", "/reply", "出具处理意见书", outcome="support"),
    _case("rate_satisfaction", "/satisfaction", "回访信访人", rating="satisfied"),
    _case("request_review", "/reviews", "信访人不服处理意见，请求复查", level="first"),
    _case("decide_review", "/reviews/decision", "复查维持原处理意见", level="first", outcome="upheld"),
    _case("close_case", "/close", "已答复且无复查请求，办结", closure="substantive"),
    _case("end_petition", "/end", "信访人书面承诺息访息诉"),
    _case("reopen_case", "/reopen", "回头看发现问题未真正解决，重新办理"),
    _case("record_leapfrog", "/leapfrogs", "信访人赴省越级上访", level="provincial"),
    _case("issue_supervision", "/supervision-orders", "逾期未办结，发出督办单", due="2026-12-20"),
    _case(
        "answer_supervision",
        "/supervision-orders/{order_no}/answer",
        "书面报告督办事项办理情况",
    ),
    Route(
        "convene_meeting",
        "/meetings",
        "meeting commands",
        {"narrative": "召开信访工作联席会议", "unit_id": EXAMPLE_UNIT, "chair_id": EXAMPLE_CADRE},
        creates="/meetings/{id}",
    ),
    Route(
        "study_case",
        "/meetings/{meeting_id}/studied-cases",
        "meeting commands",
        {
            "narrative": "研判案件，明确包案领导和责任人",
            "case_id": EXAMPLE_CASE,
            "owning_leader_id": EXAMPLE_CADRE,
            "responsible_cadre_id": EXAMPLE_CADRE,
            "due": "2026-12-31",
        },
    ),
    Route(
        "conclude_meeting", "/meetings/{meeting_id}/conclude", "meeting commands", {"narrative": "会议纪要"}
    ),
    Route(
        "record_dispute",
        "/disputes",
        "dispute commands",
        {"narrative": "排查发现邻里宅基地纠纷", "source": "screening", "category": "land", "parties": 2},
        creates="/disputes/{id}",
    ),
    Route(
        "mediate_dispute",
        "/disputes/{dispute_id}/mediations",
        "dispute commands",
        {"narrative": "组织双方调解", "result": "agreed"},
    ),
    Route("resolve_dispute", "/disputes/{dispute_id}/resolve", "dispute commands", {"narrative": "就地化解"}),
    Route(
        "escalate_dispute",
        "/disputes/{dispute_id}/escalate",
        "dispute commands",
        {
            "narrative": "调解未果，转为信访事项",
            "intake": {"channel": "visit", "category": "land"},
            "petitioner_id": "5f0c1d2e-3a4b-5c6d-8e9f-a0b1c2d3e4f5",
        },
        creates="/cases/{id}",
    ),
    Route(
        "open_inquiry",
        "/inquiries",
        "inquiry commands",
        {"narrative": "对逾期未办结事项开展问责调查", "case_ids": [EXAMPLE_CASE]},
        creates="/inquiries/{id}",
    ),
    Route(
        "record_finding",
        "/inquiries/{inquiry_id}/findings",
        "inquiry commands",
        {
            "narrative": "未在法定期限内出具处理意见",
            "cadre_id": EXAMPLE_CADRE,
            "obligation": "missed_deadline",
            "proof": [{"aggregate_id": EXAMPLE_CASE, "version": 3}],
            "case_id": EXAMPLE_CASE,
        },
    ),
    Route(
        "record_sanction",
        "/inquiries/{inquiry_id}/findings/{finding_no}/sanctions",
        "inquiry commands",
        {"narrative": "给予诫勉谈话", "kind": "admonishment"},
    ),
    Route("close_inquiry", "/inquiries/{inquiry_id}/close", "inquiry commands", {"narrative": "调查结论"}),
    Route(
        "register_unit",
        "/units",
        "registry commands",
        {
            "narrative": "新设乡镇",
            "name": "东风镇",
            "level": "township",
            "kind": "government",
            "parent_id": EXAMPLE_UNIT,
        },
        creates="/units/{id}",
    ),
    Route(
        "rename_unit", "/units/{unit_id}/name", "registry commands", {"narrative": "更名", "name": "东风街道"}
    ),
    Route(
        "register_cadre",
        "/cadres",
        "registry commands",
        {"narrative": "录入干部", "name": "李明", "unit_id": EXAMPLE_UNIT, "position": "信访办主任"},
        creates="/cadres/{id}",
    ),
    Route(
        "transfer_cadre",
        "/cadres/{cadre_id}/transfer",
        "registry commands",
        {"narrative": "调任", "unit_id": EXAMPLE_UNIT, "position": "副镇长", "is_leader": True},
    ),
    Route(
        "change_roles",
        "/cadres/{cadre_id}/roles",
        "registry commands",
        {"narrative": "授权", "roles": ["inspector"]},
    ),
    Route("retire_cadre", "/cadres/{cadre_id}/retire", "registry commands", {"narrative": "退休"}),
    Route(
        "publish_rule_set",
        "/rules/rule-sets",
        "registry commands",
        {
            "narrative": "省信访局发布新版办理期限规则",
            "rule_set": _packaged("ruleset-CN-HA-1.json") | {"version": 2},
        },
    ),
    Route(
        "publish_holidays",
        "/rules/holidays",
        "registry commands",
        {"narrative": "发布2026年节假日安排", "holidays": _packaged("holidays-CN-2026.json")},
    ),
    Route(
        "correct_record",
        "/records/{aggregate_id}/corrections",
        "registry commands",
        {
            "narrative": "发生时间录入有误，更正",
            "corrects": 3,
            "changes": {"occurred_at": "2026-11-02T09:30:00+08:00"},
        },
    ),
)


class Context(BaseModel):
    """What every command's body carries besides its arguments (and nothing else: no actor field)."""

    model_config = ConfigDict(extra="forbid")

    narrative: str = Field(description="Why: the account of what was done, in the cadre's words.")
    occurred_at: datetime | None = Field(
        None, description="Business time, with a zone offset; defaults to now. Never after the record time."
    )
    evidence: list[Evidence] = Field(default_factory=list, description="Hashes of documents that prove it.")
    correlation_id: str | None = Field(None, max_length=200, description="Ties this command to others.")


def _parameters(method: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """The command's parameters after `ctx`: (name, resolved annotation, default or ...)."""
    body = inspect.unwrap(method)
    hints = typing.get_type_hints(body)
    found = []
    for parameter in list(inspect.signature(body).parameters.values())[2:]:
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        found.append((parameter.name, hints[parameter.name], default))
    return found


def _title(command: str) -> str:
    return "".join(part.capitalize() for part in command.split("_"))


def parse_if_match(value: str | None) -> int | None:
    """The version an `If-Match` names (`"3"`, or bare `3`); None for absent or `*`.

    A weak tag (`W/"3"`) never matches: If-Match compares strongly (RFC 9110 §13.1.1).
    """
    if value is None or value.strip() == "*":
        return None
    match = re.fullmatch(r'\s*(W/)?"?(\d{1,18})"?\s*', value)
    if match is None:
        raise ApiProblem(PRECONDITION_MALFORMED, f"If-Match {value!r} is not a version tag this API gave")
    if match.group(1):
        raise VersionConflict("a weak entity tag never matches If-Match; send the ETag as given")
    return int(match.group(2))


def answer_of(result: CommandResult) -> CommandAnswer:
    return CommandAnswer(
        command_id=result.command_id,
        aggregate_id=result.aggregate_id,
        version=result.version,
        position=result.position,
        positions=list(result.positions),
        replayed=result.replayed,
    )


def etag(version: int) -> str:
    return f'"{version}"'


def _endpoint(route: Route) -> tuple[Callable[..., Response], type[BaseModel]]:
    method = getattr(Ledger, route.command)
    in_path = re.findall(r"{(\w+)}", route.path)
    parameters = _parameters(method)
    known = {name for name, _, _ in parameters}
    assert set(in_path) <= known, f"{route.path} names parameters {route.command} does not take"
    body_fields: dict[str, Any] = {
        name: (annotation, default) for name, annotation, default in parameters if name not in in_path
    }
    body_model = create_model(
        f"{_title(route.command)}Request",
        __base__=Context,
        __doc__=f"The body of {route.command}.",
        **body_fields,
    )
    body_model.model_config["json_schema_extra"] = {"examples": [route.example]}
    body_model.model_rebuild(force=True)
    path_types = {name: annotation for name, annotation, _ in parameters if name in in_path}
    creates_new = route.creates is not None and not in_path
    """A command that creates its record from nothing: no version can be expected of it."""

    status = 201 if route.creates else 200

    def endpoint(request: Request, **arguments: Any) -> Response:
        body: Context = arguments.pop("body")
        actor: Acting = arguments.pop("actor")
        key: str | None = arguments.pop("idempotency_key")
        if_match = arguments.pop("if_match")
        expected = parse_if_match(if_match)
        if if_match is not None and creates_new:
            raise VersionConflict("If-Match names a record this command creates: it does not exist yet")
        ledger: Ledger = request.app.state.ledger
        ctx = CommandContext(
            actor_id=actor.cadre_id,
            narrative=body.narrative,
            command_id=key,
            correlation_id=body.correlation_id,
            occurred_at=body.occurred_at,
            expected_version=expected,
            evidence=tuple(body.evidence),
            within=actor.within,
        )
        given = {name: getattr(body, name) for name in body_fields}
        result: CommandResult = getattr(ledger, route.command)(ctx, **arguments, **given)
        headers = {"ETag": etag(result.version)}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        if route.creates:
            headers["Location"] = route.creates.replace("{id}", str(result.aggregate_id))
        # Answered as ready JSON: a model returned from a sync endpoint is validated and serialised
        # again on a second worker thread (measured: 8% of a command's CPU). `response_model`
        # still documents it.
        answer = answer_of(result).model_dump_json().encode()
        return Response(answer, status, headers, media_type="application/json")

    keyword = inspect.Parameter.KEYWORD_ONLY
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            *(inspect.Parameter(name, keyword, annotation=kind) for name, kind in path_types.items()),
            inspect.Parameter("body", keyword, annotation=body_model),
            inspect.Parameter("actor", keyword, annotation=Annotated[Acting, Depends(acting)]),
            inspect.Parameter("idempotency_key", keyword, annotation=IdempotencyKey, default=None),
            inspect.Parameter(
                "if_match",
                keyword,
                annotation=Annotated[
                    str | None,
                    Header(alias="If-Match", description='The version the record must be at, as "3".'),
                ],
                default=None,
            ),
        ],
        return_annotation=Response,
    )
    endpoint.__name__ = route.command
    return endpoint, body_model


ERRORS = documented(
    {
        400: "Malformed body or If-Match",
        401: "No valid API key",
        403: "The key's cadre may not do this (jurisdiction, role, recusal)",
        404: "No such case, unit, cadre…",
        409: "The record's state forbids it, or the Idempotency-Key was used for another command",
        412: "If-Match named a version the record is no longer at",
        415: "The body is not application/json",
        422: "The body breaks the schema or a rule of petition work",
        429: "Too many requests for this key",
        503: "The store stayed busy with other writers (store-busy): retry after Retry-After",
    }
)


def router() -> APIRouter:
    """Every command route, each documented by its command's docstring."""
    commands = APIRouter(route_class=CommandRoute)
    for route in ROUTES:
        endpoint, _ = _endpoint(route)
        doc = inspect.getdoc(getattr(Ledger, route.command)) or route.command
        commands.add_api_route(
            route.path,
            endpoint,
            methods=["POST"],
            response_model=CommandAnswer,
            status_code=201 if route.creates else 200,
            summary=doc.splitlines()[0],
            description=doc,
            tags=[route.tag],
            operation_id=route.command,
            responses=ERRORS,
        )
    return commands
