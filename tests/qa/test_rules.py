"""The etiquette rules E1–E8 on hand-made calls: timed words as Vosk gives them, or a person's corrected text.
Each rule passes a call that keeps the standard and fails one that breaks it, naming what is wrong and pointing
at the words (text, moment, channel) or the call's events."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ivr.qa.rules import (
    CallFacts,
    EventFact,
    answered_within_three_rings,
    apology_when_not_heard,
    caller_hung_up_first,
    no_forbidden_phrases,
    phrases,
    polite_words,
    read_back_before_goodbye,
    record_taken,
    standard_greeting,
)
from ivr.qa.speech import ChannelSpeech

PROPERTY = "幸福家园"
AGENT = "王芳"
SPAN = [{"word": "嗯", "start": 2.0, "end": 2.5}, {"word": "嗯", "start": 31.5, "end": 32.0}]  # 2–32 s
STAFF = 1


def timed(said: str, start: float = 1.0) -> list[dict[str, Any]]:
    """Vosk-style words: space-separated tokens 0.2 s per character with 0.05 s between, "|" a 1 s pause."""
    words, at = [], start
    for token in said.split():
        if token == "|":
            at += 1.0
            continue
        words.append({"word": token, "start": round(at, 2), "end": round(at + 0.2 * len(token), 2)})
        at += 0.2 * len(token) + 0.05
    return words


def call(
    corrected: str | None = None,
    *,
    words: list[dict[str, Any]] | None = None,
    agent_name: str | None = AGENT,
    **facts: Any,
) -> CallFacts:
    """A transferred, answered call; the staff channel from timed words or a corrected text over 2–32 s."""
    staff = None
    if words is not None or corrected is not None:
        staff = ChannelSpeech.from_words(STAFF, words if words is not None else SPAN, corrected)
    defaults: dict[str, Any] = {
        "property_name": PROPERTY,
        "agent_name": agent_name,
        "staff": staff,
        "caller": None,
        "transferred": True,
        "ring_seconds": 4.0,
    }
    return CallFacts(**{**defaults, **facts})


def texts(evidence: list[dict[str, Any]]) -> list[str]:
    return [item["text"] for item in evidence]


def assert_within(evidence: list[dict[str, Any]], start: float, end: float) -> None:
    assert evidence
    for item in evidence:
        assert item["channel"] == STAFF
        assert start <= item["start"] < item["end"] <= end, item


# E1 ───────────────────────────────────────────────────────────────────────────────────────────────────────────

RING_FACTS = [EventFact("开始响铃 +8613800000001", 10.2), EventFact("接听 +8613800000001", 14.2)]


@pytest.mark.parametrize(
    ("transferred", "ring_seconds", "answer", "note"),
    [
        (True, 4.0, "yes", "响铃4秒后接听(标准:约15秒内)"),
        (True, 15.0, "yes", "响铃15秒后接听(标准:约15秒内)"),  # three rings is the limit, not over it
        (True, 20.0, "no", "响铃20秒后接听(标准:约15秒内)"),
        (True, None, "no", "转接后无人接听"),
        (False, None, "na", "未转接人工"),
    ],
)
def test_e1_ring_time_of_the_transfer(transferred, ring_seconds, answer, note):
    finding = answered_within_three_rings(
        call(transferred=transferred, ring_seconds=ring_seconds, ring_facts=RING_FACTS)
    )
    assert (finding.answer, finding.note) == (answer, note)
    assert finding.evidence == [
        {"text": "开始响铃 +8613800000001", "at": 10.2, "channel": None},
        {"text": "接听 +8613800000001", "at": 14.2, "channel": None},
    ]


# E2 ───────────────────────────────────────────────────────────────────────────────────────────────────────────


def test_e2_the_standard_greeting_passes_with_each_part_as_evidence():
    words = timed("您好 幸福家园 物业 服务中心 | 我是 王芳 很高兴 为您 服务 | 请讲")
    finding = standard_greeting(call(words=words))

    assert (finding.answer, finding.note) == ("yes", "问候完整")
    assert texts(finding.evidence) == ["您好", "幸福家园物业服务中心", "王芳", "很高兴为您服务"]
    centre = finding.evidence[1]
    assert (centre["start"], centre["end"]) == (words[1]["start"], words[3]["end"])
    assert_within(finding.evidence, words[0]["start"], words[-2]["end"])


@pytest.mark.parametrize(
    ("said", "heard"),
    [
        ("您好,幸福佳园物业服务中心,我是王芳,很高兴为您服务。", "幸福佳园物业服务中心≈幸福家园物业服务中心"),
        ("您好,幸福家园物业服务中心,我是王芳,很高兴为你服务。", "很高兴为你服务≈很高兴为您服务"),
        ("你好,幸福家园物业服务中心,我是王芳,很高兴为您服务。", "你好≈您好"),
        ("您好,幸福家园物业服务中心,我是王方,很高兴为您服务。", "王方≈王芳"),
    ],
)
def test_e2_asr_homophones_still_pass_and_the_note_says_what_was_heard(said, heard):
    finding = standard_greeting(call(said))
    assert finding.answer == "yes"
    assert finding.note == f"问候完整(近音:{heard})"
    assert_within(finding.evidence, 2.0, 32.0)


@pytest.mark.parametrize(
    ("said", "missing"),
    [
        ("您好,我是王芳,很高兴为您服务。", "中心名称"),
        ("您好,物业服务中心,我是王芳,很高兴为您服务。", "中心名称"),
        ("您好,阳光花园物业服务中心,我是王芳,很高兴为您服务。", "中心名称"),  # another property's name
        ("您好,幸福家园物业服务中心,我是王芳,请讲。", "很高兴为您服务"),
        ("幸福家园物业服务中心,我是王芳,很高兴为您服务。", "您好"),
        ("您好,幸福家园物业服务中心,很高兴为您服务。", "姓名"),
        ("您好,幸福家园物业服务中心,我是李强,很高兴为您服务。", "姓名"),
    ],
)
def test_e2_a_greeting_missing_a_part_fails_naming_it(said, missing):
    finding = standard_greeting(call(said))
    assert finding.answer == "no"
    assert re.fullmatch(rf"问候缺少:{missing}\(最接近\d+%\)", finding.note), finding.note


def test_e2_the_own_name_is_not_asked_for_when_the_agent_is_unknown():
    finding = standard_greeting(call("您好,幸福家园物业服务中心,很高兴为您服务。", agent_name=None))
    assert (finding.answer, finding.note) == ("yes", "问候完整")
    assert texts(finding.evidence) == ["您好", "幸福家园物业服务中心", "很高兴为您服务"]


@pytest.mark.parametrize(
    ("said", "answer", "note"),
    [
        ("您好,这里是幸福家园物业服务中心,我是王芳,回访您反映的漏水问题。", "yes", "回拨问候完整"),
        ("您好,幸福家园物业服务中心,我是王芳,很高兴为您服务。", "yes", "回拨问候完整"),
        ("喂,我是物业的王芳,你家漏水修好了吗?", "no", "问候缺少:您好"),
        ("您好,这里是幸福家园物业服务中心,回访您反映的漏水问题。", "no", "问候缺少:姓名"),
    ],
)
def test_e2_a_call_back_is_held_to_the_outbound_greeting(said, answer, note):
    """Calling a resident back: 您好, the centre and one's name; 很高兴为您服务 is for answering a call."""
    finding = standard_greeting(call(said, call_back=True))
    assert finding.answer == answer and finding.note.startswith(note), finding.note
    inbound = standard_greeting(call("您好,这里是幸福家园物业服务中心,我是王芳,回访您反映的漏水问题。"))
    assert inbound.answer == "no" and "很高兴为您服务" in inbound.note


