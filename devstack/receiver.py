"""A receiver of events for the tests and the bench: a real HTTP server on loopback that keeps every POST
(headers and body) and can be taken down (answering 503) for a while, as a clinic's system might be."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: str
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class EventReceiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.refused = 0
        self._down_until = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    down = time.monotonic() < receiver._down_until
                    if down:
                        receiver.refused += 1
                    else:
                        receiver.deliveries.append(
                            Delivery({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                        )
                self.send_response(503 if down else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def down_for(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def events_of(self, reminder_id: str) -> list[Delivery]:
        with self._lock:
            found = list(self.deliveries)
        return [d for d in found if (d.event.get("data") or {}).get("reminder_id") == reminder_id]
