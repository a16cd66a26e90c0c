"""`dutyledger follow`, the reference consumer, on a real server: in order, once, resumable, at-least-once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.cli import main
from api.keys import PrincipalKind
from api.settings import Settings
from tests.api.live import serving
from tests.support import World


@dataclass
class Server:
    base: str
    token: str
    world: World

    def sequenced(self) -> int:
        """Wait until the server has a log index for every stored event; how many there are."""
        stored = len(self.world.ledger.command_log.read_log(0, 1_000_000))
        deadline = time.monotonic() + 15
        headers = {"Authorization": f"Bearer {self.token}"}
        while httpx.get(f"{self.base}/events/{stored - 1}", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the server did not sequence every event"
            time.sleep(0.02)
        return stored

    def feed(self) -> list[dict[str, Any]]:
        """The whole log as the pull feed serves it."""
        answer = httpx.get(
            f"{self.base}/events?limit=1000", headers={"Authorization": f"Bearer {self.token}"}
        )
        events: list[dict[str, Any]] = answer.json()["events"]
        return events


@pytest.fixture
def server(world: World, database_url: str) -> Iterator[Server]:
    """A real server (embedded projections) on a free port over the test world, and an integrator's key."""
    app = create_app(Settings(database_url=database_url, rate_limit_per_second=0), ledger=world.ledger)
    with serving(app) as url:
        token = app.state.keys.create(PrincipalKind.INTEGRATOR, label="follower")[1]
        yield Server(url, token, world)