def test_e1_does_not_apply_to_a_call_back():
    finding = answered_within_three_rings(call(call_back=True, ring_seconds=None))
    assert (finding.answer, finding.note) == ("na", "值班人员回拨住户,无需接听")


def test_e2_a_greeting_said_after_other_talk_is_not_the_first_sentence():
    chatter = "喂喂听得到吗刚才信号不太好我这边正在处理另外一位业主的报修单子稍等一下好了现在可以了"
    assert len(chatter) >= 40
    late = standard_greeting(call(chatter + "。您好,幸福家园物业服务中心,我是王芳,很高兴为您服务。"))
    assert late.answer == "no"
    for part in ("您好", "中心名称", "姓名", "很高兴为您服务"):
        assert part in late.note

    first = standard_greeting(call("您好,幸福家园物业服务中心,我是王芳,很高兴为您服务。" + chatter))
    assert first.answer == "yes"


def test_e2_no_transcript_of_the_staff_channel_fails():
    assert standard_greeting(call()).answer == "no"
    assert standard_greeting(call()).note == "没有值班人员的语音转写"


# E3 ───────────────────────────────────────────────────────────────────────────────────────────────────────────

ASKS = {
    "room": ("请问您住几号楼哪个房间?", "房号", "几号楼"),
    "name": ("请问您贵姓?", "姓名", "贵姓"),
    "phone": ("请问怎样与您联系?", "联系方式", "怎样与您联系"),
    "matter": ("请问有什么可以帮您?", "事由", "什么可以帮您"),
}


