"""What the line reads back of a message, by Vosk's confidence (pure rules on text and words)."""

from __future__ import annotations

from ivr.speech.read_back import READ_BACK_CHARS, read_back_text, spoken_numbers


def words(*pairs: tuple[str, float]) -> list[dict[str, object]]:
    return [{"word": word, "conf": conf, "start": 0.0, "end": 0.1} for word, conf in pairs]


def test_confident_words_are_read_back_with_numbers_as_people_say_them():
    heard = words(("三", 0.95), ("栋", 0.9), ("二", 0.92), ("单元", 0.9), ("五零一", 0.88), ("漏水", 0.97))
    assert read_back_text("3栋2单元501室漏水", heard, 0.75) == ("words", "三栋二单元五零一室漏水")


def test_unsure_words_give_only_what_was_heard_with_confidence():
    heard = words(("三", 0.95), ("栋", 0.9), ("厨房", 0.2), ("好像", 0.3), ("漏水", 0.9), ("了", 0.1))
    assert read_back_text("3栋厨房好像漏水了", heard, 0.75) == ("summary", "漏水、三栋")


def test_nothing_sure_means_nothing_is_read_as_if_it_were_said():
    heard = words(("厨房", 0.2), ("好像", 0.3))
    assert read_back_text("厨房好像", heard, 0.75) is None
    assert read_back_text("", [], 0.75) is None


def test_zero_always_reads_the_words():
    heard = words(("厨房", 0.2), ("好像", 0.3))
    assert read_back_text("厨房好像", heard, 0.0) == ("words", "厨房好像")


def test_long_messages_are_cut():
    text = "楼上" * 100
    kind, said = read_back_text(text, words(("楼上", 0.99)), 0.75)
    assert kind == "words" and said == text[:READ_BACK_CHARS] + "……"


def test_numbers_spoken():
    assert spoken_numbers("12栋3单元1202室") == "十二栋三单元一二零二室"
    assert spoken_numbers("电话13912345678") == "电话一三九一二三四五六七八"
    assert spoken_numbers("漏了2天") == "漏了两天"
