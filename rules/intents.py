"""What an inbound text means. The only place the word lists live.

Carrier keywords count only as the whole message (case, surrounding spaces and punctuation ignored).
Otherwise Yes and No are looked for as whole words; a message with both or neither is not understood.
"""

from __future__ import annotations

import re
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
YES_WORDS = frozenset({"yes", "yeah", "yep", "yup", "yea", "yess", "yesss", "confirm", "confirmed"})
NO_WORDS = frozenset({"no", "nope", "nah"})
# Single letters are too easy to type by accident inside a sentence: they count only alone.
YES_ALONE = frozenset({"y"})
NO_ALONE = frozenset({"n"})
# Phrases where "no" does not answer the question ("No problem, see you then").
NOT_A_NO = ("no problem", "no problems", "no worries", "no prob")

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NOT_ALNUM = re.compile(r"[^A-Z0-9 ]+")
_SPACES = re.compile(r"\s+")


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


def classify(body: str) -> Intent:
    keyword = keyword_of(body)
    if keyword is not None:
        return keyword
    text = body.lower()
    for phrase in NOT_A_NO:
        text = re.sub(rf"\b{phrase}\b", " ", text)
    words = _WORD.findall(text)
    yes = any(w in YES_WORDS for w in words) or (len(words) == 1 and words[0] in YES_ALONE)
    no = any(w in NO_WORDS for w in words) or (len(words) == 1 and words[0] in NO_ALONE)
    if yes and not no:
        return Intent.YES
    if no and not yes:
        return Intent.NO
    return Intent.UNKNOWN
