"""Stopping and starting the whole stack: a clean stop, and a power cut."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.harness import FakeProvider, Stack, flowroute_env, new_number
from tests.e2e.test_reminders_e2e import appointment_in, create, get, iso

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def postmaster_pid(stack: Stack) -> int:
    return int((stack.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])


@pytest.fixture
def own_stack(tmp_path: Path, fake: FakeProvider) -> Iterator[Stack]:
    s = Stack(
        tmp_path / "data",
        flowroute_env(fake, FLOWROUTE_NUMBER="18005550199"),
    )
    s.start()
    yield s
    s.stop()
    pid_file = s.data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():
        os.kill(postmaster_pid(s), signal.SIGTERM)


def test_clean_stop_leaves_nothing_and_restart_keeps_pending(own_stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        own_stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=15))),
        notify_window=1,
    )
    info = own_stack.run_info()
    pids = [*info["pids"].values(), info["temporal_pid"], postmaster_pid(own_stack), own_stack.proc.pid]
    own_stack.stop()
    assert own_stack.proc.returncode == 0
    time.sleep(0.5)
    assert [p for p in pids if alive(p)] == []
    own_stack.start()
    fake.wait_for(number, 1, timeout=30)
    time.sleep(2)
    assert len(fake.to(number)) == 1
    assert get(own_stack, reminder_id)["status"] == "awaiting_reply"


def test_power_cut_then_clean_start(own_stack: Stack, fake: FakeProvider):
    number = new_number()
    create(
        own_stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=12))),
        notify_window=1,
    )
    info = own_stack.run_info()
    victims = [own_stack.proc.pid, *info["pids"].values(), info["temporal_pid"], postmaster_pid(own_stack)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    own_stack.proc.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Stale pid files, a dead postmaster's lock and a SQLite write-ahead log are all left behind.
    assert (own_stack.data_dir / "pg" / "postmaster.pid").exists()
    own_stack.start()
    fake.wait_for(number, 1, timeout=30)
    time.sleep(2)
    assert len(fake.to(number)) == 1


def test_parts_that_die_are_started_again(own_stack: Stack, fake: FakeProvider):
    info = own_stack.run_info()
    os.kill(postmaster_pid(own_stack), signal.SIGKILL)
    os.kill(info["pids"]["api"], signal.SIGKILL)
    os.kill(info["temporal_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and not ready:
        try:
            with own_stack.client() as http:
                ready = http.get("/readyz").status_code == 200
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    assert ready, own_stack.log_tail()
    number = new_number()
    create(
        own_stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    fake.wait_for(number, 1, timeout=30)


def test_parts_write_their_own_logs_and_the_launcher_echoes_them(own_stack: Stack):
    """The worker and API write to their log files, never to a pipe the launcher must drain: a launcher
    paused with Ctrl-Z (or SIGSTOP) cannot freeze a worker in the middle of its sends. The launcher still
    shows their lines, prefixed, in its own output."""
    info = own_stack.run_info()
    for part in ("worker", "api"):
        target = os.readlink(f"/proc/{info['pids'][part]}/fd/1")
        assert target == str(own_stack.data_dir / f"{part}.log"), (part, target)
    deadline = time.monotonic() + 10
    while "[worker] " not in (own_stack.data_dir / "launcher.log").read_text(errors="replace"):
        assert time.monotonic() < deadline, "the launcher did not echo the worker's lines"
        time.sleep(0.2)
