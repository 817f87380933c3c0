"""What the line reads back of a message (E4): the caller's words when Vosk is confident enough, else the
few things it heard with confidence (urgent words, building / unit / room), else nothing — never a
guess read to the caller as if it were what they said. Numbers are put into words the way people say them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ivr.speech.text import join_tokens, normalise_numbers
from ivr.speech.triage import triage
from ivr.spoken import count_spoken, digits_spoken

READ_BACK_CHARS = 80  # longer messages are read back in part, so the caller is not kept listening
SUMMARY_ITEMS = 4

# 3号楼 / 3栋 / 2单元 / 501室 after normalise_numbers; a building or unit is said as a count (三栋, 十二单元),
# a room or anything of three digits or more digit by digit (五零一室).
_PLACE = re.compile(r"\d+(?:号楼|栋|幢|单元|楼|室|号|房)")
_NUMBER = re.compile(r"\d+")
_COUNTED_BEFORE = ("号楼", "栋", "幢", "单元", "楼", "层", "个", "次", "天")


def mean_confidence(words: Sequence[Mapping[str, Any]]) -> float | None:
    """Vosk's mean word confidence (0–1), None without words."""
    confs = [float(word.get("conf", 1.0)) for word in words]
    return sum(confs) / len(confs) if confs else None


def read_back_text(text: str, words: Sequence[Mapping[str, Any]], min_confidence: float) -> tuple[str, str] | None:
    """('words', what they said) when the mean word confidence reaches `min_confidence` (0: always),
    ('summary', the confident parts) when only some words are sure, None when nothing is."""
    confidence = mean_confidence(words)
    if text and (min_confidence <= 0 or (confidence is not None and confidence >= min_confidence)):
        return "words", spoken_numbers(shortened(text))
    sure_words = [str(word["word"]) for word in words if float(word.get("conf", 1.0)) >= min_confidence]
    sure = normalise_numbers(join_tokens(" ".join(sure_words)))
    items = [*triage(sure).matched, *_PLACE.findall(sure)]
    items = list(dict.fromkeys(items))[:SUMMARY_ITEMS]
    return ("summary", spoken_numbers(shortened("、".join(items)))) if items else None


def shortened(text: str, limit: int = READ_BACK_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "……"


def spoken_numbers(text: str) -> str:
    """'3栋2单元501室' → '三栋二单元五零一室'; '电话13912345678' digit by digit; '2天' → '两天'."""

    def spoken(match: re.Match[str]) -> str:
        digits = match.group(0)
        after = match.string[match.end() : match.end() + 2]
        if len(digits) <= 2 and after.startswith(_COUNTED_BEFORE):
            said = count_spoken(int(digits))
            return "两" if said == "二" and not after.startswith(("号楼", "栋", "幢", "单元", "楼")) else said
        return digits_spoken(digits)

    return _NUMBER.sub(spoken, text)
