"""The real stack for end-to-end tests: the launcher (embedded Temporal + PostgreSQL, worker, API) and a fake
SMS provider that is a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from stack.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    at: float
    path: str
    auth: tuple[str, str] | None
    content_type: str
    body: dict[str, Any]

    @property
    def to(self) -> str:
        return str(self.body.get("to") or self.body.get("To", "")).lstrip("+")

    @property
    def text(self) -> str:
        return str(self.body.get("body") or self.body.get("Body", ""))


@dataclass
class FakeProvider:
    """Answers like Flowroute (`POST /v2.1/messages` → 202 with `data.id`) or Twilio (`…/Messages.json` → 201)."""

    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    """Status codes to answer before going back to success, one per request."""
    rate_limit_per_number: float | None = None
    refused_429: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        fake = self
        last_by_number: dict[str, list[float]] = {}

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the real providers' APIs: a connection per message would make the fake, not
            # the service, what a burst measures. Without TCP_NODELAY each answer's body waited for the
            # client's delayed ACK of its headers.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type:
                    body = json.loads(raw)
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                auth = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    auth = (user, password)
                now = time.time()
                with fake.lock:
                    status = fake.script.pop(0) if fake.script else None
                    sender = str(body.get("from") or body.get("From", ""))
                    if status is None and fake.rate_limit_per_number:
                        window = [t for t in last_by_number.get(sender, []) if now - t < 1.0]
                        if len(window) >= fake.rate_limit_per_number:
                            status = 429
                            fake.refused_429 += 1
                        else:
                            last_by_number[sender] = [*window, now]
                    if status is None:
                        fake.received.append(Received(now, self.path, auth, content_type, body))
                        number = len(fake.received)
                if status is not None:
                    self._answer(status, {"errors": [{"detail": "scripted failure"}]})
                elif self.path.endswith("Messages.json"):
                    self._answer(201, {"sid": f"SM{number:032d}"})
                else:
                    self._answer(202, {"data": {"id": f"mdr2-{number:032x}"}})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2.1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def to(self, number: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.to == number]

    def wait_for(self, number: str, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.to(number)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{number} got {len(got)} messages, expected {count}: {got}")
            time.sleep(0.05)


def flowroute_env(fake: FakeProvider, **extra: str) -> dict[str, str]:
    """Settings that send through Flowroute played by `fake`."""
    return {
        "SMS_PROVIDER": "flowroute",
        "FLOWROUTE_API_URL": fake.url,
        "FLOWROUTE_ACCESS_KEY": "access-key",
        "FLOWROUTE_SECRET_KEY": "secret-key",
        "FLOWROUTE_NUMBER": "18005550100",
        **extra,
    }


def new_number() -> str:
    return "1" + "".join(random.choice("0123456789") for _ in range(10))


class Stack:
    """`python -m stack.launcher` in a temporary data folder, on free ports."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLOWROUTE_", "TWILIO_", "SMS_"))},
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.env.pop("TEMPORAL_ADDRESS", None)
        self.env.pop("DATABASE_URL", None)
        self._pick_ports()
        self.proc: subprocess.Popen[bytes] | None = None

    def _pick_ports(self) -> None:
        self.api_port = free_port()
        self.env.update(
            API_PORT=str(self.api_port), TEMPORAL_DEV_PORT=str(free_port()), TEMPORAL_UI_PORT=str(free_port())
        )
        if "METRICS_PORT" in self.env:
            self.env["METRICS_PORT"] = str(free_port())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 90, attempts: int = 3) -> None:
        """Starts the launcher; a port taken between picking it and binding it (another process's
        ephemeral port) means new ports and another try, not a failed test."""
        for attempt in range(attempts):
            logs = [self.data_dir / n for n in ("launcher.log", "temporal.log", "api.log", "worker.log")]
            sizes = {p: p.stat().st_size if p.exists() else 0 for p in logs}
            try:
                self._launch(timeout)
                return
            except RuntimeError:
                new = "".join(p.read_bytes()[sizes[p] :].decode(errors="replace") for p in logs if p.exists())
                collided = "address already in use" in new.lower() or "is taken" in new
                if not collided or attempt == attempts - 1:
                    raise
                self._pick_ports()

    def _launch(self, timeout: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "run.json").unlink(missing_ok=True)
        log = open(self.data_dir / "launcher.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stack.launcher"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not (self.data_dir / "run.json").exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"launcher exited {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"stack not ready in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, name: str = "launcher.log") -> str:
        path = self.data_dir / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def run_info(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "run.json").read_text())

    def wait_for_pid_change(self, child: str, old_pid: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = int(self.run_info()["pids"][child])
                if pid != old_pid and (self.data_dir / "worker.ready").exists():
                    return pid
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{child} was not started again")

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15, **kwargs)


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
