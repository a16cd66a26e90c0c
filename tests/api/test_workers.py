"""`dutyledger serve --workers 2` on one store: both serve; one applies the log, then the other.

On SQLite the applier holds an `flock` of a file beside the database; on PostgreSQL a session
advisory lock, held by one worker's connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from api.keys import KeyStore, PrincipalKind
from projections.store import ViewStore
from tests.api.live import free_port
from tests.projections.replay import assert_views_equal_replay
from tests.support import World


def workers(pid: int) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    found = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in found if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def applier_of(database_url: str) -> int | None:
    """The process holding the right to apply the log to the views (`ViewStore.try_applying`)."""
    store = ViewStore(database_url)
    if store.dialect == "sqlite":
        return flock_holder(store.lock_file("applier"))
    connection = store.connect()
    try:
        held = connection.execute(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = "
            "(hashtextextended(?, 0) & 4294967295)::oid",
            (f"{connection.schema}.dutyledger-applier",),
        )
    finally:
        connection.close()
    return socket_owner(int(held[0][0])) if held else None


def socket_owner(port: int) -> int | None:
    """The process with a TCP socket bound to local `port` on this machine (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (process / "fd").iterdir()]
        except OSError:
            continue
        if any(link in {f"socket:[{inode}]" for inode in inodes} for link in links):
            return int(process.name)
    return None


def flock_holder(lock_file: str) -> int | None:
    """The process holding an `flock` on the file, from /proc/locks."""
    inode = os.stat(lock_file).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].endswith(f":{inode}"):
            return int(fields[-4])
    return None


@pytest.fixture
def served(world: World, database_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "DUTYLEDGER_DATABASE_URL": database_url,
        "DUTYLEDGER_RATE_LIMIT_PER_SECOND": "0",
        "DUTYLEDGER_SIGNING_KEY_PATH": str(tmp_path / "no-signing-key"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from api.cli import main; main()",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200 and len(workers(server.pid)) == 2:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        server.terminate()
        server.wait(timeout=30)
        raise RuntimeError("the server did not start two workers")
    try:
        yield base, server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def record_and_read(base: str, token: str, case_id: UUID, count: int) -> None:
    """Record `count` actions, each on a new connection (any worker), and read each back at once
    with `min_position`, from another new connection (any worker)."""
    headers = {"Authorization": f"Bearer {token}"}
    before = httpx.get(f"{base}/cases/{case_id}", headers=headers).json()["action_count"]
    for number in range(1, count + 1):
        recorded = httpx.post(f"{base}/cases/{case_id}/actions", headers=headers,
                              json={"narrative": f"走访{number}", "kind": "visit"})  # fmt: skip
        assert recorded.status_code == 200, recorded.text
        read = httpx.get(f"{base}/cases/{case_id}", headers=headers,
                         params={"min_position": recorded.json()["position"]})  # fmt: skip
        assert read.status_code == 200, read.text
        assert read.json()["action_count"] == before + number


def test_two_workers_on_one_store_serve_reads_of_their_own_writes_and_survive_the_applier(
    world: World, database_url: str, served: tuple[str, subprocess.Popen[bytes]]
) -> None:
    base, server = served
    keys = KeyStore(database_url)
    token = keys.create(PrincipalKind.CADRE, cadre_id=world.township_clerk)[1]
    keys.close()
    case_id = world.accepted()
    record_and_read(base, token, case_id, 20)

    applier = applier_of(database_url)
    serving = workers(server.pid)
    assert applier in serving  # one worker applies the log; the other only watches
    os.kill(applier, signal.SIGKILL)
    survivor = next(w for w in serving if w != applier)
    deadline = time.monotonic() + 10
    while applier_of(database_url) in (None, applier) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert applier_of(database_url) == survivor  # took over at its next look
    record_and_read(base, token, case_id, 20)

    connection = ViewStore(database_url).connect()
    try:
        assert_views_equal_replay(world.ledger, connection)
    finally:
        connection.close()
