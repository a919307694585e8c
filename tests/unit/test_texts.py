"""activities.texts: the seed's date format per locale, and every message template."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from arrow.locales import get_locale

import settings as settings_module
from activities.texts import Texts, context_of, format_when, texts_from_settings
from settings import Settings
from workflows.models import Purpose

MONDAY_MAR_23_1PM = datetime(2026, 3, 23, 13, 0)


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)


def test_the_date_is_a_monday() -> None:
    assert MONDAY_MAR_23_1PM.strftime("%A %b %d") == "Monday Mar 23"


@pytest.mark.parametrize(
    ("when", "language", "expected"),
    [
        (MONDAY_MAR_23_1PM, "en_us", "Monday Mar 23, 1:00 pm"),
        (datetime(2026, 3, 23, 9, 5), "en_us", "Monday Mar 23, 9:05 am"),
        (datetime(2026, 3, 23, 0, 0), "en_us", "Monday Mar 23, 12:00 am"),
        (datetime(2026, 12, 1, 12, 30), "en_us", "Tuesday Dec 1, 12:30 pm"),
        (datetime(2026, 9, 6, 23, 59), "en_us", "Sunday Sep 6, 11:59 pm"),
        (MONDAY_MAR_23_1PM, "EN_US", "Monday Mar 23, 1:00 pm"),
        (MONDAY_MAR_23_1PM, "en-gb", "Monday Mar 23, 1:00 pm"),
        # No meridians: a 24-hour clock.
        (MONDAY_MAR_23_1PM, "fr", "lundi mars 23, 13:00"),
        (datetime(2027, 1, 4, 8, 15), "fr", "lundi janv 4, 8:15"),
        (MONDAY_MAR_23_1PM, "de", "Montag Mär 23, 13:00"),
        # Armenian abbreviations are its full names: full month names, and it has meridians.
        (MONDAY_MAR_23_1PM, "hy", "երկուշաբթի մարտ 23, 1:00 պ.մ."),
        # Japanese and Korean abbreviations are ' 3': no double space is left.
        (MONDAY_MAR_23_1PM, "ja", "月曜日 3 23, 13:00"),
        (MONDAY_MAR_23_1PM, "ko", "월요일 3 23, 13:00"),
    ],
)
def test_format_when(when: datetime, language: str, expected: str) -> None:
    assert format_when(when, language) == expected


@pytest.mark.parametrize("language", ["fr", "de", "ja", "ko"])
def test_locales_without_meridians_get_a_24_hour_clock(language: str) -> None:
    assert not get_locale(language).meridian(13, "a")
    text = format_when(datetime(2026, 3, 23, 17, 45), language)
    assert text.endswith(" 17:45")


def test_locale_without_abbreviations_gets_full_month_names() -> None:
    locale = get_locale("hy")
    assert locale.month_abbreviations[1:] == locale.month_names[1:]
    for month in range(1, 13):
        text = format_when(datetime(2027, month, 10, 9, 0), "hy")
        assert f" {locale.month_names[month]} 10, " in text


@pytest.mark.parametrize("language", ["ja", "ko", "zh", "en_us", "fr", "hy"])
def test_no_double_or_edge_spaces_in_any_month(language: str) -> None:
    for month in range(1, 13):
        text = format_when(datetime(2027, month, 1, 13, 0), language)
        assert "  " not in text and text == text.strip(), (language, month, text)


@pytest.mark.parametrize(
    ("location", "participant", "context"),
    [
        ("Main St Clinic", None, " at Main St Clinic"),
        (None, "Dr. Smith", " with Dr. Smith"),
        ("Main St Clinic", "Dr. Smith", " at Main St Clinic with Dr. Smith"),
        (None, None, ""),
        ("", "", ""),
    ],
)
def test_context_of(location: str | None, participant: str | None, context: str) -> None:
    assert context_of(location, participant) == context


def texts(**overrides: Any) -> Texts:
    return texts_from_settings(Settings(_env_file=None, org_name="Acme Clinic", **overrides))


REMINDER_TAIL = ". Please reply 'Yes' to confirm, or 'No' to cancel."


@pytest.mark.parametrize(
    ("location", "participant", "expected"),
    [
        (
            "Main St Clinic",
            None,
            "[Acme Clinic]\nYou have an appointment on Monday Mar 23, 1:00 pm at Main St Clinic"
            + REMINDER_TAIL,
        ),
        (
            None,
            "Dr. Smith",
            "[Acme Clinic]\nYou have an appointment on Monday Mar 23, 1:00 pm with Dr. Smith" + REMINDER_TAIL,
        ),
        (
            "Main St Clinic",
            "Dr. Smith",
            "[Acme Clinic]\nYou have an appointment on Monday Mar 23, 1:00 pm at Main St Clinic with Dr. Smith"
            + REMINDER_TAIL,
        ),
        (None, None, "[Acme Clinic]\nYou have an appointment on Monday Mar 23, 1:00 pm" + REMINDER_TAIL),
    ],
)
def test_reminder_with_default_template(location: str | None, participant: str | None, expected: str) -> None:
    rendered = texts().render(
        Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00", location=location, participant=participant
    )
    assert rendered == expected


def test_reminder_in_the_reminders_language() -> None:
    rendered = texts().render(Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00", language="fr")
    assert rendered == "[Acme Clinic]\nYou have an appointment on lundi mars 23, 13:00" + REMINDER_TAIL


def test_reminder_in_the_default_language() -> None:
    rendered = texts(language_default="de").render(Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00")
    assert "on Montag Mär 23, 13:00." in rendered


def test_braces_in_what_the_client_wrote_are_kept_literally() -> None:
    rendered = texts().render(
        Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00", location="Room {org}", participant="{when}"
    )
    assert " at Room {org} with {when}." in rendered


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        (Purpose.CONFIRMATION, "[Acme Clinic]\nThank you! Your appointment has been marked confirmed."),
        (Purpose.CANCELLATION, "[Acme Clinic]\nThank you! Your appointment has been marked canceled."),
        (
            Purpose.UNPARSABLE,
            "[Acme Clinic]\nSorry, we did not understand your response. "
            "Please reply 'Yes' to confirm, or 'No' to cancel.",
        ),
        (Purpose.OPT_OUT, settings_module.DEFAULT_OPT_OUT.replace("{org}", "Acme Clinic")),
        (Purpose.OPT_IN, settings_module.DEFAULT_OPT_IN.replace("{org}", "Acme Clinic")),
        (Purpose.HELP, settings_module.DEFAULT_HELP_NO_CONTACT.replace("{org}", "Acme Clinic")),
    ],
)
def test_other_messages_with_default_templates(purpose: Purpose, expected: str) -> None:
    assert texts().render(purpose) == expected


def test_help_names_the_business_and_its_contact() -> None:
    text = texts(org_contact="(555) 010-0199").render(Purpose.HELP)
    assert text.startswith("[Acme Clinic]\n") and "Help: (555) 010-0199." in text
    assert "Reply STOP to opt out." in text and "Msg & data rates may apply." in text


def test_the_opt_out_line_ends_the_first_text_to_a_number_and_did_not_understand() -> None:
    t = texts()
    reminder = t.render(Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00")
    assert t.finish(reminder, Purpose.REMINDER, first_to_number=True) == reminder + "\nReply STOP to opt out."
    assert t.finish(reminder, Purpose.REMINDER, first_to_number=False) == reminder
    unparsable = t.render(Purpose.UNPARSABLE)
    assert t.finish(unparsable, Purpose.UNPARSABLE, first_to_number=False).endswith(
        "\nReply STOP to opt out."
    )
    optout = t.render(Purpose.OPT_OUT)
    assert t.finish(optout, Purpose.OPT_OUT, first_to_number=True) == optout
    off = texts(msg_opt_out_line="")
    assert off.finish(reminder, Purpose.REMINDER, first_to_number=True) == reminder


def test_smart_encoding_is_on_by_default_and_can_be_turned_off() -> None:
    reminder = texts().render(Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00", location="O’Brien’s")
    assert "O'Brien's" in texts().finish(reminder, Purpose.REMINDER, first_to_number=False)
    assert "O’Brien’s" in texts(smart_encoding=False).finish(
        reminder, Purpose.REMINDER, first_to_number=False
    )


def test_every_purpose_has_a_template() -> None:
    t = texts()
    assert set(t.templates) == set(Purpose)
    for purpose in Purpose:
        assert t.render(purpose, appt_user_dt="2026-03-23 13:00:00").startswith("[Acme Clinic]\n")


def test_help_names_the_org_and_how_to_opt_out() -> None:
    text = texts().render(Purpose.HELP)
    assert "Acme Clinic" in text and "STOP" in text


def test_opt_out_message_says_how_to_come_back() -> None:
    assert "START" in texts().render(Purpose.OPT_OUT)


def test_default_org_name() -> None:
    assert (
        texts_from_settings(Settings(_env_file=None))
        .render(Purpose.CONFIRMATION)
        .startswith("[Your Org Name]\n")
    )


def test_a_literal_backslash_n_in_a_template_is_a_newline() -> None:
    t = texts(msg_reminder="[{org}]\\nHi {when}{context}")
    rendered = t.render(Purpose.REMINDER, appt_user_dt="2026-03-23 13:00:00", location="Room 5")
    assert rendered == "[Acme Clinic]\nHi Monday Mar 23, 1:00 pm at Room 5"
    assert "\\" not in rendered


def test_a_template_from_the_environment_gets_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSG_CONFIRMATION", r"[{org}]\nSee you soon!")
    monkeypatch.setenv("ORG_NAME", "Env Org")
    t = texts_from_settings(Settings(_env_file=None))
    assert t.render(Purpose.CONFIRMATION) == "[Env Org]\nSee you soon!"
