"""The delivery worker: a tracked follower of the public log that posts each event to each endpoint.

One scheduler thread looks for endpoints with events to deliver (woken by the sequencer after
each batch, else every `poll` seconds or when the soonest back-off ends), leases each, and
hands it to a pool thread. A pool thread delivers that endpoint's events one at a time, in log
order, and records each 2xx with the endpoint's new position in one transaction. A failure
(non-2xx, timeout, refused connection) is recorded too, and the endpoint waits
`base * 2**(attempts-1)` seconds (a day at most) before the same event is tried again.

Each endpoint has its own pool thread while it is served, so a slow or dead receiver delays
only itself; the ledger never waits for any of this. Several workers (server processes, or
`dutyledger webhooks run`) may run at once: the lease makes one of them deliver to an endpoint.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from api.access import feed_filter_now, working_key
from api.feed.envelope import EVENT_MEDIA, Envelopes, Sequenced, event_id
from api.feed.log import FeedFilter, PublicLog
from api.keys import KeyStore
from api.settings import Settings
from api.webhooks import signing
from api.webhooks.addresses import PublicOnlyTransport
from api.webhooks.sealing import SealBroken
from api.webhooks.store import Delivery, Endpoint, WebhookStore

log = logging.getLogger(__name__)

MAX_WAIT = timedelta(days=1)
"""The longest back-off between two attempts at one event."""
PAGE = 100
"""Events read from the log at once for one endpoint."""
TURN = 500
"""Events delivered to one endpoint before its lease is given up for others' turn."""
ERROR_TEXT = 500
"""Characters of a receiver's refusal kept in the delivery log."""
USER_AGENT = "dutyledger-webhooks/0.1"


