"""`make run`: the whole service in the foreground, in order, each part waited for.

Temporal dev server (unless TEMPORAL_ADDRESS) → PostgreSQL (unless DATABASE_URL) → migrations → worker →
API. A worker or API that dies is started again. Ctrl-C or SIGTERM stops the API and worker first, then
the servers, so nothing is left retrying against a dead server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.embedded import EmbeddedPostgres, TemporalDevServer, port_open, spawn, stop_process
from settings import Settings, get_settings
from stack.logs import setup_logging

log = logging.getLogger("reminders.launcher")

RUN_FILE = "run.json"
RESTART_DELAY = 1.0
# A part that dies this many times within the window is broken, not unlucky: the launcher gives up.
RESTART_LIMIT = 5
RESTART_WINDOW = 60.0


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_file: Path
    ready_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    deaths: list[float] = field(default_factory=list)

    def start(self) -> None:
        if self.ready_file is not None:
            self.ready_file.unlink(missing_ok=True)
        self.proc = spawn(self.args, self.log_file, self.env, echo=f"[{self.name}]")
        log.info("%s started (pid %s)", self.name, self.proc.pid)

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.temporal: TemporalDevServer | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self.env = dict(os.environ)

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The embedded PostgreSQL wheel keeps a lock in the runtime folder; keep it inside the project's data.
        self.env.setdefault("XDG_RUNTIME_DIR", str(self.data_dir / "run"))
        Path(self.env["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
        settings = self.settings
        if settings.temporal_address:
            self.env["TEMPORAL_ADDRESS"] = settings.temporal_address
        else:
            self.temporal = TemporalDevServer(
                self.data_dir,
                port=settings.temporal_dev_port,
                ui_port=settings.temporal_ui_port,
                namespace=settings.temporal_namespace,
                synchronous=settings.temporal_sqlite_synchronous,
                cache_size=settings.temporal_dev_cache_size,
            )
            await asyncio.to_thread(self.temporal.start)
            self.env["TEMPORAL_ADDRESS"] = self.temporal.address
            log.info(
                "temporal dev server on %s, web UI on http://127.0.0.1:%s",
                self.temporal.address,
                settings.temporal_ui_port,
            )
        if settings.database_url:
            self.env["DATABASE_URL"] = settings.database_url
        else:
            self.postgres = EmbeddedPostgres(self.data_dir / "pg")
            self.env["DATABASE_URL"] = await asyncio.to_thread(self.postgres.start)
            log.info("PostgreSQL on %s", self.env["DATABASE_URL"])
        await self._prepare()
        python = sys.executable
        worker = Child(
            "worker",
            [python, "-m", "worker"],
            {**self.env, "WORKER_READY_FILE": str(self.data_dir / "worker.ready")},
            self.data_dir / "worker.log",
            ready_file=self.data_dir / "worker.ready",
        )
        api = Child(
            "api",
            [
                python,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:serve",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
                "--timeout-graceful-shutdown",
                "5",
                "--no-access-log",
            ],
            self.env,
            self.data_dir / "api.log",
        )
        if port_open(settings.api_port, settings.api_host):
            raise RuntimeError(f"port {settings.api_port} is taken: set API_PORT to a free port")
        self.children = [worker, api]
        worker.start()
        await self._wait_for_worker(worker)
        api.start()
        await self._wait_for_api(api)
        self._write_run_file()

    async def _prepare(self) -> None:
        """Waits for Temporal to answer and applies the migrations, in a process of its own: the Temporal
        client and asyncpg never load into the launcher, which then only supervises."""
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "stack.prepare"],
            env=self.env,
            capture_output=True,
            text=True,
        )
        for line in (done.stdout + done.stderr).splitlines():
            print(f"[prepare] {line}", file=sys.stderr, flush=True)
        if done.returncode != 0:
            raise RuntimeError("Temporal or PostgreSQL was not ready; see the [prepare] lines above")

    async def _wait_for_worker(self, worker: Child, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        assert worker.ready_file is not None
        while not worker.ready_file.exists():
            if worker.exited():
                raise RuntimeError(f"the worker exited at start; see {worker.log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready within {timeout:.0f} s; see {worker.log_file}")
            await asyncio.sleep(0.1)

    async def _wait_for_api(self, api: Child, timeout: float = 60) -> None:
        url = f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"
        deadline = time.monotonic() + timeout
        while True:
            if api.exited():
                raise RuntimeError(f"the API exited at start; see {api.log_file}")
            if await asyncio.to_thread(_answers_ok, url):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready within {timeout:.0f} s; see {api.log_file}")
            await asyncio.sleep(0.2)

    def _write_run_file(self) -> None:
        info = {
            "launcher": os.getpid(),
            "api": f"http://{self.settings.api_host}:{self.settings.api_port}",
            "temporal": self.env["TEMPORAL_ADDRESS"],
            "temporal_ui": f"http://127.0.0.1:{self.settings.temporal_ui_port}" if self.temporal else None,
            "database_url": self.env["DATABASE_URL"],
            "pids": {c.name: c.proc.pid for c in self.children if c.proc},
            "temporal_pid": self.temporal.proc.pid if self.temporal and self.temporal.proc else None,
        }
        tmp = self.data_dir / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(self.data_dir / RUN_FILE)

    async def supervise(self) -> None:
        """Starts again whatever part dies, until asked to stop."""
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=0.5)
                return
            except TimeoutError:
                pass
            if self.temporal is not None and not self.temporal.alive():
                log.warning("temporal dev server died; starting it again")
                await asyncio.to_thread(self.temporal.start)
                self._write_run_file()
            if self.postgres is not None and not self.postgres.alive():
                log.warning("PostgreSQL is down; starting it again")
                try:
                    await asyncio.to_thread(self.postgres.start)
                except RuntimeError as err:
                    log.error("PostgreSQL did not come back: %s", err)
            for child in self.children:
                if not child.exited():
                    continue
                assert child.proc is not None
                now = time.monotonic()
                child.deaths = [t for t in child.deaths if now - t < RESTART_WINDOW] + [now]
                log.warning("%s exited with %s", child.name, child.proc.returncode)
                if len(child.deaths) >= RESTART_LIMIT:
                    raise RuntimeError(f"{child.name} keeps dying; see {child.log_file}")
                await asyncio.sleep(RESTART_DELAY)
                child.start()
                self._write_run_file()

    async def stop(self) -> None:
        (self.data_dir / RUN_FILE).unlink(missing_ok=True)
        # The API first (no new work), then the worker, then the servers under them.
        for child in reversed(self.children):
            if child.proc is not None:
                await asyncio.to_thread(stop_process, child.proc, child.name, 20)
                log.info("%s stopped", child.name)
        if self.temporal is not None:
            await asyncio.to_thread(self.temporal.stop)
            log.info("temporal dev server stopped")
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
            log.info("PostgreSQL stopped")


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - our own API, http only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def run(settings: Settings) -> int:
    launcher = Launcher(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, launcher.stopping.set)
    code = 0
    try:
        start = asyncio.create_task(launcher.start())
        stop_wait = asyncio.create_task(launcher.stopping.wait())
        done, _ = await asyncio.wait({start, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if start in done:
            start.result()
            stop_wait.cancel()
            print(
                f"\nReminder service ready: API http://{settings.api_host}:{settings.api_port}"
                f" (docs at /docs)"
                + (f", Temporal UI http://127.0.0.1:{settings.temporal_ui_port}" if launcher.temporal else "")
                + ". Ctrl-C stops it.\n",
                flush=True,
            )
            await launcher.supervise()
        else:
            start.cancel()
    except Exception as err:  # noqa: BLE001 - report, then stop whatever did start
        log.error("%s", err)
        code = 1
    finally:
        await launcher.stop()
    return code


def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
