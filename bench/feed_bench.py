"""The public log: bulk catch-up over HTTP, and save-to-SSE-delivery latency, each beside its baseline.

- Bulk catch-up: `GET /events` as NDJSON (100,000 indexes a request, `after` from the
  `Next-After` header) over a ~100,000 event ledger, in events/s, beside the raw rate of
  reading the same ledger's notification log (`command_log.read_log`, pages of 1,000) in the
  same run; also the paged JSON feed a follower catches up with (1,000 a page), for scale.
- Save → SSE delivery: a client holds `GET /events/stream` open while another records
  commands over HTTP one at a time; per event, from just before the POST to the moment its
  SSE message arrives, beside the POST's own round trip.

The server runs in its own process (uvicorn, one worker, embedded projections, rate limit
off); the clients are this process. Client and server share the machine's two cores.
"""

from __future__ import annotations

import json
import queue
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from api.keys import KeyStore, PrincipalKind
from bench import synthetic
from bench.http_bench import free_port, percentile, prepare, start_server
from bench.ledger_commands import _postgres_url, drop_schema
from domain.ledger import Ledger
from projections import build_views
from projections.rebuild import rebuild_together

NDJSON = "application/x-ndjson"


def integrator_key(database_url: str) -> str:
    keys = KeyStore(database_url)
    try:
        return keys.create(PrincipalKind.INTEGRATOR, label="feed benchmark")[1]
    finally:
        keys.close()


ROUNDS = 5
"""Alternating rounds of the raw read and each feed read: the machine's speed swings by a third
from one second to the next, so each round's rate is set against that round's raw read."""


def stored_events(ledger: Ledger) -> int:
    count, after = 0, 0
    while page := ledger.command_log.read_log(after, 10_000):
        count, after = count + len(page), page[-1][0]
    return count


def raw_read_rate(ledger: Ledger) -> tuple[float, int]:
    """Events/s reading the whole notification log with `read_log` in pages of 1,000 (no decoding)."""
    count, after = 0, 0
    began = time.perf_counter()
    while page := ledger.command_log.read_log(after, 1000):
        count, after = count + len(page), page[-1][0]
    return count / (time.perf_counter() - began), count


def ndjson_rate(client: httpx.Client, base: str) -> tuple[float, int]:
    """Events/s reading the whole feed as NDJSON, 100,000 indexes a request, as a bulk consumer would."""
    count, after = 0, -1
    began = time.perf_counter()
    while True:
        params = {"after": after, "limit": 100_000}
        with client.stream("GET", f"{base}/events", params=params, headers={"Accept": NDJSON}) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_bytes():
                count += chunk.count(b"\n")
            until = int(answer.headers["Next-After"])
        if until == after:
            return count / (time.perf_counter() - began), count
        after = until


def paged_json_rate(client: httpx.Client, base: str) -> tuple[float, int]:
    """Events/s reading the whole feed as JSON pages of 1,000 (what `dutyledger follow` catches up with)."""
    count, after = 0, -1
    began = time.perf_counter()
    while True:
        page = client.get(f"{base}/events", params={"after": after, "limit": 1000}).json()
        count += len(page["events"])
        after = page["next"]
        if not page["complete"]:
            return count / (time.perf_counter() - began), count


def wait_sequenced(client: httpx.Client, base: str, count: int) -> None:
    """Until the server has given the last stored event its log index."""
    deadline = time.monotonic() + 120
    while client.get(f"{base}/events/{count - 1}").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not sequence the ledger")
        time.sleep(0.1)


