"""Every command route, over HTTP, from a record in the right state: it succeeds as the key's cadre,
answers with the new version and position, replays a retry, refuses a reused key, a stale If-Match
and an unknown record, and writes nothing when it refuses.

Each scenario below puts the world in the state its command needs (through the ledger, as
cadres would have), then names the call: who sends it, where, and with what body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from api.commands import ROUTES, Route
from domain.events import LedgerEvent
from domain.registry import Cadre
from domain.rules.book import RuleBook
from domain.rules.model import RuleSet
from domain.values import EventRef, ReviewLevel
from tests.api.conftest import Api, registration
from tests.support import World

MISSING = str(UUID(int=99))


@dataclass(frozen=True)
class Call:
    """One command request: the world's cadre whose key sends it, the path, the body."""

    cadre: str
    path: str
    body: dict[str, Any]


def _case(api: Api, state: str = "registered", by: str = "township_clerk") -> UUID:
    """A case of the world in `state`: registered (by `by`), accepted or replied."""
    world = api.world
    if state == "registered":
        return world.register(world.cadres[by])
    return world.accepted() if state == "accepted" else world.replied()


def _due(world: World, days: int = 30) -> str:
    return (world.today() + timedelta(days=days)).isoformat()


def _meeting(world: World) -> UUID:
    return world.do(
        world.township_clerk, "convene_meeting", unit_id=world.township, chair_id=world.township_head
    ).aggregate_id


def _dispute(world: World) -> UUID:
    return world.do(
        world.township_clerk, "record_dispute", source="screening", category="land_boundary"
    ).aggregate_id


def _inquiry(world: World, case_id: UUID) -> UUID:
    return world.do(world.inspector, "open_inquiry", case_ids=frozenset({case_id})).aggregate_id


def _finding(world: World) -> UUID:
    """An inquiry into an accepted case, with one finding against the township clerk."""
    case_id = world.accepted()
    inquiry_id = _inquiry(world, case_id)
    world.do(
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation="delay",
        proof=(EventRef(aggregate_id=case_id, version=2),),
        case_id=case_id,
    )
    return inquiry_id


def _step(world: World, *steps: tuple[str, str, dict[str, Any]]) -> None:
    for cadre, command, arguments in steps:
        world.advance(hours=1)
        world.do(world.cadres[cadre], command, **arguments)
    world.advance(hours=1)


def register_case(api: Api) -> Call:
    return Call("township_clerk", "/cases", registration())


def forward_case(api: Api) -> Call:
    case_id = _case(api, by="county_clerk")
    return Call(
        "county_clerk",
        f"/cases/{case_id}/forward",
        {"narrative": "转送", "to_unit_id": str(api.world.township)},
    )


def assign_case(api: Api) -> Call:
    case_id, world = _case(api, by="county_clerk"), api.world
    body = {"narrative": "交办", "to_unit_id": str(world.county_dept), "due": _due(world)}
    return Call("county_clerk", f"/cases/{case_id}/assign", body)


def object_to_assignment(api: Api) -> Call:
    case_id, world = _case(api, by="county_clerk"), api.world
    _step(world, ("county_clerk", "assign_case", {"case_id": case_id, "to_unit_id": world.township}))
    return Call("township_clerk", f"/cases/{case_id}/objection", {"narrative": "不属本单位职责"})


def accept_case(api: Api) -> Call:
    return Call("township_clerk", f"/cases/{_case(api)}/accept", {"narrative": "受理"})


def decline_case(api: Api) -> Call:
    body = {"narrative": "不属本机关职责", "reason": "not_competent"}
    return Call("township_clerk", f"/cases/{_case(api)}/decline", body)


def appoint_owning_leader(api: Api) -> Call:
    body = {"narrative": "镇长包案", "leader_id": str(api.world.township_leader)}
    return Call("township_head", f"/cases/{_case(api, 'accepted')}/owning-leader", body)


def assign_handler(api: Api) -> Call:
    body = {"narrative": "指定承办人", "handler_id": str(api.world.handler)}
    return Call("township_clerk", f"/cases/{_case(api, 'accepted')}/handler", body)


def assign_responsibility(api: Api) -> Call:
    body = {"narrative": "明确责任人", "cadre_id": str(api.world.dept_clerk)}
    return Call("county_head", f"/cases/{_case(api, 'accepted')}/responsible-person", body)


