"""What the API, the workflow and the activities say to each other. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

TASK_QUEUE = "reminders"
WORKFLOW_ID_PREFIX = "reminder-"
KEYWORD_WORKFLOW_ID_PREFIX = "keyword-"

# How a reminder's workflow runs, fixed for its whole life at start (so a release can change the steps
# of new reminders while those already running replay the steps they began with):
#   1 — the first releases: each answer mirrored by an activity of its own; later runs of version 1 also
#       carry `workflow.patched` markers for the changes made while it was current.
#   2 — sends armed ahead of their time (the activity is dispatched early and holds until the notify
#       time), one timer kept per wake-up, an answer recorded and confirmed by a single local activity,
#       search attributes upserted only when they change, no patch markers.
LEGACY_VERSION = 1
CURRENT_VERSION = 2


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
    # Only in the mirror and the search attribute: the API answers 404 for it.
    DELETED = "deleted"


OPEN_STATUSES = (Status.SCHEDULED, Status.AWAITING_REPLY, Status.CONFIRMED, Status.DECLINED)
CLOSED_STATUSES = (Status.NO_RESPONSE, Status.FAILED, Status.OPTED_OUT, Status.DELETED)


class Purpose(str, Enum):
    REMINDER = "reminder"
    CONFIRMATION = "confirmation"
    CANCELLATION = "cancellation"
    UNPARSABLE = "unparsable"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


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
    version: int = LEGACY_VERSION
    """Which steps the workflow takes (see CURRENT_VERSION); absent in reminders started before it existed."""

    def notify_times(self) -> list[datetime]:
        if self.notify_at:
            return sorted(set(self.notify_at))
        return sorted({self.appointment - timedelta(hours=h) for h in self.notify_windows})


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
    notify_windows: list[int] = field(default_factory=list)
    contact_search: str | None = None
    generation: int = 0
    """Bumped by every reschedule: a send armed for an earlier schedule finds it changed and stands down."""


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


@dataclass
class CarriedState:
    state: ReminderState
    prompts_sent: int
    unparsable_answers: int
    seen_message_ids: list[str] = field(default_factory=list)
    generation: int = 0


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
    body: str
    received_at: datetime


@dataclass
class SendRequest:
    reminder_id: str | None
    contact_number: str
    purpose: Purpose
    key: str
    """Stays the same across retries of one send: the send is recorded under it exactly once."""
    appt_user_dt: str | None = None
    location: str | None = None
    participant: str | None = None
    language: str | None = None
    mirror: ReminderState | None = None
    """The reminder's state once this message is accepted, written to the mirror by the same activity."""
    mirror_before: ReminderState | None = None
    """The reminder's state while this message is on its way (an answer recorded, its reply not yet sent),
    written to the mirror before the provider is called."""
    not_before: datetime | None = None
    """An armed send: the activity holds until this instant, then checks it is still wanted and sends."""
    generation: int | None = None
    """For an armed reminder: the schedule it was armed for. The mirror showing another generation, the
    reminder deleted or answered means the send stands down."""


@dataclass
class SendResult:
    delivered_to_provider: bool
    provider_id: str | None = None
    opted_out: bool = False
    withdrawn: bool = False
    """An armed send that found, at its time, that the reminder no longer wants it: nothing was sent."""


@dataclass
class KeywordInput:
    contact_number: str
    keyword: str
    """One of `opt_out`, `opt_in`, `help`."""
    message_id: str


@dataclass
class OptOutChange:
    contact_number: str
    opted_out: bool


@dataclass
class OpenReminders:
    reminder_ids: list[str]
