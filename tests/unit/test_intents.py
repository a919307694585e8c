"""rules.intents: what real inbound texts mean."""

from __future__ import annotations

import pytest

from rules.intents import Intent, classify, keyword_of

OPT_OUT, OPT_IN, HELP = Intent.OPT_OUT, Intent.OPT_IN, Intent.HELP
YES, NO, UNKNOWN = Intent.YES, Intent.NO, Intent.UNKNOWN

MESSAGES: list[tuple[str, Intent]] = [
    # Carrier keywords, only as the whole message.
    ("STOP", OPT_OUT),
    ("stop", OPT_OUT),
    ("stop.", OPT_OUT),
    (" Stop! ", OPT_OUT),
    ("STOPALL", OPT_OUT),
    ("Unsubscribe", OPT_OUT),
    ("CANCEL", OPT_OUT),
    ("cancel", OPT_OUT),
    ("END", OPT_OUT),
    ("Quit", OPT_OUT),
    ("REVOKE", OPT_OUT),
    ("OPTOUT", OPT_OUT),
    ("opt out", OPT_OUT),
    ("Opt  Out!!", OPT_OUT),
    ("\nSTOP\n", OPT_OUT),
    ("START", OPT_IN),
    ("start", OPT_IN),
    ("UNSTOP", OPT_IN),
    ("HELP", HELP),
    ("help?", HELP),
    ("info", HELP),
    ("INFO", HELP),
    # ... and not inside a sentence.
    ("please stop by", UNKNOWN),
    ("Can I stop by the office first?", UNKNOWN),
    ("cancel my appointment", NO),
    ("I need to cancel", NO),
    ("I want to stop", OPT_OUT),
    ("stop stop", UNKNOWN),
    ("at the end of the day", UNKNOWN),
    ("help me", UNKNOWN),
    ("start over", UNKNOWN),
    ("Stop texting me, no", OPT_OUT),
    # Plain words whose point is to stop the texts (FCC, April 2025): opt-outs, before any Yes or No.
    ("stop texting me", OPT_OUT),
    ("Please stop", OPT_OUT),
    ("please stop!!", OPT_OUT),
    ("stop please", OPT_OUT),
    ("Stop it", OPT_OUT),
    ("STOP SENDING ME THESE", OPT_OUT),
    ("stop the texts", OPT_OUT),
    ("Stop messaging me please", OPT_OUT),
    ("stop sending reminders", OPT_OUT),
    ("unsubscribe me", OPT_OUT),
    ("Unsubscribe me from this", OPT_OUT),
    ("remove me from your list", OPT_OUT),
    ("Remove me from this list", OPT_OUT),
    ("take me off your list", OPT_OUT),
    ("please remove my number", OPT_OUT),
    ("don't text me", OPT_OUT),
    ("Dont text me again", OPT_OUT),
    ("Do not contact me", OPT_OUT),
    ("don’t message me anymore", OPT_OUT),
    ("no more texts please", OPT_OUT),
    ("No more messages", OPT_OUT),
    ("wrong number", OPT_OUT),
    ("Wrong number, sorry", OPT_OUT),
    ("you have the wrong person", OPT_OUT),
    ("leave me alone", OPT_OUT),
    ("opt me out", OPT_OUT),
    ("I want you to stop", OPT_OUT),
    ("yes but stop texting me", OPT_OUT),
    ("No más mensajes", OPT_OUT),
    ("no mas mensajes por favor", OPT_OUT),
    ("Baja", OPT_OUT),
    ("no me envíen más", OPT_OUT),
    # ... but "stop" that answers the question is not one.
    ("Yes, I'll stop by", YES),
    ("yes I will stop in at 3", YES),
    ("Yes! Please stop by the desk first?", YES),
    ("I'll stop by tomorrow, yes", YES),
    ("can't stop by, no", NO),
    # Cancelling the appointment is a No.
    ("please cancel my appointment", NO),
    ("Cancel the appointment please", NO),
    ("I have to cancel, sorry", NO),
    ("Can you cancel it?", NO),
    ("cancel tomorrow's appointment", NO),
    # Yes and No, whole words, any case.
    ("yes", YES),
    ("Yes", YES),
    ("Yes!", YES),
    ("YES please", YES),
    ("y", YES),
    ("Y", YES),
    ("yep", YES),
    ("yeah sure", YES),
    ("Yes I will be there", YES),
    ("yes?", YES),
    ("\tyes ", YES),
    ("Confirm", YES),
    ("Yes yes yes", YES),
    ("no", NO),
    ("No.", NO),
    ("NO!!!", NO),
    ("nope", NO),
    ("nah", NO),
    ("n", NO),
    ("No, I cannot make it", NO),
    ("Nah, reschedule please", NO),
    ("no thanks", NO),
    # The seed's misreadings: substrings are not words.
    ("I know", UNKNOWN),
    ("noon works", UNKNOWN),
    ("Nothing", UNKNOWN),
    ("yesterday", UNKNOWN),
    ("eyes", UNKNOWN),
    ("Not sure", UNKNOWN),
    ("Nobody told me", UNKNOWN),
    ("Noted", UNKNOWN),
    ("Yessir", UNKNOWN),
    # A lone letter inside a sentence is not an answer.
    ("y not", UNKNOWN),
    ("I'll be there at 3 n stuff", UNKNOWN),
    # Both, or neither.
    ("yes no", UNKNOWN),
    ("Yes. No. Maybe.", UNKNOWN),
    ("maybe", UNKNOWN),
    ("", UNKNOWN),
    ("   ", UNKNOWN),
    ("ok", UNKNOWN),
    ("See you then", UNKNOWN),
    ("👍", UNKNOWN),
    # "No problem" is not a no.
    ("No problem, see you then", UNKNOWN),
    ("no worries", UNKNOWN),
    ("yes, no problem", YES),
    ("Yes! No worries", YES),
    ("No problem but no, I can't come", NO),
]


def test_the_table_is_big_enough() -> None:
    assert len(MESSAGES) >= 80
    assert len({m for m, _ in MESSAGES}) == len(MESSAGES)
    assert {i for _, i in MESSAGES} == set(Intent)


@pytest.mark.parametrize(("message", "intent"), MESSAGES, ids=[repr(m) for m, _ in MESSAGES])
def test_classify(message: str, intent: Intent) -> None:
    assert classify(message) is intent


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("STOP", OPT_OUT),
        ("opt out", OPT_OUT),
        ("unstop", OPT_IN),
        ("Info.", HELP),
        ("stop by", None),
        ("yes", None),
        ("no", None),
        ("", None),
    ],
)
def test_keyword_of(message: str, intent: Intent | None) -> None:
    assert keyword_of(message) is intent


def test_cancel_alone_is_an_opt_out_never_a_no() -> None:
    for text in ("CANCEL", "Cancel.", " cancel "):
        assert classify(text) is OPT_OUT
    assert classify("cancel my appointment") is NO
