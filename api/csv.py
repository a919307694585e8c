"""Reminders as CSV: every field of the JSON, one row a reminder (lists joined by semicolons)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from api.schemas import Reminder

CSV_FIELDS = tuple(Reminder.model_fields)
# A cell a spreadsheet would run as a formula starts with a quote mark instead (OWASP's CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(csv_cell(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()
