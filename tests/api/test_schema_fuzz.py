"""Schemathesis drives every operation with generated requests: never a 500, never an answer off schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.keys import PrincipalKind
from api.problems import NOT_CAUGHT_UP, type_uri
from api.settings import Settings
from projections.merkle.checkpoints import create_key_file
from tests.support import World


@schemathesis.check
def no_server_error_but_a_wait(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """No 5xx, except the documented 503 "not caught up yet" that says, with Retry-After, how long to wait.

    Proofs of events recorded during the run are such answers until the checkpointer signs the
    grown log; `status_code_conformance` still checks that the operation documents the 503.
    """
    waiting = response.status_code == NOT_CAUGHT_UP.status and "retry-after" in response.headers
    if waiting and response.json().get("type") == type_uri(NOT_CAUGHT_UP.code):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error_but_a_wait,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@pytest.fixture
def fuzzed(world: World, database_url: str, tmp_path: Path) -> Iterator[Any]:
    """The app over the test world, its lifespan running, and a key of each reach.

    It signs checkpoints, as a server after `dutyledger init` does: without a signing key,
    proofs are refused with a 503 that no wait cures.
    """
    key = tmp_path / "ledger-signing.key"
    create_key_file(key, Settings.model_fields["log_origin"].default)
    settings = Settings(database_url=database_url, rate_limit_per_second=0, signing_key_path=str(key))
    app = create_app(settings, ledger=world.ledger)
    with TestClient(app):
        keys = app.state.keys
        tokens = {
            "administrator": keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=world.admin)[1],
            "cadre": keys.create(PrincipalKind.CADRE, cadre_id=world.township_clerk)[1],
        }
        app.state.fuzz_tokens = tokens
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_operation_answers_500_or_off_its_schema(fuzzed: Any) -> None:
    tokens = fuzzed.app.state.fuzz_tokens
    operations = [result.ok() for result in fuzzed.get_all_operations()]
    assert len(operations) > 50

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def each_request(case: Any) -> None:
            for token in tokens.values():
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

        each_request()
