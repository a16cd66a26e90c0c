"""Webhook signing secrets are sealed at rest: a copy of the database alone cannot sign a delivery."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from api.settings import Settings
from api.webhooks.sealing import KeyFileError, KeyMismatch, SealBroken, Sealer
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
    with pytest.raises(SealBroken):
        store.sealer.open("sealed1:not base64!", "wh_one")


def test_a_process_given_another_key_than_the_one_that_sealed_the_database_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    first = WebhookStore.configured(Settings(webhook_key_path=str(tmp_path / "first.key")), database_url)
    first.create("key", "https://example.org/hook", [], [], position=0)
    first.close()
    again = WebhookStore.configured(Settings(webhook_key_path=str(tmp_path / "first.key")), database_url)
    again.close()
    with pytest.raises(KeyMismatch, match=r"other\.key"):
        WebhookStore.configured(Settings(webhook_key_path=str(tmp_path / "other.key")), database_url)
    env = {**os.environ, "DUTYLEDGER_DATABASE_URL": database_url,
           "DUTYLEDGER_WEBHOOK_KEY_PATH": str(tmp_path / "other.key")}  # fmt: skip
    refused = subprocess.run([sys.executable, "-c", "from api.cli import main; main()", "webhooks", "run"],
                             capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"dutyledger: error: configuration: the webhook key file {tmp_path / 'other.key'} is not the one "
        "that sealed this database's webhook secrets: give every process that shares the database "
        "the same file (DUTYLEDGER_WEBHOOK_KEY_PATH)"
    ]


@pytest.mark.parametrize("content", ["", "not base64!", "c2hvcnQ="])
def test_a_key_file_that_holds_no_key_is_one_clear_error_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "webhook.key"
    path.write_text(content)
    with pytest.raises(KeyFileError, match="DUTYLEDGER_WEBHOOK_KEY_PATH"):
        Sealer.at(path)


def test_secrets_an_earlier_version_stored_in_clear_are_sealed_when_a_process_prepares_the_store(
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
        assert clear in stored_secrets(reopened, created.endpoint_id)
        reopened.prepare()
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
    assert "webhook key does not open the signing secrets of" in attempt.error
    assert (
        "another key" not in attempt.error
    )  # the key file's whereabouts are the operator's, not the integrator's
    assert receiver.received == []