def record_action(api: Api) -> Call:
    body = {"narrative": "上门走访", "kind": "visit"}
    return Call("township_clerk", f"/cases/{_case(api, 'accepted')}/actions", body)


def hold_hearing(api: Api) -> Call:
    body = {"narrative": "组织听证", "days": 3}
    return Call("township_head", f"/cases/{_case(api, 'accepted')}/hearings", body)


def extend_deadline(api: Api) -> Call:
    body = {"narrative": "经批准延期", "days": 30}
    return Call("township_head", f"/cases/{_case(api, 'accepted')}/extension", body)


def issue_reply(api: Api) -> Call:
    case_id = _case(api, "accepted")
    api.world.advance(days=3)
    return Call(
        "township_clerk", f"/cases/{case_id}/reply", {"narrative": "出具处理意见书", "outcome": "support"}
    )


def rate_satisfaction(api: Api) -> Call:
    body = {"narrative": "回访", "rating": "satisfied"}
    return Call("township_clerk", f"/cases/{_case(api, 'replied')}/satisfaction", body)


def request_review(api: Api) -> Call:
    body = {"narrative": "请求复查", "level": "first"}
    return Call("township_clerk", f"/cases/{_case(api, 'replied')}/reviews", body)


def decide_review(api: Api) -> Call:
    case_id = _case(api, "replied")
    _step(api.world, ("township_clerk", "request_review", {"case_id": case_id, "level": ReviewLevel.FIRST}))
    body = {"narrative": "复查维持", "level": "first", "outcome": "upheld"}
    return Call("county_head", f"/cases/{case_id}/reviews/decision", body)


def close_case(api: Api) -> Call:
    body = {"narrative": "办结", "closure": "substantive"}
    return Call("township_clerk", f"/cases/{_case(api, 'replied')}/close", body)


def end_petition(api: Api) -> Call:
    return Call("township_clerk", f"/cases/{_case(api, 'replied')}/end", {"narrative": "息访息诉"})


def reopen_case(api: Api) -> Call:
    return Call("reexaminer", f"/cases/{_case(api, 'replied')}/reopen", {"narrative": "回头看，重新办理"})


def record_leapfrog(api: Api) -> Call:
    body = {"narrative": "赴市越级上访", "level": "city"}
    return Call("county_clerk", f"/cases/{_case(api, by='county_clerk')}/leapfrogs", body)


def issue_supervision(api: Api) -> Call:
    body = {"narrative": "发出督办单", "due": _due(api.world, 10)}
    return Call("county_clerk", f"/cases/{_case(api, 'accepted')}/supervision-orders", body)


def answer_supervision(api: Api) -> Call:
    case_id = _case(api, "accepted")
    _step(api.world, ("county_clerk", "issue_supervision", {"case_id": case_id}))
    return Call("township_clerk", f"/cases/{case_id}/supervision-orders/1/answer", {"narrative": "书面报告"})


def convene_meeting(api: Api) -> Call:
    world = api.world
    body = {"narrative": "召开联席会议", "unit_id": str(world.township), "chair_id": str(world.township_head)}
    return Call("township_clerk", "/meetings", body)


def study_case(api: Api) -> Call:
    world = api.world
    case_id, meeting_id = world.accepted(), _meeting(world)
    world.advance(hours=1)
    body = {
        "narrative": "研判，明确包案领导和责任人",
        "case_id": str(case_id),
        "owning_leader_id": str(world.township_leader),
        "responsible_cadre_id": str(world.handler),
        "due": _due(world),
    }
    return Call("township_clerk", f"/meetings/{meeting_id}/studied-cases", body)


def conclude_meeting(api: Api) -> Call:
    meeting_id = _meeting(api.world)
    api.world.advance(hours=1)
    return Call("township_clerk", f"/meetings/{meeting_id}/conclude", {"narrative": "会议纪要"})


def record_dispute(api: Api) -> Call:
    body = {"narrative": "排查发现宅基地纠纷", "source": "screening", "category": "land", "parties": 2}
    return Call("township_clerk", "/disputes", body)


def mediate_dispute(api: Api) -> Call:
    dispute_id = _dispute(api.world)
    api.world.advance(hours=1)
    return Call(
        "handler", f"/disputes/{dispute_id}/mediations", {"narrative": "组织调解", "result": "agreed"}
    )


