"""The HTTP API: command and query throughput and latency with 1, 8 and 32 concurrent clients.

The server runs in its own process as `make run` has it (uvicorn, one worker, embedded views,
webhooks and signed checkpoints), and again with two workers (`serve --workers 2`: one of
them applies the log to the views), rate limit off, over a ledger of a few hundred accepted
cases; the clients are asyncio tasks of this process, one keep-alive connection each. Every
figure is printed beside the same server's bare endpoint (`GET /health/live`: routing, JSON,
no store) at the same concurrency, measured in the same rounds. Client and server share the
machine's two cores, as they would on a small deployment.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson

from api.keys import KeyStore, PrincipalKind
from api.settings import Settings
from bench import synthetic
from bench.ledger_commands import _postgres_url, drop_schema
from domain.case import Intake
from domain.clock import ManualClock
from domain.ledger import CommandContext, Ledger
from domain.values import Channel
from projections.merkle.checkpoints import create_key_file

Request = tuple[str, str, dict[str, Any] | None, str]
"""(method, path, JSON body or None, token)."""


def prepare(database_url: str, cases: int = 300) -> tuple[list[tuple[UUID, str]], list[UUID], str]:
    """A ledger of accepted cases: each with its clerk's token; the clerks; an administrator's token."""
    clock = ManualClock(datetime.now(UTC) - timedelta(days=2))
    ledger = Ledger(database_url, clock=clock)
    world = synthetic.World(ledger, clock, counties=2, towns=4)
    keys = KeyStore(database_url)
    tokens = {clerk: keys.create(PrincipalKind.CADRE, cadre_id=clerk)[1] for _, clerk, _, _ in world.towns}
    admin = keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=world.admin)[1]
    keys.close()
    made = []
    for number in range(cases):
        _, clerk, _, _ = world.towns[number % len(world.towns)]
        ctx = CommandContext(actor_id=clerk, narrative="登记")
        intake = Intake(channel=Channel.VISIT, category="wage_arrears")
        case_id = ledger.register_case(ctx, intake=intake, petitioner_id=uuid4()).aggregate_id
        ledger.accept_case(CommandContext(actor_id=clerk, narrative="受理"), case_id=case_id)
        made.append((case_id, tokens[clerk]))
    ledger.close()
    return made, [clerk for _, clerk, _, _ in world.towns], admin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    database_url: str, port: int, signing_key: Path | None = None, workers: int = 1
) -> subprocess.Popen[bytes]:
    """The server as `make run` starts it (embedded views and webhooks), no rate limit, with `workers`
    processes (as `dutyledger serve --workers`).

    It signs checkpoints with `signing_key`; with None, it signs none (never with a key that
    happens to lie in the working directory).
    """
    key = signing_key or Path(tempfile.gettempdir()) / f"dutyledger-bench-no-signing-key-{uuid4().hex}"
    env = {
        **os.environ,
        "DUTYLEDGER_DATABASE_URL": database_url,
        "DUTYLEDGER_RATE_LIMIT_PER_SECOND": "0",
        "DUTYLEDGER_SIGNING_KEY_PATH": str(key),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                if workers > 1:  # the first worker answers while the others still start
                    time.sleep(5)
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


async def drive(base: str, requests: Sequence[Request], clients: int) -> tuple[float, list[float], int]:
    """Send `requests` over `clients` keep-alive connections; (requests/s, latencies in ms, non-2xx answers).

    A minimal HTTP/1.1 client on asyncio streams: a general-purpose client (httpx) costs more
    CPU per request than the server's bare endpoint, and would measure itself.
    """
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        for method, path, body, token in queue:
            payload = orjson.dumps(body) if body is not None else b""
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            began = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + payload)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - began) * 1000)
            failures += status >= 300
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(requests) / (time.perf_counter() - began), latencies, failures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


ROUNDS = 3
"""Each figure is measured this many times, the figures of one round one after another, so that
the machine's drift (a shared VM's neighbours) weighs on every figure alike."""

REQUESTS = {1: 300, 8: 3000, 32: 3000}
"""Requests per measurement, by number of clients: a few seconds each at the rates seen."""


@dataclass
class Figure:
    """One figure's rounds: requests/s of each, and every request's latency (ms)."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def add(self, measured: tuple[float, list[float], int]) -> None:
        rate, latencies, failures = measured
        self.rates.append(rate)
        self.latencies += latencies
        self.failures += failures

    @property
    def rate(self) -> float:
        """The median round's rate."""
        return statistics.median(self.rates)


