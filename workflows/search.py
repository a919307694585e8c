"""The search attributes as typed keys, built from the contract's names and types."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

from workflows.models import SEARCH_ATTRIBUTE_TYPES

_BY_TYPE: dict[str, Any] = {
    "Keyword": SearchAttributeKey.for_keyword,
    "Datetime": SearchAttributeKey.for_datetime,
}


def _key(name: str) -> Any:
    return _BY_TYPE[SEARCH_ATTRIBUTE_TYPES[name]](name)


CONTACT_NUMBER: SearchAttributeKey[str] = _key("ContactNumber")
REMINDER_STATUS: SearchAttributeKey[str] = _key("ReminderStatus")
APPOINTMENT_TIME: SearchAttributeKey[Any] = _key("AppointmentTime")
NOTIFY_TIME: SearchAttributeKey[Any] = _key("NotifyTime")
SEARCH_ATTRIBUTES = tuple(_key(name) for name in SEARCH_ATTRIBUTE_TYPES)