def resolve_dispute(api: Api) -> Call:
    dispute_id = _dispute(api.world)
    _step(api.world, ("handler", "mediate_dispute", {"dispute_id": dispute_id, "result": "agreed"}))
    return Call("township_clerk", f"/disputes/{dispute_id}/resolve", {"narrative": "就地化解"})


def escalate_dispute(api: Api) -> Call:
    dispute_id = _dispute(api.world)
    api.world.advance(hours=1)
    body = registration(narrative="调解未果，转为信访事项")
    return Call("township_clerk", f"/disputes/{dispute_id}/escalate", body)


def open_inquiry(api: Api) -> Call:
    body = {"narrative": "问责调查", "case_ids": [str(_case(api, "accepted"))]}
    return Call("inspector", "/inquiries", body)


def record_finding(api: Api) -> Call:
    world = api.world
    case_id = world.accepted()
    inquiry_id = _inquiry(world, case_id)
    world.advance(hours=1)
    body = {
        "narrative": "受理迟延",
        "cadre_id": str(world.township_clerk),
        "obligation": "delay",
        "proof": [{"aggregate_id": str(case_id), "version": 2}],
        "case_id": str(case_id),
    }
    return Call("inspector", f"/inquiries/{inquiry_id}/findings", body)


def record_sanction(api: Api) -> Call:
    inquiry_id = _finding(api.world)
    api.world.advance(hours=1)
    body = {"narrative": "诫勉谈话", "kind": "admonishment"}
    return Call("inspector", f"/inquiries/{inquiry_id}/findings/1/sanctions", body)


def close_inquiry(api: Api) -> Call:
    inquiry_id = _finding(api.world)
    api.world.advance(hours=1)
    return Call("inspector", f"/inquiries/{inquiry_id}/close", {"narrative": "调查结论"})


def register_unit(api: Api) -> Call:
    body = {
        "narrative": "新设乡镇",
        "name": "东风镇",
        "level": "township",
        "kind": "government",
        "parent_id": str(api.world.county),
    }
    return Call("admin", "/units", body)


def rename_unit(api: Api) -> Call:
    return Call("admin", f"/units/{api.world.township}/name", {"narrative": "更名", "name": "汲冢镇人民政府"})


def register_cadre(api: Api) -> Call:
    body = {"narrative": "录入干部", "name": "李明", "unit_id": str(api.world.township), "position": "干事"}
    return Call("admin", "/cadres", body)


def transfer_cadre(api: Api) -> Call:
    body = {"narrative": "调任", "unit_id": str(api.world.county_dept), "position": "科员"}
    return Call("admin", f"/cadres/{api.world.handler}/transfer", body)


def change_roles(api: Api) -> Call:
    return Call("admin", f"/cadres/{api.world.handler}/roles", {"narrative": "授权", "roles": ["inspector"]})


def retire_cadre(api: Api) -> Call:
    return Call("admin", f"/cadres/{api.world.village_head}/retire", {"narrative": "退休"})


def publish_rule_set(api: Api) -> Call:
    world = api.world
    book = world.ledger.repository.get(RuleBook.ID)
    national = book.rule_set_for("CN", world.clock.now())
    amended = RuleSet.model_validate(
        national.model_dump()
        | {"version": national.version + 1, "effective_from": world.today() + timedelta(days=7)}
    )
    return Call(
        "admin",
        "/rules/rule-sets",
        {"narrative": "发布新版规则", "rule_set": amended.model_dump(mode="json")},
    )


def publish_holidays(api: Api) -> Call:
    body = {
        "narrative": "发布节假日",
        "holidays": {"calendar": "CN", "year": 2031, "holidays": ["2031-01-01"]},
    }
    return Call("admin", "/rules/holidays", body)


def correct_record(api: Api) -> Call:
    case_id = _case(api)
    api.world.advance(hours=1)
    intake = registration(intake={"channel": "visit", "category": "wage_arrears"})["intake"]
    body = {"narrative": "类别登记错误，更正", "corrects": 1, "changes": {"intake": intake}}
    return Call("township_clerk", f"/records/{case_id}/corrections", body)


