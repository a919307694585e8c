from __future__ import annotations

import json
import logging

from stack.logs import JsonFormatter


def test_json_lines_carry_the_reminder_id():
    record = logging.LogRecord(
        "reminders.api", logging.INFO, __file__, 1, "created reminder %s", ("abc",), None
    )
    record.reminder_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "created reminder abc"
    assert line["reminder_id"] == "abc"
    assert line["level"] == "info" and line["logger"] == "reminders.api"


def test_exceptions_are_kept():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["error"]
