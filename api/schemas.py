"""Shapes of requests and answers. A request model is both the check and the document at /docs: its
validator calls the parse functions of validation.py (so every 400 names its field, in the order the
rules are checked), and its fields describe the body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from api.validation import InvalidInput, NewReminder, parse_change, parse_new_reminder
from workflows.models import Reschedule


class _Parsed(BaseModel):
    """A request body whose validator is `_parse`; what it parsed is `parsed`."""

    model_config = ConfigDict(extra="allow")
    _parsed: Any = PrivateAttr(None)

    @classmethod
    def _parse(cls, data: Any, context: dict[str, Any]) -> Any:
        """Each request model's rules (the parse functions of validation.py); here, none."""
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: Any, info: ValidationInfo) -> Self:
        parsed = cls._parse(data, info.context or {})
        model = cls.model_construct(**(data if isinstance(data, dict) else {}))
        model._parsed = parsed
        return model

    @classmethod
    def read(cls, data: Any, **context: Any) -> Any:
        """The parsed request; a body that breaks a rule raises the InvalidInput naming its field."""
        try:
            return cls.model_validate(data, context=context)._parsed
        except ValidationError as err:
            cause = err.errors()[0].get("ctx", {}).get("error")
            if isinstance(cause, InvalidInput):
                raise cause from None
            raise


class ReminderRequest(_Parsed):
    contact_number: str | int = Field(description="1XXXXXXXXXX, or E.164 such as +442071234567")
    appointment_time: str = Field(
        description="ISO 8601 with a UTC offset (2026-12-01T09:30-0500), or a wall time with `timezone`"
    )
    notify_window: int | str | None = Field(None, description="hours before the appointment, 0 to 8760")
    notify_windows: list[int] | None = Field(
        None, description="up to 5 distinct windows, instead of notify_window"
    )
    location: str | None = Field(None, max_length=128)
    participant: str | None = Field(None, max_length=256)
    timezone: str | None = Field(None, description="IANA name, e.g. America/New_York")
    language: str | None = Field(None, description="arrow locale for the date in the message, e.g. fr")

    @classmethod
    def _parse(cls, data: Any, context: dict[str, Any]) -> NewReminder:
        return parse_new_reminder(data, context.get("now") or datetime.now(UTC), context.get("quiet"))


class ReminderChange(_Parsed):
    appointment_time: str | None = Field(None, description="as in POST; with `timezone` to move zones")
    timezone: str | None = None
    notify_window: int | str | None = None
    notify_windows: list[int] | None = None
    location: str | None = Field(None, max_length=128, description="null clears it")
    participant: str | None = Field(None, max_length=256, description="null clears it")
    language: str | None = None

    @classmethod
    def _parse(cls, data: Any, context: dict[str, Any]) -> Reschedule:
        return parse_change(
            data, context["current"], context.get("now") or datetime.now(UTC), context.get("quiet")
        )


CHANGE_REMINDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReminderChange.model_json_schema()}},
    }
}

CREATE_REMINDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ReminderRequest.model_json_schema()}},
    }
}


class CreatedReminder(BaseModel):
    reminder_id: str
    message: str


class DeletedReminder(BaseModel):
    reminder_id: str
    message: str


class Reminder(BaseModel):
    reminder_id: str
    contact_number: str
    appt_user_dt: str
    appt_sys_dt: str
    notify_sys_dt: str | None
    notify_sys_dts: list[str | None]
    notify_windows: list[int]
    location: str | None
    participant: str | None
    timezone: str | None
    language: str | None
    reminder_sent: bool
    will_attend: bool | None
    confirm_sent: bool
    status: str
    segments: int | None = None
    reason: str | None = None
    delivery_status: str | None = None
    sent_at: str | None = None


class ReminderList(BaseModel):
    reminders: list[Reminder]
    next_cursor: str | None = None


class Message(BaseModel):
    message_id: str
    reminder_id: str | None = None
    contact_number: str
    direction: str
    body: str
    provider_id: str | None
    at: str
    delivery_status: str | None
    purpose: str | None
    encoding: str | None = None
    segments: int | None = None
    needs_attention: bool = False


class MessageList(BaseModel):
    messages: list[Message]


class InboxItem(BaseModel):
    message: Message
    reminder: Reminder | None
    conversation: list[Message]


class Inbox(BaseModel):
    items: list[InboxItem]
    count: int
    next_cursor: str | None = None


class Event(BaseModel):
    id: str
    type: str
    timestamp: str
    data: dict[str, Any]


class EventList(BaseModel):
    events: list[Event]
    next_since: str | None = None


class ReportDay(BaseModel):
    date: str
    scheduled: int
    sent: int
    delivered: int
    confirmed: int
    declined: int
    no_answer: int
    opted_out: int
    failed: int
    confirmation_rate: float | None
    no_answer_rate: float | None


class DailyReport(BaseModel):
    timezone: str
    days: list[ReportDay]
    total: ReportDay
