"""The Merkle log: append rate, a full `dutyledger verify`, proofs over HTTP; each beside its baseline.

- Append rate: the `merkle_log` view over the whole synthetic ledger (at least 200,000 events for
  the target), two ways: as a rebuild applies it (the runner reads the log, hands the view
  batches, commits every 10,000 events), and the view's own `apply` on batches of 1,000 stored
  rows read beforehand (a transaction each, as the live runner commits), into a scratch store;
  beside them the tree's own append in memory (leaf hash and compact range over the same leaf
  bytes, built beforehand; nothing stored): what the view adds to it is building each leaf
  from its stored row and storing the nodes.
  The baseline is raw SHA-256 (`hashlib.sha256(leaf)`) over the same leaf bytes, timed batch by
  batch in that same pass, so both see the same machine load.
- Verify: `dutyledger verify` run as an operator runs it (a subprocess, SQLite) over the ledger,
  a checkpoint signed every 1,000 events (the default), beside the floor of that work in the same
  run: reading the stored log alone (`read_log`, pages of 10,000), and hashing its leaves alone.
- Inclusion proofs over HTTP: `GET /ledger/proofs/inclusion?index=…&tree_size=…` at random
  indexes against the latest checkpoint, one keep-alive client, alternating with the bare
  `GET /health/live` of the same server (uvicorn, one worker, embedded projections caught up).

The ledger is SQLite, built once by `bench.synthetic` with every view and the checkpoints, and
kept in var/bench-cache/ (delete the folder to build it again). On this 2-core machine, busy
with other work, a 1,000,000-event ledger took 8 minutes to build the first time and a run on it
4 minutes after that; `--events 200000` builds in under 2 minutes and runs in 1.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import synthetic
from bench.http_bench import free_port, percentile, start_server
from domain.ledger import Ledger
from projections import build_views
from projections.merkle.checkpoints import CheckpointStore, create_key_file
from projections.merkle.hashing import CompactRange, leaf_hash
from projections.merkle.leaf import leaf_bytes, recorded_at_of
from projections.merkle.note import Checkpoint
from projections.merkle.store import NodeReader
from projections.rebuild import ensure_current, rebuild, rebuild_together
from projections.store import ViewStore
from projections.tracking import create_generation, ensure_schema
from projections.view import Envelope, Writer
from projections.views.merkle_log import MerkleLogView

CACHE = Path(__file__).resolve().parent.parent / "var" / "bench-cache"
ORIGIN = "bench.dutyledger.local/ledger"
CHECKPOINT_EVERY = 1000
"""Events between signed checkpoints, as `checkpoint_every_events` defaults."""
TARGET_EVENTS = 200_000
BATCH = 1000
PROOFS = 2000
"""Inclusion proof requests timed (and as many bare ones)."""


def cached_ledger(events: int) -> tuple[str, Path]:
    """The URL of a synthetic ledger of `events` events with its views and checkpoints, and its key file.

    Built into a temporary name and renamed when complete, so an interrupted build is never reused.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    path, key = CACHE / f"merkle-{events}.sqlite", CACHE / f"merkle-{events}.key"
    if path.exists() and key.exists():
        print(f"  (cached ledger: {path})")
        return f"sqlite:///{path}", key
    building, building_key = Path(f"{path}.building"), Path(f"{key}.building")
    for stale in (building, building_key):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{building}"
    began = time.perf_counter()
    synthetic.build(url, events).close()
    built = time.perf_counter()
    with Ledger(url) as ledger:
        rebuild_together(ledger, build_views(ledger))
    viewed = time.perf_counter()
    sign_checkpoints(url, building_key)
    print(
        f"  built the ledger in {built - began:.0f} s, its views in {viewed - built:.0f} s, "
        f"its checkpoints in {time.perf_counter() - viewed:.0f} s (cached in {CACHE})"
    )
    building.rename(path)
    building_key.rename(key)
    for lock in CACHE.glob(f"{building.name}-rebuild-*.lock"):  # the rebuilds' lock files, named after it
        lock.unlink()
    return f"sqlite:///{path}", key


