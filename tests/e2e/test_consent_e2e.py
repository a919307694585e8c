"""Consent and carrier rules on the real stack: a plain-words STOP, staff opt-outs, quiet hours."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.fakes import FakeProvider
from devstack.harness import Stack, flowroute_env, new_number, running_stack, wait_until
from tests.e2e.test_reminders_e2e import appointment_in, create, create_due_now, get, iso
from tests.e2e.test_replies_e2e import flowroute_inbound

pytestmark = pytest.mark.e2e

# Quiet hours around the time the module starts, in UTC.
QUIET_START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
QUIET_END = QUIET_START + timedelta(hours=4)


# Where it is 14 hours later than UTC, so far from these quiet hours: a reminder due now goes at once.
AWAKE = "Pacific/Kiritimati"


def due_now(stack: Stack, number: str) -> str:
    reminder_id = create_due_now(stack, number, timezone=AWAKE)
    wait_until(lambda: get(stack, reminder_id)["reminder_sent"], what="reminder sent")
    return reminder_id


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider(latency=0.05)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def consent(tmp_path_factory: pytest.TempPathFactory, provider: FakeProvider) -> Iterator[Stack]:
    quiet = f"{QUIET_START:%H:%M}-{QUIET_END:%H:%M}"
    env = flowroute_env(provider, QUIET_HOURS=quiet, ORG_NAME="Clinic")
    yield from running_stack(Path(tmp_path_factory.mktemp("consent")), env)


def test_stop_texting_me_opts_the_number_out(consent: Stack, provider: FakeProvider):
    number = new_number()
    first = due_now(consent, number)
    second = create(
        consent,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(days=3))),
        notify_window=24,
        timezone="UTC",
    )
    assert flowroute_inbound(consent, number, "Stop texting me please")["message"] == "opt_out"
    wait_until(lambda: get(consent, first)["status"] == "opted_out", what="first opted out")
    wait_until(lambda: get(consent, second)["status"] == "opted_out", what="pending opted out")
    texts = provider.wait_for(number, 2)
    assert "unsubscribed" in texts[1].text
    with consent.client() as http:
        listed = http.get("/opt-outs").json()["opt_outs"]
    [entry] = [o for o in listed if o["contact_number"] == number]
    assert entry["source"] == "plain_words" and entry["message_id"].startswith("flowroute:")


def test_yes_ill_stop_by_is_a_yes(consent: Stack, provider: FakeProvider):
    number = new_number()
    reminder_id = due_now(consent, number)
    flowroute_inbound(consent, number, "Yes, I'll stop by")
    wait_until(lambda: get(consent, reminder_id)["status"] == "confirmed", what="confirmed")


def test_staff_opt_out_and_consent_given_again(consent: Stack, provider: FakeProvider):
    number = new_number()
    pending = create(
        consent,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(days=3))),
        notify_window=24,
        timezone="UTC",
    )
    with consent.client() as http:
        bad = http.post("/opt-outs", json={"contact_number": "12"})
        assert bad.status_code == 400 and bad.json()["message"].startswith("contact_number")
        made = http.post("/opt-outs", json={"contact_number": number, "note": "asked at the desk"})
        assert made.status_code == 201, made.text
        assert (made.json()["source"], made.json()["note"]) == ("staff", "asked at the desk")
        wait_until(lambda: get(consent, pending)["status"] == "opted_out", what="pending opted out")
        no_note = http.delete(f"/opt-outs/{number}")
        assert no_note.status_code == 400 and no_note.json()["message"].startswith("note")
        back = http.delete(f"/opt-outs/{number}", params={"note": "signed the consent form again"})
        assert back.status_code == 200 and back.json()["opted_out"] is False
        assert http.delete(f"/opt-outs/{number}", params={"note": "again"}).status_code == 404
    assert provider.to(number) == [], "a staff opt-out sends no text"
    due_now(consent, number)


def test_quiet_hours_move_the_notify_time_to_their_end(consent: Stack, provider: FakeProvider):
    # Due now, inside the quiet hours: moved to their end, still before the appointment.
    appointment = appointment_in(timedelta(hours=5))
    reminder_id = create(
        consent,
        contact_number=new_number(),
        appointment_time=iso(appointment),
        notify_window=5,
        timezone="UTC",
    )
    reminder = get(consent, reminder_id)
    assert reminder["notify_sys_dt"] == QUIET_END.strftime("%Y-%m-%d %H:%M:%S")
    assert reminder["reminder_sent"] is False


def test_bad_consent_bodies_get_400_naming_the_field(consent: Stack):
    with consent.client() as http:
        for body, field in (
            (["x"], "body"),
            ({}, "contact_number"),
            ({"contact_number": "12223334444", "note": 5}, "note"),
        ):
            response = http.post("/opt-outs", json=body)
            assert response.status_code == 400 and response.json()["message"].startswith(field), response.text
        assert http.get("/opt-outs", params={"limit": 0}).json()["message"].startswith("limit")
        assert (
            http.get("/opt-outs", params={"cursor": uuid.uuid4().hex}).json()["message"].startswith("cursor")
        )