def backoff(base: float, attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt at an event."""
    seconds = base * 2 ** min(attempts - 1, 40)
    return min(timedelta(seconds=seconds), MAX_WAIT)


class Worker:
    """Delivers the public log to every webhook endpoint, from a scheduler thread and a pool."""

    def __init__(
        self,
        store: WebhookStore,
        public_log: PublicLog,
        envelopes: Envelopes,
        keys: KeyStore,
        *,
        timeout: float,
        retry_base: float,
        threads: int = 16,
        poll: float = 1.0,
        private_networks: bool = False,
    ) -> None:
        """`private_networks`: deliver to receivers on non-public addresses too (`webhooks.addresses`)."""
        self.store = store
        self.log = public_log
        self.envelopes = envelopes
        self.keys = keys
        self.timeout = timeout
        self.retry_base = retry_base
        self.threads = threads
        self.poll = poll
        self.private_networks = private_networks
        self.lease = timedelta(seconds=max(60.0, 4 * timeout))
        """How long a lease lasts; each delivery renews it."""
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._lock = threading.Lock()
        self._serving: set[str] = set()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="dutyledger-webhook")
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._thread: threading.Thread | None = None

    @classmethod
    def configured(
        cls,
        settings: Settings,
        store: WebhookStore,
        public_log: PublicLog,
        envelopes: Envelopes,
        keys: KeyStore,
        *,
        threads: int = 16,
        poll: float = 1.0,
    ) -> Worker:
        """A worker with the timeout and back-off the settings give."""
        return cls(
            store,
            public_log,
            envelopes,
            keys,
            timeout=settings.webhook_timeout_seconds,
            retry_base=settings.webhook_retry_base_seconds,
            threads=threads,
            poll=poll,
            private_networks=settings.webhook_private_networks,
        )

    def start(self) -> Worker:
        """Deliver in a background thread until `stop`."""
        self._thread = threading.Thread(target=self.run, name="dutyledger-webhooks", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """The log moved, or an endpoint is to be tried now: look at once (callable from any thread)."""
        self._wakeup.set()

    def run(self) -> None:
        """Schedule deliveries in this thread until `stop`."""
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                wait = self.tick()
            except Exception:
                log.exception("the webhook worker could not look for deliveries; trying again")
                wait = self.poll
            self._wakeup.wait(wait)

    def stop(self) -> None:
        """Stop scheduling, let deliveries under way finish (each within the timeout), close."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
            unserved, self._serving = self._serving, set()
        for endpoint_id in unserved:  # leased, but never started: free it for other workers now
            try:
                self.store.release(endpoint_id, self.name)
            except Exception:  # its lease runs out by itself
                log.exception("could not release webhook endpoint %s", endpoint_id)
        for client in clients:
            client.close()

    def tick(self) -> float:
        """Lease and start every endpoint that is due; the seconds until it is worth looking again."""
        if not self.log.reader.built():
            return self.poll
        now = datetime.now(UTC)
        with self._lock:
            free = self.threads - len(self._serving)
        if free > 0:
            for endpoint_id in self.store.due(self.log.length(), now, free):
                with self._lock:
                    if endpoint_id in self._serving:
                        continue
                if not self.store.lease(endpoint_id, self.name, now + self.lease, now):
                    continue  # another worker took it first
                with self._lock:
                    self._serving.add(endpoint_id)
                self._pool.submit(self._serve, endpoint_id)
        soonest = self.store.next_attempt()
        wait = (soonest - datetime.now(UTC)).total_seconds() if soonest is not None else self.poll
        # Due already, yet not leased: no thread was free, or another worker serves it. A thread
        # that comes free wakes the scheduler; meanwhile look again at the usual pace.
        return min(self.poll, wait + 0.001) if wait > 0 else self.poll

    def _serve(self, endpoint_id: str) -> None:
        """Deliver to one leased endpoint until it has caught up, fails, or its turn ends."""
        done = False
        try:
            self._deliver_all(endpoint_id)
            done = True
        except Exception:  # the store or the log failed, not the receiver: try again at the next poll
            log.exception("delivering to webhook endpoint %s failed; it will be tried again", endpoint_id)
        finally:
            try:
                self.store.release(endpoint_id, self.name)
            except Exception:  # its lease runs out by itself
                log.exception("could not release webhook endpoint %s", endpoint_id)
            with self._lock:
                self._serving.discard(endpoint_id)
            if done:
                self._wakeup.set()  # events may have come meanwhile

    def _deliver_all(self, endpoint_id: str) -> None:
        done = 0
        while done < TURN and not self._stop.is_set():
            endpoint = self.store.get(endpoint_id)
            if endpoint is None or endpoint.lease_owner != self.name or endpoint.disabled_at is not None:
                return
            chosen = self._filter(endpoint)
            page = self.log.page(endpoint.position, PAGE, chosen) if chosen is not None else None
            # Asked again once the page is read: a key that stopped working meanwhile (its
            # administrator stripped of the role by an event in this very page) gets none of it.
            if page is None or (
                page.events and working_key(self.keys, self.log.ledger, endpoint.owner_key_id) is None
            ):
                self.store.disable(endpoint_id)
                log.warning("webhook endpoint %s disabled: the key that owns it no longer works", endpoint_id)
                return
            attempt = endpoint.attempts + 1
            for event in page.events:
                if self._stop.is_set() or not self._deliver(endpoint, event, attempt):
                    return
                attempt, done = 1, done + 1
            last = page.events[-1].index if page.events else endpoint.position
            if page.next > last:  # the filter let nothing more through up to page.next
                if not self.store.passed(endpoint_id, self.name, page.next, datetime.now(UTC) + self.lease):
                    return
            elif not page.events:
                return  # caught up

    def _filter(self, endpoint: Endpoint) -> FeedFilter | None:
        """The endpoint's filter narrowed by its owner key's, now; None if the key no longer works."""
        key = feed_filter_now(self.keys, self.log.ledger, endpoint.owner_key_id)
        return None if key is None else endpoint.filter().narrowed(key)

    def _deliver(self, endpoint: Endpoint, event: Sequenced, attempt: int) -> bool:
        """Post one event; record the attempt. Whether to go on with the next event."""
        body = self.envelopes.encode(event)
        msg_id = event_id(event.row[1], event.row[2])
        now = datetime.now(UTC)
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            live = self.store.live_secrets(endpoint, now)
            signed = signing.headers(live, msg_id, int(now.timestamp()), body)
            headers = {**signed, "content-type": EVENT_MEDIA}
            with self._client().stream("POST", endpoint.url, content=body, headers=headers) as answer:
                status = answer.status_code
                if not 200 <= status < 300:
                    said = _head(answer)
                    error = f"HTTP {status}" + (f": {said}" if said else "")
        except SealBroken as broken:  # unsigned, a receiver should refuse it: better not sent at all
            error = f"not sent: {broken}"[:ERROR_TEXT]
            log.error(
                "webhook %s to %s not sent: %s (key file %s)",
                msg_id,
                endpoint.url,
                broken,
                self.store.sealer.where,
            )
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"[:ERROR_TEXT]
        delivery = Delivery(
            endpoint_id=endpoint.endpoint_id,
            seq=0,
            log_index=event.index,
            webhook_id=msg_id,
            attempt=attempt,
            attempted_at=now,
            status=status,
            error=error,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        if delivery.succeeded:
            return self.store.delivered(delivery, self.name, datetime.now(UTC) + self.lease)
        wait = backoff(self.retry_base, attempt)
        self.store.failed(delivery, self.name, datetime.now(UTC) + wait)
        log.info(
            "webhook %s to %s: attempt %d failed (%s); next in %s", msg_id, endpoint.url, attempt, error, wait
        )
        return False

    def _client(self) -> httpx.Client:
        """This pool thread's HTTP client (a client is not shared between threads)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=self.timeout,
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
                transport=None if self.private_networks else PublicOnlyTransport(),
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client


def _head(answer: httpx.Response) -> str:
    """The start of a receiver's answer, read no further than needed."""
    read = b""
    for chunk in answer.iter_bytes():
        read += chunk
        if len(read) >= ERROR_TEXT:
            break
    return read[:ERROR_TEXT].decode(errors="replace").strip()
