"""Fake Flowroute and Twilio: real HTTP servers on loopback that behave as the providers document, for the
tests, `make bench` and `make faults` alike.

- Flowroute (`/v2.1/messages`): POST takes a JSON:API body and answers 202 with `data.id` (`mdr2-…`);
  GET lists what was sent by `start_date`/`end_date` (to the second), paged by `limit`/`offset`; a
  `dlr_callback` in the send gets a delivery receipt POSTed to it; `account_rate` refuses attempts past
  that many a second across all the account's numbers with 429 (a refused attempt still counts).
- Twilio (`/2010-04-01/Accounts/<sid>/Messages.json`): POST takes a form and answers 201 with `sid`
  (`SM…`), queueing each number's messages at `number_rate` segments a second rather than refusing; GET
  lists by `To` and `From`, newest first, paged (`PageSize`, `next_page_uri`); a `StatusCallback` gets a
  signed status POST.
- Like the real thing over a network: `latency` seconds before each answer; `drop_after_accept` sends
  taken and then the connection closed without an answer; `error_after_accept` taken and answered 500;
  `script` status codes answered before anything is taken.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

TWILIO_SID = "AC00000000000000000000000000000000"
GSM_SEGMENT, UCS2_SEGMENT = 153, 67


def segments_of(body: str) -> int:
    """A rough segment count for the fake's queue: GSM-7 when all characters are ASCII, else UCS-2."""
    single, multi = (160, GSM_SEGMENT) if body.isascii() else (70, UCS2_SEGMENT)
    return 1 if len(body) <= single else -(-len(body) // multi)


class _Server(ThreadingHTTPServer):
    # A provider takes many connections at once. The stdlib's listen backlog of 5 drops connections opened
    # together (a burst's sends, 16 of them), and each costs the sender a one-second SYN retransmit:
    # lateness that would belong to the fake, not to the service.
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender killed or timed out while its answer is on the way has closed the connection; a provider
        # carries on, and so does the fake, without a traceback per connection (a worker killed mid-burst
        # left one for each send in flight).
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class Received:
    """A message the provider took."""

    at: float
    path: str
    auth: tuple[str, str] | None
    content_type: str
    body: dict[str, Any]
    id: str = ""
    dispatched_at: float = 0.0
    """When it left for the handset: `at` for Flowroute, its place in the number's queue for Twilio."""

    @property
    def to(self) -> str:
        return str(self.body.get("to") or self.body.get("To", "")).lstrip("+")

    @property
    def sender(self) -> str:
        return str(self.body.get("from") or self.body.get("From", "")).lstrip("+")

    @property
    def text(self) -> str:
        return str(self.body.get("body") or self.body.get("Body", ""))


@dataclass
class FakeProvider:
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    """Status codes to answer before going back to success, one per send; nothing is taken for them."""
    latency: float = 0.0
    latency_by_prefix: dict[str, float] = field(default_factory=dict)
    """A different `latency` for the numbers starting with a prefix (two bursts due close together, one of
    them to a provider across a slow network)."""
    drop_after_accept: int = 0
    """The next this many sends are taken, then their connection is closed with no answer."""
    error_after_accept: int = 0
    """The next this many sends are taken, then answered 500."""
    account_rate: float | None = None
    rate_limit_per_number: float | None = None
    number_rate: float | None = None
    """Twilio: segments a second each number's queue sends at."""
    callback_delay: float = 0.2
    receipts: bool = True
    """Whether a send's callback URL gets its delivery receipt."""
    twilio_token: str = ""
    attempts: int = 0
    refused_429: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _attempt_times: list[float] = field(default_factory=list)
    _by_number: dict[str, list[float]] = field(default_factory=dict)
    _queue_free: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real providers' APIs; without TCP_NODELAY each answer's body waited for the
            # client's delayed ACK of its headers.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.endswith("Messages.json"):
                    self._answer(200, fake._twilio_list(url.path, query))
                else:
                    self._answer(200, fake._flowroute_list(query))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                content_type = self.headers.get("Content-Type", "")
                body = (
                    json.loads(raw)
                    if "json" in content_type
                    else {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                )
                auth = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    auth = (user, password)
                twilio = self.path.endswith("Messages.json")
                taken = Received(time.time(), self.path, auth, content_type, body)
                status, message, after = fake._take(taken, twilio)
                delay = fake.latency_for(taken.to)
                if delay:
                    time.sleep(delay)
                if after == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if status is not None:
                    self._answer(status, {"errors": [{"detail": "scripted failure"}], "code": status})
                elif twilio:
                    assert message is not None
                    self._answer(201, {"sid": message.id, "status": "queued"})
                else:
                    assert message is not None
                    self._answer(202, {"data": {"id": message.id}})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def latency_for(self, number: str) -> float:
        for prefix, latency in self.latency_by_prefix.items():
            if number.startswith(prefix):
                return latency
        return self.latency

    def _take(self, message: Received, twilio: bool) -> tuple[int | None, Received | None, str]:
        """Decides one send: a status to refuse it with, or the message taken (and what happens after)."""
        now = message.at
        with self.lock:
            self.attempts += 1
            if self.script:
                return self.script.pop(0), None, ""
            if self.account_rate:
                # Flowroute counts every attempt against the account, refused ones too.
                self._attempt_times = [t for t in self._attempt_times if now - t < 1.0]
                self._attempt_times.append(now)
                if len(self._attempt_times) > self.account_rate:
                    self.refused_429 += 1
                    return 429, None, ""
            if self.rate_limit_per_number:
                window = [t for t in self._by_number.get(message.sender, []) if now - t < 1.0]
                if len(window) >= self.rate_limit_per_number:
                    self.refused_429 += 1
                    return 429, None, ""
                self._by_number[message.sender] = [*window, now]
            number = len(self.received) + 1
            message.id = f"SM{number:032x}" if twilio else f"mdr2-{number:032x}"
            message.dispatched_at = now
            if twilio and self.number_rate:
                start = max(now, self._queue_free.get(message.sender, 0.0))
                message.dispatched_at = start
                self._queue_free[message.sender] = start + segments_of(message.text) / self.number_rate
            self.received.append(message)
            after = ""
            if self.drop_after_accept > 0:
                self.drop_after_accept -= 1
                after = "drop"
            elif self.error_after_accept > 0:
                self.error_after_accept -= 1
                return 500, message, "error"
        callback = message.body.get("dlr_callback") or message.body.get("StatusCallback")
        if callback and self.receipts:
            threading.Timer(self.callback_delay, self._post_receipt, (message, str(callback))).start()
        return None, message, after

    def _post_receipt(self, message: Received, url: str) -> None:
        try:
            if "StatusCallback" in message.body:
                form = {"MessageSid": message.id, "MessageStatus": "delivered", "AccountSid": TWILIO_SID}
                payload = url + "".join(f"{k}{form[k]}" for k in sorted(form))
                digest = hmac.new(self.twilio_token.encode(), payload.encode(), hashlib.sha1).digest()
                headers = {"X-Twilio-Signature": base64.b64encode(digest).decode()}
                httpx.post(url, data=form, headers=headers, timeout=5)
            else:
                attributes = {"status": "delivered", "status_code": "1000", "level": 2, "body": message.text}
                receipt = {"data": {"id": message.id, "type": "delivery_receipt", "attributes": attributes}}
                httpx.post(url, json=receipt, timeout=5)
        except httpx.HTTPError:
            pass  # as the providers do, a receipt that cannot be delivered is dropped

    def _flowroute_list(self, query: dict[str, str]) -> dict[str, Any]:
        start = _flowroute_time(query["start_date"])
        end = _flowroute_time(query["end_date"]) if "end_date" in query else float("inf")
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 250))
        with self.lock:
            # Its timestamps are to the second.
            found = [m for m in self.received if start <= int(m.at) <= end and "Messages.json" not in m.path]
        return {"data": [_mdr(m) for m in found[offset : offset + limit]]}

    def _twilio_list(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        to, sender = query.get("To", "").lstrip("+"), query.get("From", "").lstrip("+")
        size, page = int(query.get("PageSize", 50)), int(query.get("Page", 0))
        with self.lock:
            found = [
                m
                for m in reversed(self.received)
                if (not to or m.to == to) and (not sender or m.sender == sender)
            ]
        chunk = found[page * size : (page + 1) * size]
        more = (page + 1) * size < len(found)
        next_uri = f"{path}?{urlencode({**query, 'Page': page + 1})}" if more else None
        return {"messages": [_twilio_message(m) for m in chunk], "next_page_uri": next_uri}

    @property
    def url(self) -> str:
        """Flowroute's API base URL on this fake."""
        return f"http://127.0.0.1:{self.port}/v2.1"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2010-04-01"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def to(self, number: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.to == number]

    def wait_for(self, number: str, count: int, timeout: float = 15.0) -> list[Received]:
        return _wait(lambda: self.to(number), count, timeout, number)

    def texts_per_contact(self, match: Callable[[Received], bool] = lambda r: True) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for r in self.received:
                if match(r):
                    counts[r.to] = counts.get(r.to, 0) + 1
        return counts


def _wait(got: Callable[[], list[Received]], count: int, timeout: float, what: str) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        messages = got()
        if len(messages) >= count:
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} got {len(messages)} messages, expected {count}: {messages}")
        time.sleep(0.05)


def _flowroute_time(value: str) -> int:
    text = value.replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text) if "T" in text else datetime.fromisoformat(text + "T00:00:00+00:00")
    return int(parsed.replace(tzinfo=parsed.tzinfo or UTC).timestamp())


def _mdr(m: Received) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(int(m.at), UTC).strftime("%Y-%m-%dT%H:%M:%S.00Z")
    attributes = {"to": m.to, "from": m.sender, "body": m.text, "direction": "outbound", "timestamp": stamp}
    return {"id": m.id, "type": "message", "attributes": attributes}


def _twilio_message(m: Received) -> dict[str, Any]:
    created = format_datetime(datetime.fromtimestamp(m.at, UTC), usegmt=True)
    return {
        "sid": m.id,
        "to": f"+{m.to}",
        "from": f"+{m.sender}",
        "body": m.text,
        "direction": "outbound-api",
        "date_created": created,
        "status": "queued",
    }