def cycled(cases: list[tuple[UUID, str]], count: int) -> list[tuple[UUID, str]]:
    """`count` cases, going round the list as often as needed."""
    return (cases * (count // len(cases) + 1))[:count]


def line(label: str, figure: Figure, baseline: float) -> str:
    """The median rate, latencies over every round, the ratio to the bare endpoint, and the rounds' range."""
    failed = f"  ({figure.failures} not 2xx!)" if figure.failures else ""
    spread = f"{min(figure.rates):.0f}–{max(figure.rates):.0f}"
    return (
        f"  {label:<34} {figure.rate:7.0f}/s   p50 {percentile(figure.latencies, 0.5):6.1f} ms   "
        f"p99 {percentile(figure.latencies, 0.99):6.1f} ms   ratio to bare {figure.rate / baseline:4.2f}"
        f"   (rounds {spread}/s){failed}"
    )


def settle(base: str, case: tuple[UUID, str], ledger: Ledger) -> None:
    """Wait until the server's views have applied all that was recorded: queries are measured on
    views at rest, not beside the catching up of a command round's thousands of events."""
    case_id, token = case
    end = ledger.recorder.max_notification_id() or 0
    params, headers = {"min_position": end}, {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/cases/{case_id}", params=params, headers=headers, timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the views did not reach position {end}")


def measure(database_url: str, label: str, folder: Path, workers: int = 1) -> None:
    cases, clerks, admin = prepare(database_url)
    port = free_port()
    signing_key = folder / f"{label}-{workers}-signing.key"
    create_key_file(signing_key, Settings.model_fields["log_origin"].default)
    server = start_server(database_url, port, signing_key, workers)
    base = f"http://127.0.0.1:{port}"

    def run(requests: Sequence[Request], clients: int) -> tuple[float, list[float], int]:
        return asyncio.run(drive(base, requests, clients))

    token = cases[0][1]
    ledger = Ledger(database_url)
    query = "from=2020-01-01T00%3A00%3A00%2B08%3A00&to=2030-01-01T00%3A00%3A00%2B08%3A00"
    processes = "1 worker" if workers == 1 else f"{workers} workers (`serve --workers {workers}`)"
    print(f"\n== HTTP API on {label}: uvicorn, {processes}; client in the same machine; {ROUNDS} rounds ==")
    try:
        for clients, count in REQUESTS.items():
            plan: dict[str, list[Request]] = {
                "bare GET /health/live": [("GET", "/health/live", None, token)] * count,
                "command POST /cases/{id}/actions": [
                    ("POST", f"/cases/{case_id}/actions", {"narrative": f"走访{n}", "kind": "visit"}, key)
                    for n, (case_id, key) in enumerate(cycled(cases, count))
                ],
            }
            if clients == 32:
                plan["query GET /cases/{id}"] = [
                    ("GET", f"/cases/{case_id}", None, key) for case_id, key in cycled(cases, count)
                ]
                plan["query GET /cadres/{id}/accountability"] = [
                    ("GET", f"/cadres/{clerks[n % len(clerks)]}/accountability?{query}", None, admin)
                    for n in range(count)
                ]
            figures = {name: Figure() for name in plan}
            for _ in range(ROUNDS):
                for name, requests in plan.items():
                    if name.startswith("query"):
                        settle(base, cases[0], ledger)
                    figures[name].add(run(requests, clients))
            bare = figures["bare GET /health/live"].rate
            print(f"{clients} client(s):")
            for name, figure in figures.items():
                print(line(name, figure, bare))
        print(
            "  targets (SQLite): commands ≥ 800/s at 32 clients, p99 ≤ 100 ms; queries ≥ 2,000/s, p99 ≤ 50 ms"
        )
    finally:
        ledger.close()
        server.terminate()
        server.wait(timeout=30)


def run_all(backend: str = "all") -> None:
    with tempfile.TemporaryDirectory() as folder:
        if backend in ("sqlite", "all"):
            measure(f"sqlite:///{Path(folder) / 'http.sqlite'}", "SQLite", Path(folder))
            measure(f"sqlite:///{Path(folder) / 'http-workers.sqlite'}", "SQLite", Path(folder), workers=2)
        if backend in ("postgres", "all"):
            for workers in (1, 2):
                url = _postgres_url()
                if url is None:
                    print("\n== HTTP API on PostgreSQL: skipped, no server at 127.0.0.1:5432 ==")
                    break
                try:
                    measure(url, "PostgreSQL", Path(folder), workers=workers)
                finally:
                    drop_schema(url)
