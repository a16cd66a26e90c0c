"""An API client over the test world, and keys for its cadres."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore, PrincipalKind
from api.settings import Settings
from tests.support import World


@dataclass
class Api:
    """The test client, with a key per cadre minted on first use."""

    client: TestClient
    world: World
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def keys(self) -> KeyStore:
        store: KeyStore = self.client.app.state.keys  # type: ignore[attr-defined]
        return store

    def token(
        self, cadre: str, kind: PrincipalKind = PrincipalKind.CADRE, scope: tuple[str, ...] = ()
    ) -> str:
        """A live key for the world's cadre `cadre` (or none, for an integrator)."""
        name = f"{kind}:{cadre}:{','.join(scope)}"
        if (name, "") not in self.tokens:
            cadre_id = None if kind is PrincipalKind.INTEGRATOR else self.world.cadres[cadre]
            _, token = self.keys.create(
                kind, cadre_id=cadre_id, scope_unit_ids=[self.world.units[u] for u in scope], label=name
            )
            self.tokens[(name, "")] = token
        return self.tokens[(name, "")]

    def headers(self, cadre: str, kind: PrincipalKind = PrincipalKind.CADRE, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(cadre, kind)}", **extra}

    def post(self, path: str, body: dict[str, Any], cadre: str, **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.headers(cadre, **headers))

    def get(self, path: str, cadre: str, kind: PrincipalKind = PrincipalKind.CADRE, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers(cadre, kind))

    def register(self, cadre: str = "township_clerk", **body: Any) -> UUID:
        """Register a case over HTTP; its id."""
        answer = self.post("/cases", registration(**body), cadre)
        assert answer.status_code == 201, answer.text
        return UUID(answer.json()["aggregate_id"])

    def positions(self) -> int:
        return self.world.ledger.recorder.max_notification_id() or 0


def registration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "narrative": "来访反映征地补偿问题",
        "intake": {"channel": "visit", "category": "land_compensation"},
        "petitioner_id": "5f0c1d2e-3a4b-5c6d-8e9f-a0b1c2d3e4f5",
    }
    return body | overrides


@pytest.fixture
def api(world: World, database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app over the test world; it signs no checkpoints (no key file), whatever the working directory."""
    settings = Settings(
        database_url=database_url,
        rate_limit_per_second=0,
        read_wait_seconds=2,
        signing_key_path=str(tmp_path / "no-signing-key"),
    )
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        yield Api(client, world)
