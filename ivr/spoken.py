"""Numbers put into words the way a Mandarin TTS should read them to a caller."""

from __future__ import annotations

_DIGIT_WORDS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))


def digits_spoken(digits: str) -> str:
    """Read digit by digit, as people read room, phone and ticket numbers: '501' → '五零一'."""
    return "".join(_DIGIT_WORDS.get(ch, ch) for ch in digits)


def count_spoken(number: int) -> str:
    """Read as a quantity: 3 → '三', 12 → '十二' (building and unit numbers)."""
    import cn2an

    return str(cn2an.an2cn(str(number)))
