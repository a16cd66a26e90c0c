"""`dutyledger follow URL --key KEY`: the reference consumer of the public log. Copy it.

It hands every event on, in log order, as the CloudEvent the server sent: printed as one
JSON line, or POSTed to `--forward` (`application/cloudevents+json`, structured mode). Its
position is a small JSON file (`--checkpoint`) rewritten after each page or live event, once
the event has been handed on. So a crash re-delivers at most the events after the last
checkpoint (at-least-once: deduplicate on the CloudEvent `id` if you must) and never skips one.

1. Catch up with the pull feed, `GET /events?after=N&limit=1000`, page by page, until a page
   is not `complete` (the end of the log). `--once` stops there.
2. Follow the live feed, `GET /events/stream` (Server-Sent Events: `id:` is the log index,
   `data:` one CloudEvent, comment lines are heartbeats). On any disconnect, wait, then
   reconnect with `Last-Event-ID: N`: the server resumes right after N.
3. Check what arrives: log indexes only go up and, when nothing is filtered, by exactly one
   (the log has no gaps). A follower about to skip an event stops instead.

Errors are RFC 9457 problem+json. A 4xx means the request is wrong: print it and stop. 429,
503, other 5xx and network failures pass: wait (Retry-After, else a doubling back-off) and retry.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import typer

from api.webhooks.addresses import not_http

PAGE = 1000
"""Events per catch-up page (the most the feed serves as JSON)."""
TIMEOUT = httpx.Timeout(10.0, read=45.0)
"""The stream sends a heartbeat every 15 s: 45 s of silence means the connection is dead."""
MAX_BACKOFF = 60.0
EVENT_MEDIA = "application/cloudevents+json"

T = TypeVar("T")


class Stop(Exception):
    """Retrying will not help (a refused key, a broken sequence): stop, the checkpoint intact."""


class Retry(Exception):
    """A passing failure: try again after `after` seconds (None: after the back-off)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Follower:
    """Reads the log from its checkpoint on and hands each event on, in order."""

    def __init__(
        self,
        url: str,
        key: str,
        checkpoint: Path,
        forward: str | None = None,
        types: list[str] | None = None,
        units: list[str] | None = None,
        gaps_allowed: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.filters = {"type": sorted(types or []), "unit": sorted(units or [])}
        # Unfiltered, log indexes go up by exactly one; filtered, they only go up.
        self.contiguous = not (types or units or gaps_allowed)
        self.checkpoint = checkpoint
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        self.forward = forward
        self.ledger = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT)
        self.sink = httpx.Client(timeout=TIMEOUT)  # its own client: the ledger's key stays with the ledger
        self.backoff = self.retry_after = 1.0  # `retry_after`: what the stream's `retry:` asks for
        self.position = self.saved = self.load()

    # -- the checkpoint: the last log index handed on (-1: none yet) -------------------------

    def feed(self) -> dict[str, Any]:
        """What the position is a position in: another URL or filter is another sequence."""
        return {"url": self.url, **self.filters}

    def load(self) -> int:
        if not self.checkpoint.exists():
            return -1
        saved = json.loads(self.checkpoint.read_text())
        if saved.get("feed") != self.feed():
            raise Stop(f"{self.checkpoint} holds a position in another feed ({saved.get('feed')})")
        return int(saved["after"])

    def save(self) -> None:
        """Write the position atomically (temp file, fsync, rename): a crash leaves the old or the new."""
        if self.position == self.saved:
            return
        sys.stdout.flush()  # printed events are handed on before they count
        with tempfile.NamedTemporaryFile("w", dir=self.checkpoint.parent, delete=False) as temp:
            json.dump({"after": self.position, "feed": self.feed()}, temp)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp.name, self.checkpoint)
        self.saved = self.position

    # -- handing one event on -----------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        index = event["logindex"]
        expected = self.position + 1
        if index < expected or (self.contiguous and index != expected):
            raise Stop(
                f"log index {index} arrived after {self.position} (expected {expected}); stopping so "
                "that nothing is skipped. If the key itself reads only some event types or units, "
                "pass --gaps-allowed."
            )
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        if self.forward is None:
            print(line)
        else:
            self.retrying(partial(self.post, line.encode()))
        self.position = index

    def post(self, body: bytes) -> None:
        """POST the event to the receiver (CloudEvents structured mode); only a 2xx answer counts."""
        assert self.forward is not None
        self.check(self.sink.post(self.forward, content=body, headers={"Content-Type": EVENT_MEDIA}))

    # -- 1. catching up with the pull feed ----------------------------------------------------

    def catch_up(self) -> None:
        while True:
            params = {"after": self.position, "limit": PAGE, **self.filters}
            page = self.retrying(partial(self.get_json, "/events", params))
            for event in page["events"]:
                self.handle(event)
            if not self.contiguous:
                self.position = max(self.position, page["next"])  # filtered: skip what was scanned
            self.save()
            if not page["complete"]:  # the last page so far: caught up
                return

    def get_json(self, path: str, params: dict[str, Any]) -> Any:
        answer = self.ledger.get(self.url + path, params=params)
        self.check(answer)
        return answer.json()

    # -- 2. following the live stream ---------------------------------------------------------

    def follow(self) -> None:
        while True:
            self.retrying(self.stream)

    def stream(self) -> None:
        """Read one connection to the stream until it breaks (`Retry`: reconnect) or stops."""
        params: dict[str, Any] = {"after": self.position, **self.filters}
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(self.position)}
        with self.ledger.stream("GET", self.url + "/events/stream", params=params, headers=headers) as answer:
            self.check(answer)
            for index, data in self.messages(answer):
                event = json.loads(data)
                if str(event["logindex"]) != index:
                    raise Stop(f"message id {index} carries the event of log index {event['logindex']}")
                self.handle(event)
                self.save()
                self.backoff = self.retry_after  # a working connection: back-off starts over
        raise Retry("the server closed the stream")

    def messages(self, answer: httpx.Response) -> Iterator[tuple[str, str]]:
        """(id, data) of each Server-Sent Event (the text/event-stream format)."""
        index, data = "", list[str]()
        for line in answer.iter_lines():
            if not line:  # a blank line ends a message
                if data:
                    yield index, "\n".join(data)
                data = []
                continue
            if line.startswith(":"):  # a comment: the server's heartbeat
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                index = value
            elif field == "data":
                data.append(value)
            elif field == "retry" and value.isdigit():
                self.retry_after = self.backoff = int(value) / 1000

    # -- errors: stop or retry ----------------------------------------------------------------

    def check(self, answer: httpx.Response) -> None:
        """Nothing for a 2xx; else `Stop` (4xx but 429) or `Retry`, with the problem's title and detail."""
        if answer.is_success:
            return
        answer.read()
        try:
            problem = answer.json()
        except ValueError:
            problem = {}
        title = problem.get("title") or answer.reason_phrase
        reason = f"{answer.url.copy_with(query=None)}: {answer.status_code} {title}"
        reason += f": {problem['detail']}" if problem.get("detail") else ""
        if answer.status_code < 500 and answer.status_code != 429:
            raise Stop(reason)
        raise Retry(reason, retry_after(answer.headers.get("Retry-After")))

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it succeeds or stops, waiting between tries; the back-off doubles to 60 s."""
        while True:
            try:
                done = attempt()
                self.backoff = self.retry_after
                return done
            except (Retry, httpx.TransportError) as failure:
                wait = failure.after if isinstance(failure, Retry) and failure.after is not None else None
                wait = self.backoff if wait is None else wait
                self.backoff = min(self.backoff * 2, MAX_BACKOFF)
                reason = str(failure) or type(failure).__name__
                typer.echo(f"dutyledger follow: {reason}; trying again in {wait:g} s", err=True)
                time.sleep(wait)


def web_address(value: str, name: str) -> None:
    """Refuse at once (exit 2) an address no retry can reach: not http(s), or without a host."""
    problem = not_http(value)
    if problem is not None:
        raise typer.BadParameter(f"{value!r} is {problem}", param_hint=name)


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def follow(
    url: str = typer.Argument(..., help="The ledger's base URL, e.g. https://ledger.example.cn"),
    key: str = typer.Option(
        ..., "--key", envvar="DUTYLEDGER_FOLLOW_KEY", help="An integrator's (or administrator's) API key."
    ),
    checkpoint: Path = typer.Option(
        Path("dutyledger-follow.json"), "--checkpoint", help="Where the position is kept between runs."
    ),
    forward: str | None = typer.Option(
        None, "--forward", help="POST each event here (application/cloudevents+json) instead of printing it."
    ),
    types: list[str] = typer.Option([], "--type", help="Only these event types, `*` allowed (repeatable)."),
    units: list[str] = typer.Option([], "--unit", help="Only events of these units and below (repeatable)."),
    gaps_allowed: bool = typer.Option(
        False, "--gaps-allowed", help="The key itself is limited to some types or units: indexes skip."
    ),
    once: bool = typer.Option(False, "--once", help="Stop once caught up instead of following live."),
) -> None:
    """Print or forward every event of the log in order, resuming after the checkpoint (at-least-once)."""
    web_address(url, "URL")
    if forward is not None:
        web_address(forward, "--forward")
    try:
        follower = Follower(url, key, checkpoint, forward, types, units, gaps_allowed)
        follower.catch_up()
        typer.echo(f"dutyledger follow: caught up at log index {follower.position}", err=True)
        if not once:
            follower.follow()
    except Stop as error:
        typer.echo(f"dutyledger: error: {error}", err=True)
        sys.exit(1)
