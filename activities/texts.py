"""The words of every message the service sends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import arrow
from arrow.locales import get_locale

from rules.segments import smart_encode
from settings import Settings
from workflows.models import Purpose

SEED_PATTERN = "dddd MMM D, h:mm a"
_SPACES = re.compile(r" {2,}")


def format_when(wall_time: datetime, language: str) -> str:
    """The appointment's wall time as the seed wrote it: `Monday Mar 23, 1:00 pm` in en_us.

    Locales without month abbreviations get full month names, and those without meridians a 24-hour clock.
    """
    locale = get_locale(language)
    pattern = SEED_PATTERN
    abbreviations = [a.strip() for a in locale.month_abbreviations[1:]]
    if not all(abbreviations) or abbreviations == [m.strip() for m in locale.month_names[1:]]:
        pattern = pattern.replace("MMM", "MMMM")
    if not locale.meridian(13, "a"):
        pattern = pattern.replace("h:mm a", "H:mm")
    text = arrow.get(wall_time).format(pattern, locale=language)
    return _SPACES.sub(" ", text).strip()


def context_of(location: str | None, participant: str | None) -> str:
    context = ""
    if location:
        context += f" at {location}"
    if participant:
        context += f" with {participant}"
    return context


# Texts that may end with the opt-out line: the first text to a number (CTIA) and "did not understand".
OPT_OUT_LINE_PURPOSES = frozenset(
    {
        Purpose.REMINDER,
        Purpose.RESEND,
        Purpose.STAFF_REPLY,
        Purpose.CONFIRMATION,
        Purpose.CANCELLATION,
        Purpose.UNPARSABLE,
    }
)


@dataclass(frozen=True)
class Texts:
    org: str
    language_default: str
    templates: dict[Purpose, str]
    opt_out_line: str = ""
    contact: str = ""
    smart_encoding: bool = True

    def finish(self, text: str, purpose: Purpose, *, first_to_number: bool) -> str:
        """The text as it goes out: the opt-out line after the first text to a number and after "did not
        understand" (the texts before it stay as they are), then smart encoding."""
        if (
            self.opt_out_line
            and purpose in OPT_OUT_LINE_PURPOSES
            and (first_to_number or purpose == Purpose.UNPARSABLE)
        ):
            text = f"{text}\n{self.opt_out_line}"
        return smart_encode(text) if self.smart_encoding else text

    def render(
        self,
        purpose: Purpose,
        *,
        appt_user_dt: str | None = None,
        location: str | None = None,
        participant: str | None = None,
        language: str | None = None,
        body: str | None = None,
    ) -> str:
        fields = {
            "body": body or "",
            "org": self.org,
            "when": "",
            "context": context_of(location, participant),
            "contact": self.contact,
        }
        if appt_user_dt:
            wall = datetime.strptime(appt_user_dt, "%Y-%m-%d %H:%M:%S")
            fields["when"] = format_when(wall, language or self.language_default)
        return self.templates[purpose].format(**fields)


def texts_from_settings(settings: Settings) -> Texts:
    return Texts(
        org=settings.org_name,
        language_default=settings.language_default,
        opt_out_line=settings.msg_opt_out_line,
        contact=settings.org_contact or "",
        smart_encoding=settings.smart_encoding,
        templates={
            Purpose.REMINDER: settings.msg_reminder,
            Purpose.RESEND: settings.msg_reminder,
            Purpose.STAFF_REPLY: settings.msg_staff_reply,
            Purpose.CONFIRMATION: settings.msg_confirmation,
            Purpose.CANCELLATION: settings.msg_cancellation,
            Purpose.UNPARSABLE: settings.msg_unparsable,
            Purpose.OPT_OUT: settings.msg_opt_out,
            Purpose.OPT_IN: settings.msg_opt_in,
            Purpose.HELP: settings.help_template,
        },
    )