def test_e3_room_name_phone_and_matter_asked_for():
    finding = record_taken(call("".join(sentence for sentence, _, _ in ASKS.values())))
    assert (finding.answer, finding.note) == ("yes", "房号、姓名、联系方式、事由均已询问或记录")
    assert sorted(texts(finding.evidence)) == sorted(heard for _, _, heard in ASKS.values())
    assert_within(finding.evidence, 2.0, 32.0)


@pytest.mark.parametrize("item", ASKS)
def test_e3_one_item_neither_asked_nor_on_the_ticket_fails_naming_it(item):
    said = "".join(sentence for key, (sentence, _, _) in ASKS.items() if key != item)
    finding = record_taken(call(said, record={key: False for key in ASKS}))
    assert (finding.answer, finding.note) == ("no", f"未询问或未记录:{ASKS[item][1]}")

    # Already on the ticket (the caller keyed the room in, the number came with the call): nothing to ask.
    on_ticket = record_taken(call(said, record={item: True}))
    assert on_ticket.answer == "yes"


def test_e3_nothing_asked_and_an_empty_ticket_names_all_four():
    finding = record_taken(call("好的。", record={}))
    assert (finding.answer, finding.note) == ("no", "未询问或未记录:房号、姓名、联系方式、事由")
    assert finding.evidence == []


# E4 ───────────────────────────────────────────────────────────────────────────────────────────────────────────


def test_e4_read_back_before_the_goodbye():
    words = timed("三号楼 漏水 | 跟您确认 一下 三号楼 二单元 五零一 厨房 漏水 对吗 | 好的 谢谢 再见")
    finding = read_back_before_goodbye(call(words=words))
    assert (finding.answer, finding.note) == ("yes", "道别前已复述确认")
    read_back, goodbye = finding.evidence
    assert read_back["text"] == "跟您确认" and read_back["start"] == words[2]["start"]
    assert goodbye["text"] == "再见" and (goodbye["start"], goodbye["end"]) == (words[-1]["start"], words[-1]["end"])
    assert read_back["end"] < goodbye["start"]


def test_e4_a_read_back_after_the_last_goodbye_is_too_late():
    words = timed("好的 再见 | 哦 对了 跟您确认 一下 三号楼")
    finding = read_back_before_goodbye(call(words=words))
    assert (finding.answer, finding.note) == ("no", "复述在道别之后")
    assert texts(finding.evidence) == ["跟您确认", "再见"]
    assert finding.evidence[1]["start"] < finding.evidence[0]["start"]


def test_e4_no_read_back_at_all():
    finding = read_back_before_goodbye(call("好的,我们马上安排。再见。"))
    assert (finding.answer, finding.note) == ("no", "没有复述确认记录信息")
    assert texts(finding.evidence) == ["再见"]
    assert_within(finding.evidence, 2.0, 32.0)


# E5 ───────────────────────────────────────────────────────────────────────────────────────────────────────────


def test_e5_polite_words_are_counted():
    finding = polite_words(call("您好,请问您贵姓?谢谢,请稍等。谢谢您,再见。"))
    assert finding.answer == "yes"
    assert finding.note == "您好×1,对不起×0,谢谢×2,再见×1,请×2(用到4个,标准4个)"
    assert texts(finding.evidence) == ["您好", "请", "谢谢", "再见"]  # each word's first use, in time order
    assert_within(finding.evidence, 2.0, 32.0)


def test_e5_fewer_than_the_standard_needs_fails():
    assert phrases()["polite_words_needed"] == 4
    finding = polite_words(call("喂,你说。好,知道了,再见。"))
    assert finding.answer == "no"
    assert finding.note == "您好×0,对不起×0,谢谢×0,再见×1,请×0(用到1个,标准4个)"


