"""Commands/s of a typical case lifecycle through the Ledger, beside the raw library rate.

The raw baseline is the eventsourcing library on its own, with its defaults, on the
same database: a trivial aggregate driven by the same command shape (load, decide,
save one event) for as many events per aggregate as a case lifecycle has. It is
measured in the same run, alternating with the ledger, and the median of the rounds
is reported. A second baseline, save-only (no load), shows the storage floor.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from domain.case import Intake
from domain.clock import ManualClock
from domain.ledger import CommandContext, Ledger
from domain.storage.url import store_env
from domain.values import Channel, ClosureKind, ReplyOutcome, Satisfaction, UnitKind, UnitLevel

LIFECYCLE = 11
"""Commands per case below: register … end petition."""


class Counter(Aggregate):
    """The trivial aggregate of the raw baseline."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


def raw_rate(url: str, aggregates: int, *, load: bool) -> float:
    """Events/s for the library alone: `aggregates` × LIFECYCLE single-event commands."""
    app: Application[UUID] = Application(env=store_env(url) | {"PERSISTENCE_MODULE": _library_module(url)})
    start = time.perf_counter()
    for _ in range(aggregates):
        counter = Counter()
        app.save(counter)
        for _ in range(LIFECYCLE - 1):
            if load:
                counter = app.repository.get(counter.id)
            counter.increment()
            app.save(counter)
    elapsed = time.perf_counter() - start
    app.close()
    return aggregates * LIFECYCLE / elapsed


def ledger_rate(url: str, cases: int) -> float:
    """Commands/s for `cases` full case lifecycles through the Ledger."""
    clock = ManualClock(datetime(2026, 3, 2, 1, tzinfo=UTC))
    ledger = Ledger(url, clock=clock)
    admin = uuid4()
    root = _do(
        ledger,
        admin,
        "establish",
        root_unit_name="周口市",
        root_level=UnitLevel.CITY,
        jurisdiction="CN",
        administrator_name="管理员",
        administrator_position="管理员",
    )
    county = _do(
        ledger,
        admin,
        "register_unit",
        name="郸城县",
        level=UnitLevel.COUNTY,
        kind=UnitKind.GOVERNMENT,
        parent_id=root,
    )
    town = _do(
        ledger,
        admin,
        "register_unit",
        name="汲冢镇",
        level=UnitLevel.TOWNSHIP,
        kind=UnitKind.GOVERNMENT,
        parent_id=county,
    )
    leader = _do(
        ledger,
        admin,
        "register_cadre",
        name="镇长",
        unit_id=town,
        position="镇长",
        is_principal=True,
    )
    clerk = _do(ledger, admin, "register_cadre", name="干事", unit_id=town, position="干事")
    clock.advance(timedelta(hours=1))
    steps: list[tuple[UUID, str, dict[str, object]]] = [
        (clerk, "accept_case", {}),
        (clerk, "appoint_owning_leader", {"leader_id": leader}),
        (clerk, "assign_handler", {"handler_id": clerk}),
        (clerk, "record_action", {"kind": "visit"}),
        (clerk, "record_action", {"kind": "talk"}),
        (clerk, "record_action", {"kind": "coordination"}),
        (clerk, "issue_reply", {"outcome": ReplyOutcome.SUPPORT}),
        (clerk, "rate_satisfaction", {"rating": Satisfaction.SATISFIED}),
        (clerk, "close_case", {"closure": ClosureKind.SUBSTANTIVE}),
        (clerk, "end_petition", {}),
    ]
    assert len(steps) + 1 == LIFECYCLE
    intake = Intake(channel=Channel.VISIT, category="land_compensation")
    start = time.perf_counter()
    for _ in range(cases):
        case_id = _do(ledger, clerk, "register_case", intake=intake, petitioner_id=uuid4())
        for actor, name, arguments in steps:
            _do(ledger, actor, name, case_id=case_id, **arguments)
    elapsed = time.perf_counter() - start
    ledger.close()
    return cases * LIFECYCLE / elapsed


def _do(ledger: Ledger, actor: UUID, command: str, /, **arguments: object) -> UUID:
    ctx = CommandContext(actor_id=actor, narrative=f"benchmark step {command}")
    method: Callable[..., object] = getattr(ledger, command)
    result = method(ctx, **arguments)
    return result.aggregate_id  # type: ignore[attr-defined,no-any-return]


def _library_module(url: str) -> str:
    return "eventsourcing.sqlite" if url.startswith("sqlite") else "eventsourcing.postgres"


def drop_schema(database_url: str | None) -> None:
    """Remove a PostgreSQL schema a benchmark made (SQLite files go with their folder)."""
    if database_url is not None and "?schema=" in database_url:
        import psycopg

        server, schema = database_url.split("?schema=")
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _postgres_url() -> str | None:
    import psycopg

    url = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        with psycopg.connect(url.replace("postgresql://", "postgresql://", 1), connect_timeout=2) as conn:
            schema = f"bench_{uuid4().hex[:10]}"
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error:
        return None
    return f"{url}?schema={schema}"


def run(cases: int, rounds: int, backend: str) -> None:
    print("\n== Ledger commands: typical case lifecycle (11 commands per case) ==")
    print("baselines, same run, same database: the eventsourcing library alone on a trivial aggregate,")
    print("  load+save = the same command shape (load, decide, save one event);")
    print("  save-only = the storage floor")
    backends = ["sqlite", "postgres"] if backend == "all" else [backend]
    for name in backends:
        ledger_runs: list[float] = []
        load_runs: list[float] = []
        save_runs: list[float] = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as folder:
                urls = [_fresh_url(name, folder, n) for n in range(3)]
                try:
                    if None in urls:
                        print(f"{name}: skipped (no server at 127.0.0.1:5432)")
                        break
                    ledger_runs.append(ledger_rate(str(urls[0]), cases))
                    load_runs.append(raw_rate(str(urls[1]), cases, load=True))
                    save_runs.append(raw_rate(str(urls[2]), cases, load=False))
                finally:
                    for url in urls:
                        drop_schema(url)
        if not ledger_runs:
            continue
        ledger, load, save = (statistics.median(r) for r in (ledger_runs, load_runs, save_runs))
        print(f"{name:9} ledger commands/s            {ledger:9.0f}")
        print(
            f"{name:9} raw library load+save/s      {load:9.0f}   ratio {ledger / load:.2f} (target ≥ 0.80)"
        )
        print(f"{name:9} raw library save-only/s      {save:9.0f}   ratio {ledger / save:.2f}")


def _fresh_url(backend: str, folder: str, n: int) -> str | None:
    if backend == "sqlite":
        return f"sqlite:///{Path(folder) / f'bench-{n}.sqlite'}"
    return _postgres_url()
