"""One channel's speech as searchable text mapped back to moments in the recording, and the pinyin matching
that lets an ASR homophone pass without letting a different phrase pass."""

from __future__ import annotations

import pytest

from ivr.qa.speech import ChannelSpeech, sounds_like

WORDS = [  # what Vosk returns: multi-character tokens with start/end seconds
    {"word": "您好", "start": 0.50, "end": 0.90},
    {"word": "幸福家园", "start": 0.95, "end": 1.80},
    {"word": "物业", "start": 1.85, "end": 2.20},
    {"word": "服务中心", "start": 2.20, "end": 3.00},
    # 0.7 s of silence: a new utterance
    {"word": "请问", "start": 3.70, "end": 4.00},
    {"word": "您", "start": 4.00, "end": 4.20},
    {"word": "贵姓", "start": 4.25, "end": 4.70},
]


def test_each_character_of_a_multi_character_word_maps_to_that_words_time():
    speech = ChannelSpeech.from_words(1, WORDS)

    assert speech.text == "您好幸福家园物业服务中心请问您贵姓"
    [centre] = speech.find_all("家园物业")  # spans two tokens: from the first's start to the second's end
    assert (centre.text, centre.start, centre.end, centre.channel) == ("家园物业", 0.95, 2.20, 1)
    [name] = speech.find_all("贵姓")
    assert (name.start, name.end) == (4.25, 4.70)
    assert [e.as_dict() for e in speech.find_all("再见")] == []


def test_a_pause_of_at_least_six_tenths_of_a_second_ends_an_utterance():
    speech = ChannelSpeech.from_words(1, WORDS)
    assert [(u.text, u.start, u.end) for u in speech.utterances] == [
        ("您好幸福家园物业服务中心", 0.50, 3.00),
        ("请问您贵姓", 3.70, 4.70),
    ]

    just_under = [{"word": "什么", "start": 0.0, "end": 0.4}, {"word": "事", "start": 0.99, "end": 1.2}]
    assert [u.text for u in ChannelSpeech.from_words(1, just_under).utterances] == ["什么事"]
    exactly = [{"word": "什么", "start": 0.0, "end": 0.4}, {"word": "事", "start": 1.0, "end": 1.2}]
    assert [u.text for u in ChannelSpeech.from_words(1, exactly).utterances] == ["什么", "事"]


def test_vosk_unknown_marker_is_not_part_of_what_was_said():
    words = [
        {"word": "您好", "start": 0.0, "end": 0.4},
        {"word": "[unk]", "start": 0.4, "end": 0.8},
        {"word": "请讲", "start": 0.8, "end": 1.2},
    ]
    speech = ChannelSpeech.from_words(1, words)
    assert speech.text == "您好请讲"
    [ask] = speech.find_all("请讲")
    assert (ask.start, ask.end) == (0.8, 1.2)


def test_a_corrected_text_is_spread_over_the_words_span_and_split_at_punctuation():
    # 10 characters, punctuation included, over 0.5–6.0 s: each character takes 0.55 s.
    speech = ChannelSpeech.from_words(
        1, [*WORDS[:2], {"word": "x", "start": 5.5, "end": 6.0}], corrected="您好,请讲。什么事?"
    )

    assert speech.text == "您好请讲什么事"  # searched without punctuation
    assert [(u.text, round(u.start, 2), round(u.end, 2)) for u in speech.utterances] == [
        ("您好", 0.5, 1.6),
        ("请讲", 2.15, 3.25),
        ("什么事", 3.8, 5.45),
    ]
    [ask] = speech.find_all("请讲")
    assert (round(ask.start, 2), round(ask.end, 2)) == (2.15, 3.25)
    assert all(0.5 <= e.start <= e.end <= 6.0 for e in speech.find_all("什么"))


@pytest.mark.parametrize(
    "corrected",
    [
        "什么?再说一遍!",  # ASCII punctuation
        "什么？再说一遍！",  # full-width, as a Chinese input method types it
        "什么……再说一遍 ",  # ellipsis and trailing space
        "“什么”——再说一遍。",  # quotes and dash
    ],
)
def test_any_punctuation_in_a_correction_is_dropped_for_searching(corrected):
    speech = ChannelSpeech.from_words(1, WORDS, corrected=corrected)
    assert speech.text == "什么再说一遍"
    assert [u.text for u in speech.utterances] == ["什么", "再说一遍"]
    [hit] = speech.find_all("什么再说一遍")
    assert 0.5 <= hit.start < hit.end <= 4.7


def test_a_correction_without_any_timed_words_still_has_evidence():
    speech = ChannelSpeech.from_words(0, [], corrected="喂,你好")
    [hit] = speech.find_all("你好")
    assert hit.as_dict() == {"text": "你好", "start": 0.0, "end": 0.0, "channel": 0}


@pytest.mark.parametrize(
    ("phrase", "heard", "matched"),
    [
        ("幸福家园物业服务中心", "您好幸福佳园物业服务中心", "幸福佳园物业服务中心"),  # 佳 = 家 in pinyin
        ("很高兴为您服务", "我是王芳很高兴为你服务", "很高兴为你服务"),  # 你 ≈ 您
        ("您好", "你好幸福家园", "你好"),  # nin/ni: a near homophone
        ("重述", "请您重述一遍", "重述"),  # 重: zhong or chong
        ("王芳", "我是王方", "王方"),  # the same name, other characters
    ],
)
def test_homophones_and_near_homophones_are_heard_as_the_phrase(phrase, heard, matched):
    ratio, start, end = sounds_like(phrase, heard)
    assert ratio >= 0.75
    assert heard[start:end] == matched


@pytest.mark.parametrize(
    ("phrase", "heard"),
    [
        ("很高兴为您服务", "很抱歉让您久等了"),
        ("幸福家园物业服务中心", "阳光花园物业服务中心"),
        ("您好", "喂喂喂"),
        ("王芳", "我是李强"),
        ("物业服务中心", "物业"),  # too little of it
    ],
)
def test_a_clearly_different_phrase_does_not_match(phrase, heard):
    ratio, start, end = sounds_like(phrase, heard)
    assert ratio < 0.75
    assert (start, end) == (-1, -1)


def test_the_threshold_decides():
    ratio, start, _ = sounds_like("幸福家园", "幸福花园")  # one syllable of four is wrong
    assert ratio == pytest.approx(0.75) and start == 0
    assert sounds_like("幸福家园", "幸福花园", threshold=0.8)[1] == -1