# E6 ───────────────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("ended_by", "what", "answer", "note"),
    [
        ("caller", "来电人挂断", "yes", "来电人先挂断"),
        ("staff", "值班人员挂断(来电人仍在线)", "no", "值班人员先挂断"),
        (None, None, "na", "无法判断哪一方先挂断"),
    ],
)
def test_e6_who_ended_the_call(ended_by, what, answer, note):
    fact = EventFact(what, 95.0) if what else None
    finding = caller_hung_up_first(call(ended_by=ended_by, ended_fact=fact))
    assert (finding.answer, finding.note) == (answer, note)
    assert finding.evidence == ([{"text": what, "at": 95.0, "channel": None}] if what else [])


# E7 ───────────────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("said", "bare"),
    [
        ("请讲 | 什么 | 哦 好的", "什么"),
        ("请讲 | 你说什么 | 好的", "你说什么"),
        ("嗯 | 再说 一遍", "再说一遍"),
        ("信号 不好 听不清 | 好的", "信号不好听不清"),
        ("请您 再说 一遍", "请您再说一遍"),  # asked politely, but the standard's apology is 对不起
    ],
)
def test_e7_asking_again_without_an_apology_fails_with_the_utterance(said, bare):
    words = timed(said)
    finding = apology_when_not_heard(call(words=words))
    assert (finding.answer, finding.note) == ("no", f"听不清时未使用致歉用语:{bare}")
    [moment] = finding.evidence
    assert moment["text"] == bare
    starts = [w["start"] for w in words if bare.startswith(w["word"])]
    assert moment["start"] in starts
    assert_within(finding.evidence, words[0]["start"], words[-1]["end"])


@pytest.mark.parametrize(
    "said",
    [
        "对不起,先生,您刚才讲的问题我没听清楚,请您重述一遍好吗?",
        "对不起,先生(女士),您刚才讲的问题我没听清楚,请您重述一遍好吗?",
        "对不起!请您再说一遍。",
    ],
)
def test_e7_the_apology_form_passes(said):
    finding = apology_when_not_heard(call("您好,请讲。" + said + "好的,明白了。"))
    assert (finding.answer, finding.note) == ("yes", "听不清时使用了规范用语")
    [moment] = finding.evidence
    assert moment["text"].startswith("对不起") and moment["text"].endswith(("好吗", "再说一遍"))
    assert_within(finding.evidence, 2.0, 32.0)


def test_e7_the_apology_form_from_timed_words():
    words = timed("对不起 先生 您 刚才 讲的 问题 我 没 听清楚 请您 重述 一遍 好吗")
    finding = apology_when_not_heard(call(words=words))
    assert finding.answer == "yes"
    assert finding.evidence[0]["start"] == words[0]["start"]
    assert finding.evidence[0]["end"] == words[-1]["end"]


def test_e7_one_bare_ask_fails_the_call_even_after_a_polite_one():
    finding = apology_when_not_heard(call("对不起,我没听清,请您再说一遍好吗?好的。请问房号?什么?"))
    assert finding.answer == "no"
    assert texts(finding.evidence) == ["什么"]


@pytest.mark.parametrize(
    "said",
    [
        "您好,请问有什么可以帮您?",
        "请问您叫什么名字?什么时候发现漏水的?",
        "没什么问题了,谢谢,再见。",
    ],
)
def test_e7_ordinary_sentences_with_shenme_are_not_asking_again(said):
    finding = apology_when_not_heard(call(said))
    assert (finding.answer, finding.note, finding.evidence) == ("na", "通话中没有听不清的情况", [])


# E8 ───────────────────────────────────────────────────────────────────────────────────────────────────────────

# The standard's table (STANDARD.md, 接电话时应答的用语规范), copied as the reviewers read it.
STANDARD_TABLE = [
    ("等着!", "请稍等一会儿。"),
    ("他不在这儿。", "他在另一处办公室,请您直接给他打电话,电话号码是……"),
    ("他现在不在。", "对不起,他不在,如果您有急事,我能否代为转告? / 请您过一会儿再来电话。"),
    ("你是谁?", "对不起,请问您是哪一位?"),
    ("您有什么事?", "请问您有何贵干?"),
    ("你说完了吗?", "您还有其他事吗?"),
    ("什么?再说一遍!", "对不起!请您再说一遍。"),
    ("你的声音太小了", "对不起,我听不大清楚。"),
]


