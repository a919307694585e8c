"""The real stack for end-to-end tests: the launcher (embedded Temporal + PostgreSQL, worker, API) and a fake
SMS provider that is a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from devstack.embedded import free_port
from devstack.fakes import FakeProvider, Received

__all__ = [
    "FakeProvider",
    "Received",
    "Stack",
    "running_stack",
    "flowroute_env",
    "twilio_env",
    "new_number",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]


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


def twilio_env(fake: FakeProvider, **extra: str) -> dict[str, str]:
    """Settings that send through Twilio played by `fake`."""
    fake.twilio_token = fake.twilio_token or "twilio-test-token"
    return {
        "SMS_PROVIDER": "twilio",
        "TWILIO_API_URL": fake.twilio_url,
        "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
        "TWILIO_AUTH_TOKEN": fake.twilio_token,
        "TWILIO_NUMBER": "+18005550100",
        **extra,
    }


def new_number() -> str:
    return "1" + "".join(random.choice("0123456789") for _ in range(10))


class Stack:
    """`python -m devstack.launcher` in a temporary data folder, on free ports."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLOWROUTE_", "TWILIO_", "SMS_"))},
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "INFO",
            # Tests run at any hour: quiet hours only where a test sets them.
            "QUIET_HOURS": "off",
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
        if "PUBLIC_URL" in self.env:
            # Callbacks (delivery receipts) reach this stack's API, wherever its port landed.
            self.env["PUBLIC_URL"] = self.url

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
            [sys.executable, "-m", "devstack.launcher"],
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


def running_stack(data_dir: Path, env: dict[str, str]) -> Iterator[Stack]:
    """A started stack for a fixture to yield, stopped afterwards."""
    stack = Stack(data_dir, env)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
