"""Chinese transcript clean-up: join Vosk's tokens, and write building/room/phone numbers as digits."""

from __future__ import annotations

import re

import cn2an

# Han ideographs (basic + extension A + compatibility) and CJK/full-width punctuation: no spaces between these.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{_CJK}]")

# Digits read one by one (幺 is how a phone number's 1 is said); 十百千 make a positional number.
_DIGITS = {"零": "0", "〇": "0", "幺": "1", "一": "1", "二": "2", "两": "2", "三": "3", "四": "4",
           "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}  # fmt: skip
_UNITS = "十百千"
_NUMERAL_CHARS = "".join(_DIGITS) + _UNITS

# A numeral written before one of these is an address or room number (三号楼, 二单元, 五零一室).
SUFFIX_MARKERS = ("号楼", "栋", "幢", "单元", "室", "号", "楼", "房")
# After one of these comes a phone number or a room number (电话幺三九…, 尾号六六八八, 房间五零一).
PREFIX_MARKERS = ("电话", "手机", "尾号", "房号", "房间", "房")
# Words a prefix marker may be followed by before the digits start: 电话号码是幺三九…
_PREFIX_FILLER = "(?:号码)?(?:是|为)?"
# After a prefix marker a short run is ordinary speech (电话一直占线, 厨房一点水), so ask for three digits.
MIN_PREFIXED_DIGITS = 3
# Words where 一 before a marker is not a number: 万一楼上漏水, 统一号码, 唯一单元门.
_NOT_A_NUMBER_BEFORE = ("万", "统", "唯", "同", "专", "之", "单", "逐", "某")

_SUFFIXED = re.compile(f"([{_NUMERAL_CHARS}]+)(?=(?:{'|'.join(SUFFIX_MARKERS)}))")
_PREFIXED = re.compile(f"((?:{'|'.join(PREFIX_MARKERS)}){_PREFIX_FILLER})([{_NUMERAL_CHARS}]+)")


def join_tokens(text: str) -> str:
    """Remove the spaces Vosk puts between Chinese tokens; keep one space between Latin or digit tokens."""
    tokens = text.split()
    if not tokens:
        return ""
    joined = [tokens[0]]
    for token in tokens[1:]:
        if _CJK_CHAR.match(joined[-1][-1]) or _CJK_CHAR.match(token[0]):
            joined.append(token)
        else:
            joined.append(" " + token)
    return "".join(joined)


def numeral_to_digits(numeral: str) -> str | None:
    """'五零一' → '501', '五百零一' → '501', '幺三九' → '139'; None when it is not a well-formed number."""
    if not numeral or any(ch not in _NUMERAL_CHARS for ch in numeral):
        return None
    if not any(ch in _UNITS for ch in numeral):
        return "".join(_DIGITS[ch] for ch in numeral)
    standard = numeral.replace("幺", "一").replace("两", "二").replace("〇", "零")
    try:
        value = cn2an.cn2an(standard, "strict")
    except (ValueError, KeyError):
        return None
    return str(int(value))


def normalise_numbers(text: str) -> str:
    """Write Chinese numerals as digits where they sit next to an address, room or phone marker
    ('三号楼二单元五零一室' → '3号楼2单元501室'); every other numeral ('一下', '一点', '一直') is left alone."""

    def suffixed(match: re.Match[str]) -> str:
        numeral = match.group(1)
        start = match.start(1)
        if len(numeral) == 1 and start > 0 and match.string[start - 1] in _NOT_A_NUMBER_BEFORE:
            return numeral
        return numeral_to_digits(numeral) or numeral

    def prefixed(match: re.Match[str]) -> str:
        marker, numeral = match.group(1), match.group(2)
        if len(numeral) < MIN_PREFIXED_DIGITS:
            return match.group(0)
        return marker + (numeral_to_digits(numeral) or numeral)

    text = _PREFIXED.sub(prefixed, text)
    return _SUFFIXED.sub(suffixed, text)


def normalise_transcript(raw: str) -> str:
    """The text staff read on a ticket: Vosk's tokens joined and address/room/phone numbers as digits."""
    return normalise_numbers(join_tokens(raw))