@dataclass
class Receiver:
    """A local HTTP endpoint that records what it is sent; it can fail the first requests, or be slow."""

    fail_first: int = 0
    delay: float = 0.0
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def indexes(self) -> list[int]:
        return [json.loads(body)["logindex"] for _, body in list(self.got)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    record = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(record.delay)
            if record.fail_first > 0:
                record.fail_first -= 1
                self.send_response(503)
                self.send_header("Retry-After", "0")
            else:
                record.got.append((dict(self.headers), body))
                self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{http.server_address[1]}/inbox"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        http.shutdown()


def follow(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[dict[str, Any]], str]:
    """Run `dutyledger follow ARGS` in this process: the events it printed, and its stderr."""
    capsys.readouterr()
    main(["follow", *args])
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_once_prints_every_event_once_in_order_and_a_second_run_resumes_after_the_checkpoint(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        server.world.accepted()
    count = server.sequenced()
    checkpoint = tmp_path / "position.json"
    args = (server.base, "--key", server.token, "--checkpoint", str(checkpoint), "--once")

    events, err = follow(capsys, *args)
    assert [event["logindex"] for event in events] == list(range(count))
    assert events == server.feed()  # exactly what the feed serves, once each
    assert json.loads(checkpoint.read_text())["after"] == count - 1
    assert f"caught up at log index {count - 1}" in err

    server.world.accepted()
    server.world.accepted()
    grown = server.sequenced()
    again, _ = follow(capsys, *args)
    assert [event["logindex"] for event in again] == list(range(count, grown))
    assert follow(capsys, *args)[0] == []

    cases, _ = follow(
        capsys, *args[:3], "--checkpoint", str(tmp_path / "c.json"), "--type", "*.case.*", "--once"
    )
    assert {event["type"].split(".")[2] for event in cases} == {"case"}
    assert [event["logindex"] for event in cases] == sorted({event["logindex"] for event in cases})
    assert len(cases) == 10
    assert json.loads((tmp_path / "c.json").read_text())["after"] == grown - 1

    with pytest.raises(SystemExit) as refused:
        follow(capsys, server.base, "--key", "dlk_wrong", "--checkpoint", str(tmp_path / "x.json"), "--once")
    assert refused.value.code == 1
    assert "401 No valid API key was presented" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a checkpoint of one feed is not a position in another
        follow(capsys, *args, "--type", "cn.petition.case.*")
    assert "holds a position in another feed" in capsys.readouterr().err


def test_forward_posts_each_event_as_a_cloudevent_and_retries_a_failing_receiver(
    server: Server, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.world.accepted()
    count = server.sequenced()
    receiver.fail_first = 2  # 503 with Retry-After: 0, twice
    args = ("--checkpoint", str(tmp_path / "position.json"), "--forward", receiver.url, "--once")
    events, err = follow(capsys, server.base, "--key", server.token, *args)
    assert events == []  # forwarded, not printed
    assert receiver.indexes() == list(range(count))
    assert [json.loads(body) for _, body in receiver.got] == server.feed()
    headers = {name.lower(): value for name, value in receiver.got[0][0].items()}
    assert headers["content-type"] == "application/cloudevents+json"
    assert "authorization" not in headers  # the ledger's key is never sent to the receiver
    assert err.count("503") == 2


def test_a_follower_killed_midway_and_restarted_delivers_every_event_at_least_once_in_order(
    server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    for _ in range(10):
        server.world.accepted()
    before = server.sequenced()
    receiver.delay = 0.01
    command = [sys.executable, "-c", "from api.cli import main; main()", "follow", server.base]
    command += ["--checkpoint", str(tmp_path / "position.json"), "--forward", receiver.url]
    env = {**os.environ, "DUTYLEDGER_FOLLOW_KEY": server.token}
    live = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(receiver.got) < before:  # caught up: from here on it reads the live stream
            assert time.monotonic() < deadline
            assert live.poll() is None
            time.sleep(0.02)
        for _ in range(10):
            server.world.accepted()
            time.sleep(0.01)
        while len(receiver.got) < before + 8:
            assert time.monotonic() < deadline
            assert live.poll() is None
            time.sleep(0.005)
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    assert live.stderr is not None
    assert f"caught up at log index {before - 1}" in live.stderr.read().decode()  # then it read the stream
    time.sleep(0.2)  # a POST the killed follower had sent may still be in the receiver
    killed_at = len(receiver.got)
    server.world.accepted()
    count = server.sequenced()
    assert killed_at < count

    again = subprocess.run([*command, "--once"], env=env, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr
    seen = receiver.indexes()
    restart = seen[killed_at]
    assert seen[:killed_at] == list(range(killed_at))  # the first run, in order, no gap
    assert restart <= killed_at  # resumed at or before the first event it may not have finished
    assert seen[killed_at:] == list(range(restart, count))  # then in order to the end
    assert killed_at - restart <= 1  # a checkpoint per live event: at most one delivered twice


def test_a_gap_in_the_log_stops_the_follower_and_503_is_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers: list[tuple[int, dict[str, str], dict[str, Any]]] = [
        (503, {"Retry-After": "0"}, {"title": "The sequencer has not started yet", "status": 503}),
        (200, {}, {"next": 3, "complete": False, "end": 4, "events": [{"logindex": i} for i in (0, 1, 3)]}),
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = answers.pop(0)
            payload = json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    fake = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    checkpoint = tmp_path / "position.json"
    try:
        with pytest.raises(SystemExit) as stopped:
            follow(
                capsys,
                f"http://127.0.0.1:{fake.server_address[1]}",
                "--key",
                "k",
                "--checkpoint",
                str(checkpoint),
            )
    finally:
        fake.shutdown()
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert "503 The sequencer has not started yet; trying again in 0 s" in err
    assert "log index 3 arrived after 1 (expected 2)" in err
    assert [json.loads(line)["logindex"] for line in out.splitlines()] == [0, 1]
    assert not checkpoint.exists()  # printed, but the page never counted as processed: both come again


@pytest.mark.parametrize(
    "args",
    [
        ("notaurl",),
        ("ftp://ledger.example.cn",),
        ("http://",),
        ("https://ledger.example.cn", "--forward", "hotline.example.cn/events"),
    ],
)
def test_an_address_no_retry_could_reach_is_refused_at_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """It retried such a URL forever, doubling its wait."""
    with pytest.raises(SystemExit) as stopped:
        main(["follow", *args, "--key", "dlk_x", "--checkpoint", str(tmp_path / "c.json"), "--once"])
    assert stopped.value.code == 2
    assert "http:// or https://" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()
