"""The contract between the API, the workflows and the activities. Standard library only.

Inputs, states, signals, the activities' names with their argument and result types, ids and search
attributes: every layer imports this module, and workflows import nothing else of the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum

WORKFLOW_ID_PREFIX = "reminder-"
KEYWORD_WORKFLOW_ID_PREFIX = "keyword-"
OUTBOUND_WORKFLOW_ID_PREFIX = "outbound-"

# The steps a reminder's workflow takes, fixed at its start. Until the first release is tagged there is one
# version and a change of steps records the replay histories again; from then on a change of steps raises
# this number and the workflow keeps the older branch while reminders started on it can still be running
# (their appointment plus the notify window's longest, 8760 h).
WORKFLOW_VERSION = 1

# Search attributes: name and Temporal type. The embedded server, the compose file and the operator docs
# register exactly these; `workflows.search` turns them into typed keys.
SEARCH_ATTRIBUTE_TYPES = {
    "ContactNumber": "Keyword",
    "ReminderStatus": "Keyword",
    "AppointmentTime": "Datetime",
    "NotifyTime": "Datetime",
}

# Activity names; each takes and answers the dataclasses named beside it.
SEND_MESSAGE = "send_message"  # SendRequest -> SendResult
MIRROR_STATE = "mirror_state"  # ReminderState -> None
MARK_DELETED = "mark_deleted"  # str (reminder id) -> None
OPEN_REMINDERS = "open_reminders"  # str (contact number) -> OpenReminders


def workflow_id(reminder_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{reminder_id}"


class Status(str, Enum):
    SCHEDULED = "scheduled"
    AWAITING_REPLY = "awaiting_reply"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    NO_RESPONSE = "no_response"
    FAILED = "failed"
    OPTED_OUT = "opted_out"
    NOT_SENT = "not_sent"
    """Its only reminder could not go out: quiet hours lasted until the appointment (see `reason`)."""
    # Only in the mirror and the search attribute: the API answers 404 for it.
    DELETED = "deleted"


OPEN_STATUSES = (Status.SCHEDULED, Status.AWAITING_REPLY, Status.CONFIRMED, Status.DECLINED)
CLOSED_STATUSES = (Status.NO_RESPONSE, Status.FAILED, Status.OPTED_OUT, Status.NOT_SENT, Status.DELETED)


class Purpose(str, Enum):
    REMINDER = "reminder"
    CONFIRMATION = "confirmation"
    CANCELLATION = "cancellation"
    UNPARSABLE = "unparsable"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    STAFF_REPLY = "staff_reply"
    """A person's answer from the inbox: the text is theirs."""
    RESEND = "resend"
    """The reminder text sent again on purpose by staff: its own send key, never a duplicate."""


class Answer(str, Enum):
    """What a reply to a reminder says, read where it arrives (so a change of word lists never changes what
    a running workflow replays)."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


def notify_times(appointment: datetime, windows: list[int]) -> list[datetime]:
    """The notify-time rule: each window is whole hours before the appointment."""
    return sorted({appointment - timedelta(hours=h) for h in windows})


@dataclass
class ReminderInput:
    reminder_id: str
    contact_number: str
    appointment: datetime
    """The appointment, timezone-aware UTC."""
    appt_user_dt: str
    """The appointment's wall time where the client said it is, `YYYY-MM-DD HH:MM:SS`."""
    notify_windows: list[int]
    timezone: str | None = None
    location: str | None = None
    participant: str | None = None
    language: str | None = None
    carried: CarriedState | None = None
    """Set only when the workflow continues as new."""
    notify_at: list[datetime] = field(default_factory=list)
    """The notify times as the API settled them (quiet hours applied); empty means straight from the windows."""
    contact_search: str | None = None
    """The ContactNumber search attribute's value when it is not the number itself (encryption on)."""
    version: int = WORKFLOW_VERSION

    def notify_times(self) -> list[datetime]:
        if self.notify_at:
            return sorted(set(self.notify_at))
        return notify_times(self.appointment, self.notify_windows)


@dataclass
class ReminderState:
    """The workflow's view of one reminder: what the mirror row and the search attributes show."""

    reminder_id: str
    contact_number: str
    appointment: datetime
    appt_user_dt: str
    notify_times: list[datetime]
    timezone: str | None
    location: str | None
    participant: str | None
    language: str | None
    status: Status = Status.SCHEDULED
    reminder_sent: bool = False
    will_attend: bool | None = None
    confirm_sent: bool = False
    sent_at: datetime | None = None
    seq: int = 0
    """Every write of the state takes a higher one; the mirror keeps the highest."""
    notify_windows: list[int] = field(default_factory=list)
    contact_search: str | None = None
    generation: int = 0
    """Bumped by every reschedule."""
    reason: str | None = None
    """Why a reminder text did not go out when due (`quiet_hours`)."""
    wanted_send: str | None = None
    """The send key of the reminder text the workflow has armed, None when it wants none. An armed send
    compares its own key with the mirror's at its time: the one "still wanted" decision, made here."""


