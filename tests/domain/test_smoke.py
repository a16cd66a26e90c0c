from domain.case import CaseStatus
from domain.values import ClosureKind, ReplyOutcome
from tests.support import World


def test_a_case_goes_from_registration_to_closure(world: World) -> None:
    case_id = world.replied(outcome=ReplyOutcome.SUPPORT)
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    assert world.case(case_id).status is CaseStatus.CLOSED