SCENARIOS: dict[str, Callable[[Api], Call]] = {
    scenario.__name__: scenario
    for scenario in (
        register_case, forward_case, assign_case, object_to_assignment, accept_case, decline_case,
        appoint_owning_leader, assign_handler, assign_responsibility, record_action, hold_hearing,
        extend_deadline, issue_reply, rate_satisfaction, request_review, decide_review, close_case,
        end_petition, reopen_case, record_leapfrog, issue_supervision, answer_supervision,
        convene_meeting, study_case, conclude_meeting, record_dispute, mediate_dispute, resolve_dispute,
        escalate_dispute, open_inquiry, record_finding, record_sanction, close_inquiry, register_unit,
        rename_unit, register_cadre, transfer_cadre, change_roles, retire_cadre, publish_rule_set,
        publish_holidays, correct_record,
    )
}  # fmt: skip


def test_every_command_route_has_a_scenario_here() -> None:
    assert sorted(SCENARIOS) == sorted(route.command for route in ROUTES)


def recorded_since(api: Api, position: int) -> list[LedgerEvent]:
    """The events recorded after `position`, in log order."""
    ledger = api.world.ledger
    found = ledger.recorder.select_notifications(start=position, limit=1000, inclusive_of_start=False)
    return [ledger.mapper.to_domain_event(notification) for notification in found]  # type: ignore[misc]


def post(
    api: Api, call: Call, *, path: str | None = None, body: dict[str, Any] | None = None, **headers: str
) -> Any:
    return api.post(path or call.path, call.body if body is None else body, call.cadre, **headers)


def refused_and_unwritten(api: Api, before: int, answer: Any, status: int, problem: str) -> None:
    """The answer is the problem `problem` with `status`, and the log has not moved from `before`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"urn:problem-type:dutyledger:{problem}"
    assert api.positions() == before


def aggregate_in(route: Route, path: str) -> str | None:
    """The id of the record the path names, if it names one."""
    names = re.findall(r"{(\w+)}", route.path)
    if not names:
        return None
    pattern = re.escape(route.path)
    for name in names:
        pattern = pattern.replace(re.escape(f"{{{name}}}"), r"([^/]+)")
    found = re.fullmatch(pattern, path)
    assert found is not None
    return found.group(1)


@pytest.fixture(params=ROUTES, ids=lambda route: route.command)
def route(request: pytest.FixtureRequest) -> Route:
    found: Route = request.param
    return found


def test_each_command_succeeds_as_the_keys_cadre_and_refuses_cleanly(api: Api, route: Route) -> None:
    world = api.world
    call = SCENARIOS[route.command](api)
    actor = world.cadres[call.cadre]
    named = aggregate_in(route, call.path)
    if named is not None:
        version = len(world.events(UUID(named)))
        missing = call.path.replace(named, MISSING, 1)
        before = api.positions()
        refused_and_unwritten(api, before, post(api, call, path=missing), 404, "not-found")
        stale = post(api, call, **{"If-Match": f'"{version + 1}"'})
        refused_and_unwritten(api, before, stale, 412, "version-conflict")

    before = api.positions()
    answer = post(api, call, **{"Idempotency-Key": f"every-{route.command}"})
    assert answer.status_code == (201 if route.creates else 200), answer.text
    body = answer.json()
    recorded = recorded_since(api, before)
    assert recorded, "the command recorded nothing"
    assert {(e.actor_id, e.command_id, e.narrative) for e in recorded} == {
        (actor, f"every-{route.command}", call.body["narrative"])
    }
    cadre = world.ledger.repository.get(actor)
    assert isinstance(cadre, Cadre)
    assert {e.actor_unit_id for e in recorded} == {cadre.posting_at(recorded[0].occurred_at).unit_id}
    aggregate_id = UUID(body["aggregate_id"])
    assert named is None or route.creates or aggregate_id == UUID(named)
    assert body["version"] == len(world.events(aggregate_id))
    assert body["position"] == api.positions()
    assert answer.headers["ETag"] == f'"{body["version"]}"'
    if route.creates:
        assert answer.headers["Location"] == route.creates.replace("{id}", str(aggregate_id))

    retried = post(api, call, **{"Idempotency-Key": f"every-{route.command}"})
    assert retried.status_code == answer.status_code
    assert retried.json() == body | {"replayed": True}
    assert api.positions() == body["position"]
    other = post(
        api, call, body=call.body | {"narrative": "另一件事"}, **{"Idempotency-Key": f"every-{route.command}"}
    )
    refused_and_unwritten(api, body["position"], other, 409, "idempotency-conflict")
