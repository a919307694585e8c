"""What an inbound text means. The only place the word lists live.

Opt-outs come first. Carrier keywords count only as the whole message (case, surrounding spaces and
punctuation ignored). Since April 2025 (FCC) consent may also be revoked in plain words: a message whose
point is to stop the texts ("stop texting me", "please stop", "wrong number", "no más mensajes") is an
opt-out too, but never words that answer the question ("Yes, I'll stop by"). Otherwise Yes and No are looked
for as whole words; a message with both or neither is not understood. Asking to cancel the appointment
("please cancel my appointment") is a No; CANCEL alone is a carrier opt-out.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum


class Intent(str, Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


# Intents answered per number (KeywordWorkflow) rather than by a reminder.
KEYWORDS = frozenset({Intent.OPT_OUT, Intent.OPT_IN, Intent.HELP})

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

# Words that mean yes or no anywhere in a message.
YES_WORDS = frozenset({"yes", "yeah", "yep", "yup", "yea", "yess", "yesss", "confirm", "confirmed", "sí"})
NO_WORDS = frozenset({"no", "nope", "nah"})
# Single letters are too easy to type by accident inside a sentence: they count only alone.
YES_ALONE = frozenset({"y"})
NO_ALONE = frozenset({"n"})
# Phrases where "no" does not answer the question ("No problem, see you then").
NOT_A_NO = ("no problem", "no problems", "no worries", "no prob")

# "stop" that answers the question: dropping in, not the texts.
_VISIT = r"(?!\s+(?:by|in|over|off|at|for|on|past|round|around|there|here)\b)"
# Plain words whose point is to stop the texts, on the message lower-cased, accents kept, punctuation as
# spaces.
PLAIN_OPT_OUTS = tuple(
    re.compile(p)
    for p in (
        r"\bstop (?:texting|txting|messaging|sending|contacting|calling|bothering|spamming)\b",
        r"\bstop (?:the |these |your |all )?(?:texts?|messages?|msgs?|reminders?|sms)\b",
        rf"\b(?:please|pls|plz|just) stop\b{_VISIT}",
        r"^stop (?:please|pls|plz|now|it|already|thanks|thank you)\b",
        rf"\b(?:want|need|like) (?:you )?to stop\b{_VISIT}",
        r"\bunsubscribe\b",
        r"\bopt (?:me )?out\b",
        r"\b(?:remove|delete|take) me (?:off|from)\b",
        r"\bremove (?:my|this) (?:number|phone)\b",
        r"\b(?:don'?t|do not|never) (?:text|message|msg|contact|txt|sms) me\b",
        r"\bno more (?:texts?|messages?|msgs?|reminders?)\b",
        r"\bwrong (?:number|person|phone)\b",
        r"\bleave me alone\b",
        r"\bno (?:m[aá]s|mas) (?:mensajes|textos|recordatorios)\b",
        r"^(?:baja|darme de baja|dar de baja|alto|parar)$",
        r"\b(?:no me (?:env[ií]en|manden|escriban))\b",
    )
)
# Asking to cancel the appointment: a No, not an opt-out.
CANCELS_APPOINTMENT = re.compile(
    r"\b(?:please|pls|plz|need to|want to|have to|i'?d like to|can you|could you|gotta) cancel"
    r"|\bcancel+(?:l?ed)? (?:my |the |our |this |that |tomorrow'?s )?(?:appointment|appt|visit|booking)\b"
)
_WORD = re.compile(r"[a-zà-ÿ]+(?:'[a-z]+)?")
_NOT_ALNUM = re.compile(r"[^A-Z0-9 ]+")
_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w\s']+")


def keyword_of(body: str) -> Intent | None:
    """The carrier keyword the whole message is, if it is one."""
    text = _SPACES.sub(" ", _NOT_ALNUM.sub(" ", body.upper())).strip()
    if text in OPT_OUT_KEYWORDS:
        return Intent.OPT_OUT
    if text in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if text in HELP_KEYWORDS:
        return Intent.HELP
    return None


def is_bare_cancel(body: str) -> bool:
    return _SPACES.sub(" ", _NOT_ALNUM.sub(" ", body.upper())).strip() == "CANCEL"


def _plain(body: str) -> str:
    text = unicodedata.normalize("NFC", body).lower().replace("’", "'")
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def is_plain_opt_out(body: str) -> bool:
    """Whether the message asks, in plain words, for the texts to stop."""
    text = _plain(body)
    return any(p.search(text) for p in PLAIN_OPT_OUTS)


def classify(body: str) -> Intent:
    keyword = keyword_of(body)
    if keyword is not None:
        return keyword
    if is_plain_opt_out(body):
        return Intent.OPT_OUT
    text = _plain(body)
    for phrase in NOT_A_NO:
        text = re.sub(rf"\b{phrase}\b", " ", text)
    words = _WORD.findall(text)
    yes = any(w in YES_WORDS for w in words) or (len(words) == 1 and words[0] in YES_ALONE)
    no = any(w in NO_WORDS for w in words) or (len(words) == 1 and words[0] in NO_ALONE)
    if CANCELS_APPOINTMENT.search(text):
        no = True
    if yes and not no:
        return Intent.YES
    if no and not yes:
        return Intent.NO
    return Intent.UNKNOWN
