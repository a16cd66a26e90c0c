"""Projections: rebuild rate, memory of a rebuild, catch-up latency, query latency on a large ledger.

Every figure is printed beside a baseline measured in the same run:
- rebuild rate of all views vs the raw rate of reading and decoding the notification log
  (the library's `select_notifications` and the ledger's own mapper), same ledger;
- catch-up latency (save → visible in case_state, embedded mode) vs the command's own latency;
- query latency vs a bare `SELECT 1` on the same connection.
Peak memory of a rebuild is measured in a fresh process per ledger size.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from bench import synthetic
from domain.case import Intake
from domain.clock import ManualClock
from domain.ids import derived_id
from domain.ledger import CommandContext, Ledger
from domain.values import Channel
from projections import VIEWS
from projections.accountability import cadre_accountability
from projections.bulk import CHUNK
from projections.embedded import EmbeddedProjections
from projections.queries import get_case
from projections.shares import default_shares
from projections.store import ViewStore


def raw_read_decode_rate(ledger: Ledger) -> float:
    """Events/s for reading the whole notification log in pages of 1,000 and decoding every event."""
    start, count = 0, 0
    began = time.perf_counter()
    while True:
        page = ledger.recorder.select_notifications(start=start, limit=1000, inclusive_of_start=False)
        if not page:
            break
        for notification in page:
            ledger.mapper.to_domain_event(notification)
        count += len(page)
        start = page[-1].id
    return count / (time.perf_counter() - began)


def rebuild_in_fresh_process(database_url: str, shares: int | None = None) -> dict[str, float]:
    """Rebuild every view in a new process; its events/s and peak resident memory (MiB).

    `peak_mib` is the rebuilding process's own peak; `share_peak_mib` the largest peak of the
    processes it spawned to build shares (0 for a single pass): the two run at the same time.
    """
    code = (
        "import json, resource, time, sys\n"
        "from domain.ledger import Ledger\n"
        "from projections import build_views\n"
        "from projections.rebuild import rebuild_together\n"
        f"ledger = Ledger({database_url!r})\n"
        "began = time.perf_counter()\n"
        f"built = rebuild_together(ledger, build_views(ledger), shares={shares!r})\n"
        "elapsed = time.perf_counter() - began\n"
        "events = max(t.position for t in built.values())\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'events': events, 'rate': events / elapsed, 'peak_mib': peak,"
        " 'share_peak_mib': children}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory(built: dict[str, float]) -> str:
    if not built["share_peak_mib"]:
        return f"{built['peak_mib']:.0f} MiB"
    return f"{built['peak_mib']:.0f} MiB + {built['share_peak_mib']:.0f} MiB per other share process"


@contextmanager
def writers_timed(database_url: str, every: float = 0.01) -> Iterator[tuple[list[float], list[float]]]:
    """Record an action every `every` seconds from a thread, timing each (ms): one second before the
    block (the baseline), then throughout it. Yields both lists, filled once the block ends.

    On SQLite a rebuild shares the file's single writer with the ledger's commands: this is how
    long a command waits behind the rebuild's transactions (the bench ledger's first clerk acts).
    """
    before: list[float] = []
    during: list[float] = []
    refused: list[str] = []
    with Ledger(database_url) as ledger:
        first: object = ledger.repository.get(derived_id("bench", "case", 0))
        clerk = first.first_receiver_id  # type: ignore[attr-defined]
        case_id = ledger.register_case(
            CommandContext(actor_id=clerk, narrative="登记"),
            intake=Intake(channel=Channel.VISIT, category="wage_arrears"),
            petitioner_id=UUID(int=1),
        ).aggregate_id
        stop = threading.Event()
        into = before

        def act() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    ledger.record_action(
                        CommandContext(actor_id=clerk, narrative="走访"), case_id=case_id, kind="visit"
                    )
                except Exception as error:  # a store too busy for too long: counted, not hidden
                    refused.append(repr(error))
                into.append((time.perf_counter() - began) * 1000)
                time.sleep(every)

        actor = threading.Thread(target=act)
        actor.start()
        time.sleep(1)
        into = during
        try:
            yield before, during
        finally:
            stop.set()
            actor.join()
    assert not refused, f"{len(refused)} commands refused during the rebuild, the first: {refused[0]}"


def rebuild_beside_commands(database_url: str) -> tuple[dict[str, float], str]:
    """`rebuild_in_fresh_process` with `writers_timed` around it: its figures, and the commands' waits
    during it beside those of the second before."""
    with writers_timed(database_url) as (alone, beside):
        built = rebuild_in_fresh_process(database_url)
    return built, f"{waits(beside)} (before it: {waits(alone)})"


def waits(timings: list[float]) -> str:
    return (
        f"p50 {percentile(timings, 0.5):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms, "
        f"longest {max(timings):.0f} ms"
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def catch_up_latency(folder: Path, commands: int = 300) -> tuple[list[float], list[float]]:
    """Milliseconds from a command's return to its event being in case_state, and the commands' own."""
    clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
    ledger = Ledger(f"sqlite:///{folder / 'latency.sqlite'}", clock=clock)
    world = synthetic.World(ledger, clock, counties=1, towns=2)
    _, clerk, _, _ = world.towns[0]
    views = EmbeddedProjections(ledger, poll=5.0).start()
    visible, own = [], []
    try:
        case_id = ledger.register_case(
            CommandContext(actor_id=clerk, narrative="登记"),
            intake=Intake(channel=Channel.VISIT, category="wage_arrears"),
            petitioner_id=UUID(int=1),
        ).aggregate_id
        ledger.accept_case(CommandContext(actor_id=clerk, narrative="受理"), case_id=case_id)
        for number in range(commands):
            clock.advance(timedelta(seconds=30))
            began = time.perf_counter()
            result = ledger.record_action(
                CommandContext(actor_id=clerk, narrative=f"走访{number}"), case_id=case_id, kind="visit"
            )
            saved = time.perf_counter()
            assert views.wait_for(result.position, timeout=5)
            visible.append((time.perf_counter() - saved) * 1000)
            own.append((saved - began) * 1000)
            time.sleep(random.uniform(0, 0.01))
    finally:
        views.stop()
        ledger.close()
    return visible, own


def query_latency(ledger: Ledger, samples: int = 500) -> dict[str, list[float]]:
    """Milliseconds per case_state get, per cadre accountability window, and per bare query."""
    connection = ViewStore(ledger.database_url).connect()
    case_ids = [UUID(row[0]) for row in connection.execute("SELECT case_id FROM case_state")]
    cadres = [UUID(row[0]) for row in connection.execute("SELECT DISTINCT cadre_id FROM cadre_roles")]
    ends = [row[0] for row in connection.execute("SELECT MAX(at) FROM cadre_facts")]
    end = datetime.fromisoformat(ends[0].replace("Z", "+00:00"))
    rng = random.Random(1)
    today = end.date()
    timings: dict[str, list[float]] = {
        "select 1": [],
        "case_state get": [],
        "cadre accountability (90 days)": [],
    }
    for _ in range(samples):
        began = time.perf_counter()
        connection.execute("SELECT 1")
        timings["select 1"].append((time.perf_counter() - began) * 1000)
        case_id = rng.choice(case_ids)
        began = time.perf_counter()
        assert get_case(connection, case_id, today) is not None
        timings["case_state get"].append((time.perf_counter() - began) * 1000)
        window_end = end - timedelta(days=rng.randrange(0, 600))
        began = time.perf_counter()
        cadre_accountability(connection, rng.choice(cadres), window_end - timedelta(days=90), window_end)
        timings["cadre accountability (90 days)"].append((time.perf_counter() - began) * 1000)
    connection.close()
    return timings


def run(events: int = 1_000_000, small: int = 100_000) -> None:
    print(f"\n== Projections: {len(VIEWS)} views ({', '.join(VIEWS)}), SQLite ==")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        small_url = f"sqlite:///{folder / 'small.sqlite'}"
        synthetic.build(small_url, small).close()
        with Ledger(small_url) as ledger:
            raw = statistics.median(raw_read_decode_rate(ledger) for _ in range(2))
        single = rebuild_in_fresh_process(small_url, shares=1)
        built = rebuild_in_fresh_process(small_url)
        shares = default_shares(int(built["events"]))
        at = f"rebuild of all views at {built['events']:,.0f} events"
        print(f"{at}, single pass: {single['rate']:8.0f} events/s")
        print(f"{at}, {shares} shares:  {built['rate']:8.0f} events/s")
        print(
            f"raw read+decode of the notification log: {raw:8.0f} events/s   ratio {built['rate'] / raw:.2f}"
            "  (target ≥ 0.30 and ≥ 30,000 events/s)"
        )
        print(f"peak memory of that rebuild: {memory(built)} (single pass: {memory(single)})")

        visible, own = catch_up_latency(folder)
        print(
            f"catch-up save → visible in case_state (embedded): p50 {percentile(visible, 0.5):.1f} ms, "
            f"p99 {percentile(visible, 0.99):.1f} ms (target p99 ≤ 100 ms); "
            f"the command itself: p50 {percentile(own, 0.5):.1f} ms, p99 {percentile(own, 0.99):.1f} ms"
        )

        large_url = f"sqlite:///{folder / 'large.sqlite'}"
        began = time.perf_counter()
        synthetic.build(large_url, events).close()
        print(f"built a {events:,} event ledger in {time.perf_counter() - began:.0f} s (synthetic, batched)")
        large, commands = rebuild_beside_commands(large_url)
        print(
            f"rebuild of all views at {large['events']:,.0f} events: {large['rate']:8.0f} events/s, "
            f"peak memory {memory(large)} (at {built['events']:,.0f}: {memory(built)})"
        )
        print(f"a command every 10 ms during that rebuild: {commands}")
        again, commands = rebuild_beside_commands(large_url)
        print(
            f"rebuild again, replacing the live views: {again['rate']:8.0f} events/s; a command every "
            f"10 ms during it: {commands} (the merge and the old generation's drop commit every "
            f"{CHUNK:,} rows)"
        )
        with Ledger(large_url) as ledger:
            timings = query_latency(ledger)
        for label, values in timings.items():
            print(
                f"{label:<34} p50 {percentile(values, 0.5):6.2f} ms   p99 {percentile(values, 0.99):6.2f} ms"
                + ("   (target p99 ≤ 10 ms)" if label != "select 1" else "   (baseline)")
            )