def bulk(database_url: str, label: str, events: int) -> None:
    began = time.perf_counter()
    synthetic.build(database_url, events).close()
    with Ledger(database_url) as ledger:
        rebuild_together(ledger, build_views(ledger))
        count = stored_events(ledger)
    built = time.perf_counter() - began
    print(f"\n== Public log on {label}: {count:,} events (synthetic; built with its views in {built:.0f} s)")
    token = integrator_key(database_url)
    port = free_port()
    server = start_server(database_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            wait_sequenced(client, base, count)
            with Ledger(database_url) as ledger:
                raws, ndjsons, pages = [], [], []
                for _ in range(ROUNDS):  # alternating rounds, all warm
                    raws.append(raw_read_rate(ledger))
                    ndjsons.append(ndjson_rate(client, base))
                    pages.append(paged_json_rate(client, base))
        assert all(n == count for _, n in raws + ndjsons + pages), (raws, ndjsons, pages)
        raw = statistics.median(rate for rate, _ in raws)
        ndjson = statistics.median(rate for rate, _ in ndjsons)
        paged = statistics.median(rate for rate, _ in pages)
        ratios = {  # each round's rate over the same round's baseline: the machine's speed swings
            "ndjson": statistics.median(n / r for (n, _), (r, _) in zip(ndjsons, raws, strict=True)),
            "paged": statistics.median(p / r for (p, _), (r, _) in zip(pages, raws, strict=True)),
        }
        print(
            f"  {'raw notification-log read (read_log, 1,000 a page)':<52} {raw:9,.0f} events/s   (baseline)"
        )
        for what, rate, ratio, target in (
            (
                "bulk catch-up over HTTP (NDJSON, 100,000 a request)",
                ndjson,
                ratios["ndjson"],
                "   (target ≥ 50,000/s and ≥ 0.30)",
            ),
            ("paged JSON feed (1,000 a page, what `follow` reads)", paged, ratios["paged"], ""),
        ):
            print(f"  {what:<52} {rate:9,.0f} events/s   ratio to raw {ratio:4.2f}{target}")
        print(f"  (medians of {ROUNDS} alternating rounds; a ratio is the median of each round's own)")
    finally:
        server.terminate()
        server.wait(timeout=30)


class Stream(threading.Thread):
    """Holds `GET /events/stream` open and stamps each message as it arrives."""

    def __init__(self, base: str, token: str, after: int) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.after = base, token, after
        self.arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.open = threading.Event()
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(10, read=None)
        )
        self.closing = False

    def run(self) -> None:
        try:
            with self.client.stream("GET", f"{self.base}/events/stream?after={self.after}") as answer:
                answer.raise_for_status()
                self.open.set()
                for line in answer.iter_lines():
                    if line.startswith("data:"):
                        self.arrivals.put((time.perf_counter(), json.loads(line[5:])))
        except (httpx.HTTPError, OSError):
            if not self.closing:
                raise

    def close(self) -> None:
        """Hang up (a server waits for its open streams before it stops)."""
        self.closing = True
        self.client.close()
        self.join(timeout=10)


def delivery_latency(database_url: str, label: str, commands: int = 300) -> None:
    cases, _, _ = prepare(database_url, cases=1)
    (case_id, clerk), token = cases[0], integrator_key(database_url)
    with Ledger(database_url) as ledger:
        count = stored_events(ledger)
    port = free_port()
    server = start_server(database_url, port)
    base = f"http://127.0.0.1:{port}"
    delivered, round_trips = [], []
    stream = Stream(base, token, after=count - 1)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {clerk}"}, timeout=30) as client:
            wait_sequenced(stream.client, base, count)
            stream.start()
            stream.open.wait(10)
            for number in range(commands):
                body = {"narrative": f"走访{number}", "kind": "visit"}
                began = time.perf_counter()
                answer = client.post(f"/cases/{case_id}/actions", json=body)
                answered = time.perf_counter()
                assert answer.is_success, answer.text
                version = answer.json()["version"]
                while True:  # the message carrying this command's event
                    arrived, event = stream.arrivals.get(timeout=10)
                    if event["subject"] == str(case_id) and event["aggregateversion"] == version:
                        break
                delivered.append((arrived - began) * 1000)
                round_trips.append((answered - began) * 1000)
                time.sleep(random.uniform(0, 0.01))
    finally:
        stream.close()
        server.terminate()
        server.wait(timeout=30)
    target = "   (target p99 ≤ 150 ms)" if label == "SQLite" else ""
    for what, values, note in (
        (f"save → SSE delivery ({commands} commands, one at a time)", delivered, target),
        ("the command's own round trip (POST answered)", round_trips, "   (baseline)"),
    ):
        print(
            f"  {what:<52} p50 {percentile(values, 0.5):6.1f} ms   p99 {percentile(values, 0.99):6.1f} ms   "
            f"max {max(values):6.1f} ms{note}"
        )


def fresh_url(label: str, folder: Path, name: str) -> str | None:
    """A new store: a SQLite file in `folder`, or a new PostgreSQL schema (None without a server)."""
    return f"sqlite:///{folder / name}.sqlite" if label == "SQLite" else _postgres_url()


def run(backend: str = "all", events: int = 100_000) -> None:
    labels = {"sqlite": ["SQLite"], "postgres": ["PostgreSQL"]}.get(backend, ["SQLite", "PostgreSQL"])
    with tempfile.TemporaryDirectory() as name:
        for label in labels:
            big, small = fresh_url(label, Path(name), "feed"), fresh_url(label, Path(name), "latency")
            if big is None or small is None:
                print(f"\n== Public log on {label}: skipped, no server at 127.0.0.1:5432 ==")
                continue
            try:
                bulk(big, label, events)
                print(f"  -- embedded mode on {label}: the server's own projections sequence each save")
                delivery_latency(small, label)
            finally:
                drop_schema(big)
                drop_schema(small)