def without_punctuation(text: str) -> str:
    return re.sub(r"[,。!?、;:…/ ]", "", text)


def test_e8_the_word_list_has_every_row_of_the_standard_table():
    rows = {rule["say_not"]: rule["say"] for rule in phrases()["forbidden"]}
    assert rows == {without_punctuation(say_not): say for say_not, say in STANDARD_TABLE}


@pytest.mark.parametrize(("say_not", "say"), STANDARD_TABLE)
def test_e8_each_forbidden_phrase_is_flagged_with_its_moment_and_the_standard_phrase(say_not, say):
    finding = no_forbidden_phrases(call(f"嗯,好的。{say_not}"))
    assert finding.answer == "no"
    [hit] = finding.evidence
    assert (hit["text"], hit["say_instead"]) == (without_punctuation(say_not), say)
    assert finding.note == f"使用了禁用语:{hit['text']}"
    assert_within(finding.evidence, 2.0, 32.0)


@pytest.mark.parametrize(
    ("said", "flagged"),
    [
        ("您是谁?", "您是谁"),
        ("他不在这里。", "他不在这里"),
        ("你有什么事?", "你有什么事"),
        ("你声音太小了,听不见。", "你声音太小"),
    ],
)
def test_e8_the_same_words_as_asr_writes_them_are_flagged(said, flagged):
    finding = no_forbidden_phrases(call(said))
    assert finding.answer == "no"
    assert texts(finding.evidence) == [flagged]


def test_e8_several_forbidden_phrases_in_one_call_each_at_its_moment():
    words = timed("喂 | 什么 再说 一遍 | 你 是 谁 | 他 现在 不在 你 等着")
    finding = no_forbidden_phrases(call(words=words))
    assert finding.answer == "no"
    assert finding.note == "使用了禁用语:什么再说一遍、你是谁、他现在不在、等着"
    by_text = {hit["text"]: hit for hit in finding.evidence}
    start_of = {w["word"]: w for w in words}
    assert (by_text["什么再说一遍"]["start"], by_text["什么再说一遍"]["end"]) == (
        start_of["什么"]["start"],
        start_of["一遍"]["end"],
    )
    assert (by_text["等着"]["start"], by_text["等着"]["end"]) == (start_of["等着"]["start"], start_of["等着"]["end"])
    assert by_text["你是谁"]["say_instead"] == "对不起,请问您是哪一位?"
    assert by_text["他现在不在"]["say_instead"].startswith("对不起,他不在")
    assert [hit["start"] for hit in finding.evidence] == sorted(hit["start"] for hit in finding.evidence)
    assert_within(finding.evidence, words[0]["start"], words[-1]["end"])


@pytest.mark.parametrize(
    "said",
    [
        "您好,幸福家园物业服务中心,我是王芳,很高兴为您服务。请问有什么可以帮您?请稍等一会儿。",
        "对不起,请问您是哪一位?请问您有何贵干?您还有其他事吗?对不起!请您再说一遍。",
        "对不起,他不在,如果您有急事,我能否代为转告?对不起,我听不大清楚。",
    ],
)
def test_e8_the_standard_phrases_themselves_pass(said):
    finding = no_forbidden_phrases(call(said))
    assert (finding.answer, finding.note, finding.evidence) == ("yes", "未发现禁用语", [])


def test_e7_and_e8_have_nothing_to_judge_without_a_transcript():
    assert apology_when_not_heard(call()).answer == "na"
    assert no_forbidden_phrases(call()).answer == "na"


@pytest.mark.parametrize(
    ("words", "answer"),
    [
        ("师傅 在 楼下 等着 您", "yes"),  # an ordinary sentence, not the command
        ("维修 师傅 马上 到 | 你 等着", "no"),  # the bare command ends what was said
        ("等着", "no"),
    ],
)
def test_e8_only_the_bare_command_dengzhe_is_forbidden(words, answer):
    finding = no_forbidden_phrases(call(words=timed(words)))
    assert finding.answer == answer
    assert texts(finding.evidence) == ([] if answer == "yes" else ["等着"])