def sign_checkpoints(url: str, key: Path) -> int:
    """Sign a checkpoint of every 1,000 events of the built tree, and of the whole; how many."""
    signer = create_key_file(key, ORIGIN)
    checkpoints = CheckpointStore(url)
    connection = ViewStore(url).connect()
    try:
        checkpoints.add_key(signer.verifier)
        tree = NodeReader(connection)
        size = tree.size()
        sizes = sorted({*range(CHECKPOINT_EVERY, size + 1, CHECKPOINT_EVERY), size})
        for signed in sizes:
            made = Checkpoint(ORIGIN, signed, tree.root(signed))
            checkpoints.record(made, signer.sign(made.text()), signer.verifier)
        return len(sizes)
    finally:
        connection.close()
        checkpoints.close()


def pages(ledger: Ledger, size: int = BATCH) -> Iterator[list[tuple[int, str, int, str, bytes]]]:
    after = 0
    while rows := ledger.command_log.read_log(after, size):
        yield rows
        after = rows[-1][0]


# -- append rate ------------------------------------------------------------------------------------


def direct_apply(ledger: Ledger, folder: Path) -> tuple[int, float, float, float]:
    """Events, seconds in the view's `apply` (batches of 1,000, a transaction each), seconds hashing raw,
    seconds appending the same leaves to an in-memory tree (leaf hash and compact range, no storage)."""
    store = ViewStore(f"sqlite:///{folder / 'scratch-views.sqlite'}")
    connection = store.connect()
    view = MerkleLogView(ledger)
    try:
        ensure_schema(connection)
        writer = Writer(connection, create_generation(connection, view, live=True).generation)
        count, applying, hashing, growing = 0, 0.0, 0.0, 0.0
        tree = CompactRange()
        for rows in pages(ledger):
            leaves = [
                leaf_bytes(count + offset, aggregate_id, version, topic, recorded_at_of(payload), payload)
                for offset, (_, aggregate_id, version, topic, payload) in enumerate(rows)
            ]
            batch = [
                Envelope(position, topic, payload=payload, aggregate=(aggregate_id, version))
                for position, aggregate_id, version, topic, payload in rows
            ]
            began = time.perf_counter()
            for leaf in leaves:
                hashlib.sha256(leaf).digest()
            hashed = time.perf_counter()
            for leaf in leaves:
                tree.append(leaf_hash(leaf))
            grown = time.perf_counter()
            with connection.transaction():
                view.apply(writer, batch)
            applying += time.perf_counter() - grown
            growing += grown - hashed
            hashing += hashed - began
            count += len(rows)
        return count, applying, hashing, growing
    finally:
        connection.close()


def append_rate(url: str, folder: Path) -> None:
    with Ledger(url) as ledger:
        events, applying, hashing, growing = direct_apply(ledger, folder)
        began = time.perf_counter()
        rebuild(ledger, MerkleLogView(ledger))
        rebuilt = time.perf_counter() - began
    raw = events / hashing
    print(f"  Merkle append over {events:,} events (SQLite)")
    print(f"  {'raw SHA-256 of each leaf (hashlib, same bytes)':<58} {raw:9,.0f} events/s   (baseline)")
    target = "   (target ≥ 50,000/s and ≥ 0.30)"
    if events < TARGET_EVENTS:
        target = f"   (the target is judged over ≥ {TARGET_EVENTS:,} events)"
    for what, rate, note in (
        ("tree append in memory (leaf hash + compact range)", events / growing, "   (no storage)"),
        ("merkle_log view, apply on batches of 1,000 stored rows", events / applying, target),
        ("merkle_log view rebuilt as the runner applies it", events / rebuilt, "   (reads the log too)"),
    ):
        print(f"  {what:<58} {rate:9,.0f} events/s   ratio to raw {rate / raw:4.2f}{note}")


# -- verify -----------------------------------------------------------------------------------------


