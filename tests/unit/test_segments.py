"""rules.segments against the published segment rules (GSM 03.38 / 3GPP 23.038, as Twilio and Flowroute
count them)."""

from __future__ import annotations

import pytest

from rules.segments import encoding_of, first_non_gsm7, smart_encode

SEED_REMINDER = (
    "[West Side Clinic]\nYou have an appointment on Monday Mar 23, 1:00 pm at West Side Mechanics with Dr Smith."
    " Please reply 'Yes' to confirm, or 'No' to cancel."
)

CASES: list[tuple[str, str, int]] = [
    ("", "GSM-7", 1),
    ("a", "GSM-7", 1),
    ("x" * 160, "GSM-7", 1),
    ("x" * 161, "GSM-7", 2),
    ("x" * 306, "GSM-7", 2),
    ("x" * 307, "GSM-7", 3),
    ("x" * 459, "GSM-7", 3),
    ("x" * 460, "GSM-7", 4),
    ("€" * 80, "GSM-7", 1),  # 160 septets: the euro sign counts 2
    ("€" * 81, "GSM-7", 2),
    ("x" * 159 + "[", "GSM-7", 2),  # 161 septets
    ("x" * 158 + "{", "GSM-7", 1),
    ("^{}\\[~]|", "GSM-7", 1),
    ("Café à l'hôtel", "UCS-2", 1),  # ô is not in GSM-7 (é and à are)
    ("Müller Straße 5, Ñoño", "GSM-7", 1),  # ü, ß, Ñ, ñ are GSM-7
    ("Ñandú", "UCS-2", 1),  # ú is not (ù is)
    ("Clínica São José", "UCS-2", 1),
    ("y" * 70, "GSM-7", 1),
    ("ç" * 70, "UCS-2", 1),  # lower-case ç is not GSM-7 (only Ç is)
    ("ç" * 71, "UCS-2", 2),
    ("ç" * 134, "UCS-2", 2),
    ("ç" * 135, "UCS-2", 3),
    ("😀" * 35, "UCS-2", 1),  # 70 UTF-16 units
    ("😀" * 36, "UCS-2", 2),
    ("Hello 👋", "UCS-2", 1),
    ("Привет", "UCS-2", 1),
    ("你好" * 35, "UCS-2", 1),
    ("你好" * 36, "UCS-2", 2),
    ("O’Brien’s Garage", "UCS-2", 1),
    (SEED_REMINDER, "GSM-7", 1),
    (SEED_REMINDER.replace("West Side Mechanics", "O’Brien’s Garage"), "UCS-2", 3),
    (SEED_REMINDER.replace("West Side Mechanics", "Clínica São José"), "UCS-2", 3),
    ("line\nbreak\r", "GSM-7", 1),
    ("tab\there", "UCS-2", 1),  # a tab is not in GSM-7
    ("ΔΦΓΛΩΠΨΣΘΞ", "GSM-7", 1),
    ("αβγ", "UCS-2", 1),
]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("text", "encoding", "segments"), CASES, ids=[repr(t[:24]) for t, _, _ in CASES])
def test_segments(text: str, encoding: str, segments: int) -> None:
    got = encoding_of(text)
    assert (got.encoding, got.segments) == (encoding, segments)


@pytest.mark.parametrize(
    ("text", "smart"),
    [
        ("O’Brien’s Garage", "O'Brien's Garage"),
        ("“Dr” Smith", '"Dr" Smith'),
        ("9–5 — open", "9-5 - open"),
        ("Wait…", "Wait..."),
        ("Suite\u00a04", "Suite 4"),
        ("zero\u200bwidth", "zerowidth"),
        ("Clínica São José", "Clínica São José"),  # letters stay as written
        ("«Centre»", '"Centre"'),
    ],
)
def test_smart_encoding(text: str, smart: str) -> None:
    assert smart_encode(text) == smart


def test_smart_encoding_makes_the_curly_apostrophe_reminder_one_segment_again() -> None:
    text = SEED_REMINDER.replace("West Side Mechanics", "O’Brien’s Garage")
    assert encoding_of(smart_encode(text)).segments == 1
    assert first_non_gsm7(text) == "’" and first_non_gsm7(smart_encode(text)) is None
