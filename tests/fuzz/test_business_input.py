"""Hostile input against the business routes: appointment ranges and CSV, the daily report, events, and the
inbox. Whatever arrives, the answer is below 500 and a refusal names its field; valid input does the work."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import InProcessApi
from tests.fuzz.test_hostile_input import FUZZ, ZONES, check, json_values, query_text

pytestmark = pytest.mark.e2e

BUSINESS = settings(FUZZ, max_examples=80)
FIELDS = {
    "from",
    "to",
    "timezone",
    "limit",
    "cursor",
    "since",
    "order",
    "reminder_id",
    "status",
    "contact_number",
    "body",
    "done",
    "Idempotency-Key",
}

dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat)
instants = st.datetimes().map(lambda d: d.isoformat()) | st.datetimes().map(lambda d: d.isoformat() + "Z")
bounds = (
    dates | instants | query_text | st.sampled_from(["", "0000-00-00", "2030-02-30", "9999-12-31", "\x00"])
)
zones = st.sampled_from([*ZONES, "Mars/Olympus", "", "UTC\x00", "../etc/passwd"]) | query_text


def named_refusal(response: Any, *context: Any) -> None:
    check(response, *context)
    if response.status_code == 400:
        message = response.json()["message"]
        assert message.split(":")[0] in FIELDS, message


@BUSINESS
@given(
    st.fixed_dictionaries({}, optional={"from": bounds, "to": bounds, "timezone": zones}),
    st.booleans(),
)
def test_list_ranges(api: InProcessApi, params: dict[str, str], as_csv: bool) -> None:
    headers = {"Accept": "text/csv"} if as_csv else {}
    response = api.request("business", "GET", "/reminder", params=params, headers=headers)
    named_refusal(response, params)
    assert response.status_code in (200, 400), (params, response.text[:300])
    if response.status_code == 200 and as_csv:
        rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0][0] == "reminder_id"
        assert all(len(r) == len(rows[0]) for r in rows)


@BUSINESS
@given(st.fixed_dictionaries({}, optional={"from": bounds, "to": bounds, "timezone": zones}))
def test_daily_report(api: InProcessApi, params: dict[str, str]) -> None:
    response = api.request("business", "GET", "/reports/daily", params=params)
    named_refusal(response, params)
    assert response.status_code in (200, 400), (params, response.text[:300])
    if response.status_code == 200:
        body = response.json()
        first, last = (
            date.fromisoformat(body["days"][0]["date"]),
            date.fromisoformat(body["days"][-1]["date"]),
        )
        assert (last - first).days == len(body["days"]) - 1
        assert body["total"]["scheduled"] == sum(d["scheduled"] for d in body["days"])


@BUSINESS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "since": st.integers(-5, 10**20).map(lambda n: f"evt_{n}") | query_text,
            "limit": st.integers(-5, 2000).map(str) | query_text,
            "reminder_id": st.text("0123456789abcdef", min_size=32, max_size=32) | query_text,
        },
    )
)
def test_events(api: InProcessApi, params: dict[str, str]) -> None:
    response = api.request("business", "GET", "/events", params=params)
    named_refusal(response, params)
    assert response.status_code in (200, 400), (params, response.text[:300])


@BUSINESS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "limit": st.integers(-5, 500).map(str) | query_text,
            "cursor": query_text,
            "order": st.sampled_from(["oldest", "newest"]) | query_text,
        },
    )
)
def test_inbox_list(api: InProcessApi, params: dict[str, str]) -> None:
    response = api.request("business", "GET", "/inbox", params=params)
    named_refusal(response, params)
    assert response.status_code in (200, 400), (params, response.text[:300])


message_ids = st.integers(-5, 10**19).map(str) | query_text.filter(
    lambda t: "/" not in t and t not in (".", "..")
)
reply_bodies = st.fixed_dictionaries({}, optional={"body": json_values, "done": json_values}) | json_values


@BUSINESS
@given(message_ids, reply_bodies, st.sampled_from(["reply", "done"]))
def test_inbox_actions(api: InProcessApi, message_id: str, payload: Any, action: str) -> None:
    body = json.dumps(payload, allow_nan=True)
    response = api.request(
        "business",
        "POST",
        f"/inbox/{quote(message_id, safe='')}/{action}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    named_refusal(response, message_id, body[:200])
    assert response.status_code in (200, 400, 404, 409), (message_id, body[:200], response.text[:300])


def test_a_far_range_is_a_clear_400(api: InProcessApi) -> None:
    start = date(2030, 1, 1)
    response = api.request(
        "business",
        "GET",
        "/reports/daily",
        params={"from": start.isoformat(), "to": (start + timedelta(days=400)).isoformat()},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("to: ")