def floor(url: str) -> tuple[int, float, float]:
    """Events, seconds reading the stored log (pages of 10,000), seconds hashing every leaf's bytes."""
    count, reading, hashing = 0, 0.0, 0.0
    with Ledger(url) as ledger:
        began = time.perf_counter()
        for rows in pages(ledger, 10_000):
            read = time.perf_counter()
            reading += read - began
            leaves = [
                leaf_bytes(count + offset, aggregate_id, version, topic, recorded_at_of(payload), payload)
                for offset, (_, aggregate_id, version, topic, payload) in enumerate(rows)
            ]
            began = time.perf_counter()
            for leaf in leaves:
                hashlib.sha256(leaf).digest()
            hashing += time.perf_counter() - began
            count += len(rows)
            began = time.perf_counter()
    return count, reading, hashing


def dutyledger() -> list[str]:
    script = Path(sys.executable).parent / "dutyledger"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from api.cli import main; main()"]


def verify(url: str) -> None:
    env = {**os.environ, "DUTYLEDGER_DATABASE_URL": url}
    began = time.perf_counter()
    done = subprocess.run([*dutyledger(), "verify"], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"dutyledger verify failed ({done.returncode}): {done.stdout}{done.stderr}")
    events, reading, hashing = floor(url)
    said = done.stdout.strip().splitlines()[-1]
    print(f"  full `dutyledger verify` of {events:,} events (SQLite): {said[:110]}…")
    print(f"  {'reading the stored log alone (read_log, 10,000 a page)':<58} {reading:7.1f} s   (baseline)")
    print(f"  {'SHA-256 of every leaf alone (hashlib)':<58} {hashing:7.1f} s   (baseline)")
    target = "   (target ≤ 60 s at 1,000,000)"
    print(
        f"  {'dutyledger verify, wall clock (a fresh process)':<58} {elapsed:7.1f} s   "
        f"ratio to the two {elapsed / (reading + hashing):4.2f}{target}"
    )


# -- inclusion proofs over HTTP ---------------------------------------------------------------------


def proof_latency(url: str, key: Path) -> None:
    checkpoints = CheckpointStore(url)
    latest = checkpoints.latest()
    count = len(checkpoints.all())
    checkpoints.close()
    assert latest is not None
    size = latest.checkpoint.size
    with Ledger(url) as ledger:
        ensure_current(
            ledger, build_views(ledger), ViewStore(url)
        )  # a changed view would rebuild in the server
    port = free_port()
    server = start_server(url, port, signing_key=key)
    rng = random.Random(1)
    bare: list[float] = []
    proofs: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while client.get("/ledger/proofs/inclusion", params={"index": 0}).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server's Merkle log never answered")
                time.sleep(0.2)
            for number in range(PROOFS + 100):  # the first 100 of each warm up
                began = time.perf_counter()
                answer = client.get("/health/live")
                live = time.perf_counter() - began
                assert answer.status_code == 200
                params = {"index": rng.randrange(size), "tree_size": size}
                began = time.perf_counter()
                answer = client.get("/ledger/proofs/inclusion", params=params)
                proved = time.perf_counter() - began
                assert answer.status_code == 200, answer.text
                if number >= 100:
                    bare.append(live * 1000)
                    proofs.append(proved * 1000)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"  inclusion proofs over HTTP in the tree of {size:,} ({count:,} checkpoints stored), random indexes"
    )
    for what, values, note in (
        ("GET /health/live (same server, alternating)", bare, "   (baseline)"),
        ("GET /ledger/proofs/inclusion?index=…&tree_size=…", proofs, "   (target p99 ≤ 5 ms)"),
    ):
        print(
            f"  {what:<52} p50 {percentile(values, 0.5):6.2f} ms   p99 {percentile(values, 0.99):6.2f} ms"
            f"{note}"
        )


def run(events: int = 1_000_000) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n== Merkle log: {events:,} events, SQLite (load average {load} on {os.cpu_count()} cores) ==")
    url, key = cached_ledger(events)
    folder = CACHE / "scratch"
    folder.mkdir(exist_ok=True)
    try:
        append_rate(url, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    verify(url)
    proof_latency(url, key)
