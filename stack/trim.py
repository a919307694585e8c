"""Hands memory freed after a burst back to the system, so a process's size follows the work in hand.

A burst of texts or creates raises a process's heap; when it is over, most of that memory is free again but
glibc's allocator keeps it (only the top of the heap is returned by itself, and a few live blocks pin the
rest). `malloc_trim` gives back every free page. It runs once a minute, costs milliseconds, and does nothing
on a C library without it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger("reminders.memory")

TRIM_INTERVAL_S = 60.0


def malloc_trim() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trim_forever(stop: asyncio.Event, interval: float = TRIM_INTERVAL_S) -> None:
    trim = malloc_trim()
    if trim is None:
        log.info("malloc_trim is not available: freed memory stays with the process")
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            trim()
