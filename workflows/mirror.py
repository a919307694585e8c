"""The mirror protocol, in one place: every state the PostgreSQL row or the search attributes show carries a
sequence number taken from the workflow's state, so whichever write lands last, the newest state wins.
Deterministic; runs inside the workflow."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

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


class Mirror:
    """The reminder's state and where it shows: the search attributes (upserted only when they change, each
    upsert being a visibility write on the server) and the PostgreSQL row (written in the background)."""

    def __init__(self, state: ReminderState, notify_index: int, shown: bool) -> None:
        self.state = state
        self._writes: list[asyncio.Task[None]] = []
        # The API sets the search attributes at start; a continued run sets them once again.
        self._shown: tuple[object, ...] | None = self._values(notify_index) if shown else None

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
        """Upserts the search attributes that changed since the last upsert (all of them in a run that
        has not set any): an answer changes the status alone."""
        values = self._values(notify_index)
        shown = self._shown
        if values == shown:
            return
        self._shown = values
        status, notify, appointment, contact = values
        updates: list[SearchAttributeUpdate[Any]] = [
            REMINDER_STATUS.value_set(status),
            NOTIFY_TIME.value_set(notify),
            APPOINTMENT_TIME.value_set(appointment),
            CONTACT_NUMBER.value_set(contact),
        ]
        workflow.upsert_search_attributes(
            [u for i, u in enumerate(updates) if shown is None or shown[i] != values[i]]
        )

    def _values(self, notify_index: int) -> tuple[str, datetime, datetime, str]:
        state = self.state
        pending = state.notify_times[notify_index:]
        notify = pending[0] if pending else state.notify_times[-1]
        return (state.status.value, notify, state.appointment, state.contact_search or state.contact_number)
