"""The mirror protocol, in one place: every state the PostgreSQL row or the search attributes show carries a
sequence number taken from the workflow's state, so whichever write lands last, the newest state wins.
Deterministic; runs inside the workflow."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from workflows.activities import write_mirror
    from workflows.models import ReminderState
    from workflows.search import APPOINTMENT_TIME, CONTACT_NUMBER, NOTIFY_TIME, REMINDER_STATUS


def copied(state: ReminderState, **changes: object) -> ReminderState:
    """A copy of the state (its lists too) with `changes`, to hand to an activity."""
    return dataclasses.replace(
        state,
        notify_times=list(state.notify_times),
        notify_windows=list(state.notify_windows),
        **changes,  # type: ignore[arg-type]
    )


# The order of `Mirror._values`.
_SHOWN: tuple[SearchAttributeKey[Any], ...] = (REMINDER_STATUS, NOTIFY_TIME, APPOINTMENT_TIME, CONTACT_NUMBER)


class Mirror:
    """The reminder's state and where it shows: the search attributes (upserted only when they change, each
    upsert being a visibility write on the server) and the PostgreSQL row (written in the background)."""

    def __init__(self, state: ReminderState) -> None:
        self.state = state
        self._writes: list[asyncio.Task[None]] = []
        # What the run started with: the API sets all four, a continued run carries the last ones over, and
        # a reminder started some other way (an operator's CLI) may have none, so its first task sets them.
        started = workflow.info().typed_search_attributes
        self._shown: tuple[object, ...] = tuple(started.get(key) for key in _SHOWN)

    def next(self, **changes: object) -> ReminderState:
        """The state with `changes`, under a sequence number of its own, for an activity to write."""
        self.state.seq += 1
        return copied(self.state, **changes)

    def adopt(self, written: ReminderState, notify_index: int) -> None:
        """Takes the state an activity already wrote to the mirror; only the search attributes follow."""
        self.state = written
        self.show(notify_index)

    def publish(self, notify_index: int) -> None:
        """Makes the current state visible: search attributes now, the mirror in the background."""
        snapshot = self.next()
        self.show(notify_index)
        self._writes = [t for t in self._writes if not t.done()]
        self._writes.append(write_mirror(snapshot))

    async def written(self) -> None:
        await asyncio.gather(*self._writes)

    def show(self, notify_index: int) -> None:
        """Upserts the search attributes that differ from those last set: an answer changes the status
        alone."""
        values = self._values(notify_index)
        shown = self._shown
        if values == shown:
            return
        self._shown = values
        updates: list[SearchAttributeUpdate[Any]] = [
            key.value_set(value)
            for key, value, before in zip(_SHOWN, values, shown, strict=True)
            if value != before
        ]
        workflow.upsert_search_attributes(updates)

    def _values(self, notify_index: int) -> tuple[str, datetime, datetime, str]:
        state = self.state
        pending = state.notify_times[notify_index:]
        notify = pending[0] if pending else state.notify_times[-1]
        return (state.status.value, notify, state.appointment, state.contact_search or state.contact_number)
