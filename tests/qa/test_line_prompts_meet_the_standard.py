"""The phone line's own sentences (prompts.toml) judged by the same rules QA applies to the staff: the greeting
(E2), the 十字礼貌用语 (E5), the apology when the caller was not heard (E7) and no 禁用语 (E8)."""

from __future__ import annotations

import pytest

from ivr.qa.rules import (
    CallFacts,
    apology_when_not_heard,
    no_forbidden_phrases,
    phrases,
    standard_greeting,
)
from ivr.qa.speech import ChannelSpeech
from ivr.telephony.prompts import all_prompts

PROPERTY = "幸福家园"
SAMPLES = {
    "property_name": PROPERTY,
    "room_spoken": "3栋2单元501室",
    "phone_tail_spoken": "1234",
    "transcript": "厨房水管漏水",
    "ticket_number_spoken": "20261127001",
    "what_happens_next": "工作人员会尽快与您联系。",
    "fee_type": "物业费",
    "period": "2026年11月",
    "amount": "300元",
    "due_date": "12月10日",
    "total": "300元",
}
# The prompts that ask again because nothing was heard: they must use the apology form (E7).
NOT_HEARD = ("no_input", "message_empty")


class _Samples(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "示例"  # a placeholder added later still gets a neutral value


def filled(prompts: dict[str, str]) -> dict[str, str]:
    """Every prompt as the caller hears it."""
    return {key: text.format_map(_Samples(SAMPLES)) for key, text in prompts.items()}


def as_said(text: str) -> CallFacts:
    """A prompt as if the person on the line had said it (the line has no name of its own)."""
    speech = ChannelSpeech.from_words(1, [], corrected=text)
    return CallFacts(
        property_name=PROPERTY, agent_name=None, staff=speech, caller=None, transferred=True, ring_seconds=0.0
    )


def problems(prompts: dict[str, str]) -> list[str]:
    """What in these prompts breaks the standard, one line per problem."""
    found = []
    said = filled(prompts)
    greeting = standard_greeting(as_said(said["greeting"]))
    # The line's words are written, not heard: a near-homophone (你好 for 您好) is a mistake here.
    if greeting.answer != "yes" or "近音" in greeting.note:
        found.append(f"greeting: E2 {greeting.note}")
    for key, text in said.items():
        forbidden = no_forbidden_phrases(as_said(text))
        found += [f"{key}: E8 {hit['text']} → {hit['say_instead']}" for hit in forbidden.evidence]
        not_heard = apology_when_not_heard(as_said(text))
        if not_heard.answer == "no" or (key in NOT_HEARD and not_heard.answer != "yes"):
            found.append(f"{key}: E7 {not_heard.note}")
    everything = as_said("。".join(said.values())).staff
    assert everything is not None
    for word in phrases()["polite_words"]:
        if not any(everything.find_all(word)):
            found.append(f"all prompts: E5 {word} never used")
    return found


def test_the_lines_prompts_meet_the_standard():
    assert problems(all_prompts()) == []


def test_the_greeting_is_the_standard_greeting_in_full():
    finding = standard_greeting(as_said(filled(all_prompts())["greeting"]))
    assert (finding.answer, finding.note) == ("yes", "问候完整")
    assert [e["text"] for e in finding.evidence] == ["您好", f"{PROPERTY}物业服务中心", "很高兴为您服务"]


def test_the_not_heard_prompts_apologise():
    for key in NOT_HEARD:
        finding = apology_when_not_heard(as_said(filled(all_prompts())[key]))
        assert finding.answer == "yes", key
        assert finding.evidence[0]["text"].startswith("对不起")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"connecting_person": "等着!"}, "connecting_person: E8 等着 → 请稍等一会儿。"),
        ({"nobody_available": "他现在不在。请在提示音后留言。"}, "nobody_available: E8 他现在不在 → 对不起,他不在"),
        ({"greeting": "等着!"}, "greeting: E2 问候缺少:您好"),
        ({"greeting": "您好,物业服务中心,很高兴为您服务。"}, "greeting: E2 问候缺少:中心名称"),
        ({"greeting": "您好,{property_name}物业服务中心,24小时服务热线。"}, "greeting: E2 问候缺少:很高兴为您服务"),
        ({"greeting": "你好,{property_name}物业服务中心,很高兴为您服务。"}, "greeting: E2 问候完整(近音:你好≈您好)"),
        ({"no_input": "什么?再说一遍!"}, "no_input: E7 听不清时未使用致歉用语:什么"),
        ({"no_input": "什么?再说一遍!"}, "no_input: E8 什么再说一遍 → 对不起!请您再说一遍。"),
        ({"message_empty": "没有录到您的声音,请您在提示音后再说一遍好吗?"}, "message_empty: E7 听不清时未使用致歉用语"),
        ({"no_input": "请您再按一次。"}, "no_input: E7 通话中没有听不清的情况"),
        (
            {key: text.replace("再见", "") for key, text in all_prompts().items() if "再见" in text},
            "all prompts: E5 再见 never used",
        ),
    ],
)
def test_a_prompt_that_breaks_the_standard_is_caught(changes, problem):
    edited = {**all_prompts(), **changes}
    assert any(found.startswith(problem) for found in problems(edited)), problems(edited)