def initial_state(inp: ReminderInput) -> ReminderState:
    return ReminderState(
        reminder_id=inp.reminder_id,
        contact_number=inp.contact_number,
        appointment=inp.appointment,
        appt_user_dt=inp.appt_user_dt,
        notify_times=inp.notify_times(),
        timezone=inp.timezone,
        location=inp.location,
        participant=inp.participant,
        language=inp.language,
        notify_windows=list(inp.notify_windows),
        contact_search=inp.contact_search,
    )


def next_prompt(
    state: ReminderState, index: int, now: datetime, late_grace: timedelta
) -> tuple[int, datetime | None]:
    """The reminder's next prompt to send: its index and time, or None when none is due any more. Of several
    notify times already past only the latest is sent; an answer ends the prompts."""
    if state.will_attend is not None:
        return index, None
    times = state.notify_times
    while index + 1 < len(times) and times[index + 1] <= now:
        index += 1
    if index >= len(times):
        return index, None
    due = times[index]
    if now >= state.appointment + late_grace or (now >= state.appointment and due < state.appointment):
        return index, None
    return index, due


def reschedule_refusal(state: ReminderState, change: Reschedule, now: datetime) -> tuple[str, str] | None:
    """Why a reschedule is refused, as (error type, message), or None when it may go ahead."""
    if state.status in CLOSED_STATUSES or now >= state.appointment:
        return "ReminderClosed", f"the reminder is closed ({state.status.value})"
    if change.appointment <= now:
        return "InvalidChange", "appointment_time: is in the past"
    if not change.notify_at:
        return "InvalidChange", "notify_window: at least one notify time is needed"
    return None


def rescheduled(state: ReminderState, change: Reschedule) -> ReminderState:
    """The state after a reschedule: the new details, the answer reset, a new schedule generation."""
    return replace(
        state,
        appointment=change.appointment,
        appt_user_dt=change.appt_user_dt,
        timezone=change.timezone,
        location=change.location,
        participant=change.participant,
        language=change.language,
        notify_times=sorted(set(change.notify_at)),
        notify_windows=list(change.notify_windows),
        status=Status.SCHEDULED,
        reminder_sent=False,
        will_attend=None,
        confirm_sent=False,
        sent_at=None,
        wanted_send=None,
        generation=state.generation + 1,
    )


@dataclass
class CarriedState:
    state: ReminderState
    prompts_sent: int
    unparsable_answers: int
    seen_message_ids: list[str] = field(default_factory=list)


@dataclass
class Reschedule:
    """The reminder's new details, complete (the API merges a PATCH with what was there)."""

    appointment: datetime
    appt_user_dt: str
    notify_windows: list[int]
    notify_at: list[datetime]
    timezone: str | None
    location: str | None
    participant: str | None
    language: str | None


@dataclass
class Reply:
    message_id: str
    answer: Answer


@dataclass
class SendRequest:
    reminder_id: str | None
    contact_number: str
    purpose: Purpose
    key: str
    """Stays the same across retries of one send: the send is claimed and recorded under it exactly once."""
    appt_user_dt: str | None = None
    location: str | None = None
    participant: str | None = None
    language: str | None = None
    mirror: ReminderState | None = None
    """The reminder's state once this message is accepted, written to the mirror by the same activity."""
    mirror_before: ReminderState | None = None
    """The reminder's state while this message is on its way (armed, or an answer recorded and its reply
    not yet sent), written to the mirror when the activity starts."""
    not_before: datetime | None = None
    """An armed send: the activity holds until this instant, then checks it is still wanted and sends."""
    appointment: datetime | None = None
    timezone: str | None = None
    armed: bool = False
    """Sent only while the mirror's `wanted_send` is this request's key and the reminder is not deleted."""
    body: str | None = None
    """A text written by a person (a staff reply), sent as it is."""


@dataclass
class SendResult:
    delivered_to_provider: bool
    provider_id: str | None = None
    opted_out: bool = False
    withdrawn: bool = False
    """An armed send that found, at its time, that the reminder no longer wants it: nothing was sent."""
    quiet_until: datetime | None = None
    """Nothing was sent: it is quiet hours where the contact is, until then (before the appointment)."""
    quiet_past_appointment: bool = False
    """Nothing was sent: quiet hours last until after the appointment."""


@dataclass
class KeywordInput:
    contact_number: str
    keyword: str
    """One of `opt_out`, `opt_in`, `help`."""
    message_id: str
    answer: bool = True
    """Whether the contact gets the keyword's answer (a staff opt-out sends none)."""
    declines: str | None = None
    """A bare CANCEL: the reminder waiting for this contact's answer, marked declined as well."""


@dataclass
class OptOut:
    declines: bool = False
    """The opt-out was a bare CANCEL to this reminder: it is declined too, so the slot shows free."""


@dataclass
class OpenReminders:
    reminder_ids: list[str]


@dataclass
class OutboundInput:
    """One text a person asked for: a reply from the inbox, or a reminder sent again."""

    request: SendRequest
