"""Webhook signing secrets are sealed at rest: a copy of the database alone cannot sign a delivery."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from api.webhooks.sealing import SealBroken, Sealer
from api.webhooks.signing import new_secret
from api.webhooks.store import ENDPOINTS, WebhookStore
from api.webhooks.worker import Worker
from tests.api.conftest import Api
from tests.api.test_webhooks import (
    BASE,
    TIMEOUT,
    Receiver,
    caught_up,
    eventually,
    hooks,
    receivers,
    register,
)

__all__ = ["hooks", "receivers"]  # fixtures this module uses


def stored_secrets(store: WebhookStore, endpoint_id: str) -> str:
    """The column as stored: what a copy of the database holds."""
    with store._connection() as connection:
        ((held,),) = connection.execute(
            f"SELECT secrets FROM {ENDPOINTS} WHERE endpoint_id = ?", (endpoint_id,)
        )
    return str(held)


@pytest.fixture
def store(database_url: str) -> Iterator[WebhookStore]:
    made = WebhookStore(database_url, Sealer(os.urandom(32)))
    yield made
    made.close()


def test_a_secret_is_stored_sealed_and_opens_to_the_one_given_out(store: WebhookStore) -> None:
    created, secret = store.create("key", "https://example.org/hook", [], [], position=0)
    held = stored_secrets(store, created.endpoint_id)
    assert secret not in held
    assert secret.removeprefix("whsec_") not in held
    assert orjson.loads(held)[0]["secret"].startswith("sealed1:")
    assert store.live_secrets(created, datetime.now(UTC)) == [secret]
    rotated, fresh = store.rotate(created.endpoint_id, grace=timedelta(hours=1))
    assert fresh not in stored_secrets(store, created.endpoint_id)
    assert store.live_secrets(rotated, datetime.now(UTC)) == [fresh, secret]


def test_a_sealed_secret_opens_only_with_its_key_and_for_its_own_endpoint(store: WebhookStore) -> None:
    sealed = store.sealer.seal("whsec_c2VjcmV0", "wh_one")
    assert store.sealer.open(sealed, "wh_one") == "whsec_c2VjcmV0"
    with pytest.raises(SealBroken, match="wh_two"):
        store.sealer.open(sealed, "wh_two")
    with pytest.raises(SealBroken):
        Sealer(os.urandom(32)).open(sealed, "wh_one")


def test_secrets_an_earlier_version_stored_in_clear_are_sealed_when_a_store_first_opens(
    database_url: str, store: WebhookStore
) -> None:
    created, _ = store.create("key", "https://example.org/hook", [], [], position=0)
    clear = new_secret()
    legacy = [{"secret": clear, "created_at": "2026-01-01T00:00:00.000000Z", "expires_at": None}]
    with store._connection() as connection:  # as an earlier version wrote it
        connection.execute(
            f"UPDATE {ENDPOINTS} SET secrets = ? WHERE endpoint_id = ?",
            (orjson.dumps(legacy).decode(), created.endpoint_id),
        )
    reopened = WebhookStore(database_url, store.sealer)
    try:
        found = reopened.get(created.endpoint_id)
        assert found is not None
        assert clear not in stored_secrets(reopened, created.endpoint_id)
        assert reopened.live_secrets(found, datetime.now(UTC)) == [clear]
    finally:
        reopened.close()


def test_the_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "webhook-secrets.key"
    sealed = Sealer.at(path).seal("whsec_c2VjcmV0", "wh_one")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert Sealer.at(path).open(sealed, "wh_one") == "whsec_c2VjcmV0"


def test_a_worker_whose_key_does_not_open_the_secrets_sends_nothing_and_says_why(
    hooks: Api, receivers: Callable[..., Receiver], database_url: str
) -> None:
    state = hooks.client.app.state  # type: ignore[attr-defined]
    state.webhook_worker.stop()  # only the worker with the wrong key is left
    receiver = receivers()
    created = register(hooks, receiver.url)
    wrong = WebhookStore(database_url, Sealer(os.urandom(32), where="another key"))
    other = Worker(wrong, state.public_log, state.envelopes, state.keys, timeout=TIMEOUT, retry_base=BASE,
                   poll=0.02, private_networks=True)  # fmt: skip
    other.start()
    try:
        hooks.register()
        caught_up(hooks)
        eventually(lambda: bool(wrong.deliveries(created["id"], 10)))
    finally:
        other.stop()
        wrong.close()
    (attempt,) = wrong.deliveries(created["id"], 10)[:1]
    assert attempt.status is None
    assert attempt.error is not None
    assert attempt.error.startswith("not sent: ")
    assert "do not open with another key" in attempt.error
    assert receiver.received == []
