"""Bench helpers around the machine: `--pin-server` (the server's threads on one CPU, every other process on
the rest, and all back on every CPU afterwards), and waiting for processes to go quiet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.system import quiet_window, server_on_own_core

CPUS = os.sched_getaffinity(0)
pytestmark = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to pin to")


class _Stack:
    """What `server_on_own_core` reads of a stack: its launcher process, run.json and data folder."""

    def __init__(self, launcher: subprocess.Popen[bytes], info: dict[str, Any], data_dir: Path) -> None:
        self.proc = launcher
        self._info = info
        self.data_dir = data_dir

    def run_info(self) -> dict[str, Any]:
        return self._info


def _sleeper() -> subprocess.Popen[bytes]:
    # A process with threads of its own, so every thread is seen to be set, not the main one alone.
    code = "import threading, time; [threading.Thread(target=time.sleep, args=(60,), daemon=True).start() for _ in range(3)]; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code])


def _threads_cpus(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir(f"/proc/{pid}/task")}


@pytest.fixture
def procs() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started = {name: _sleeper() for name in ("launcher", "temporal", "worker")}
    yield started
    for proc in started.values():
        proc.kill()
        proc.wait()


def test_the_server_alone_on_one_cpu_the_rest_elsewhere_then_all_back(
    procs: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    info = {"temporal_pid": procs["temporal"].pid, "pids": {"worker": procs["worker"].pid}}
    stack = _Stack(procs["launcher"], info, tmp_path)
    own, rest = {min(CPUS)}, CPUS - {min(CPUS)}
    with server_on_own_core(stack) as pinned:  # type: ignore[arg-type]
        assert pinned is not None
        assert pinned["server_cpus"] == sorted(own)
        assert _threads_cpus(procs["temporal"].pid) == {frozenset(own)}
        for name in ("launcher", "worker"):
            assert _threads_cpus(procs[name].pid) == {frozenset(rest)}
        assert _threads_cpus(os.getpid()) == {frozenset(rest)}
    for proc in procs.values():
        assert _threads_cpus(proc.pid) == {frozenset(CPUS)}
    assert _threads_cpus(os.getpid()) == {frozenset(CPUS)}


def test_nothing_is_pinned_without_a_server(
    procs: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    stack = _Stack(procs["launcher"], {"pids": {"worker": procs["worker"].pid}}, tmp_path)
    with server_on_own_core(stack) as pinned:  # type: ignore[arg-type]
        assert pinned is None
        assert _threads_cpus(procs["worker"].pid) == {frozenset(CPUS)}


async def test_quiet_once_a_window_passes_under_the_share() -> None:
    # CPU seconds read at each look: busy (0.5 s in a 0.01 s window), then idle.
    readings = iter([0.0, 0.5, 1.0, 1.0])
    waited, quiet = await quiet_window(lambda: next(readings), 0.05, 0.01, time.time() + 5)
    assert quiet
    assert waited < 5


async def test_not_quiet_when_busy_to_the_deadline() -> None:
    spent = [0.0]

    def busy() -> float:
        spent[0] += 1.0
        return spent[0]

    waited, quiet = await quiet_window(busy, 0.05, 0.01, time.time() + 0.1)
    assert not quiet
    assert waited >= 0.1
