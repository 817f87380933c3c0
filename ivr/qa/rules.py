"""The etiquette rules (E1–E8). Each looks at the facts of one transferred call and suggests an answer
— yes, no or N/A — with the evidence: the words and the moment in the recording, or the call's events."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ivr.qa.speech import ChannelSpeech, Evidence, sounds_like
from ivr.standard import THREE_RINGS_SECONDS

Answer = Literal["yes", "no", "na"]
PHRASES_FILE = Path(__file__).with_name("phrases.toml")
GREETING_WINDOW_CHARS = 40  # the first sentence: the greeting is said before anything else
PHRASE_THRESHOLD = 0.75  # how close a set phrase must sound (see speech.sounds_like)
NAME_THRESHOLD = 0.8  # a name: a homophone (佳 for 家) passes, one wrong syllable in four does not
APOLOGY_REACH_CHARS = 24  # 对不起 this close before asking again belongs to the same sentence


@cache
def phrases() -> dict[str, Any]:
    with PHRASES_FILE.open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True)
class EventFact:
    """Something the call's events say, with when it happened (seconds since the call started)."""

    what: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.what, "at": round(self.at, 1), "channel": None}


@dataclass
class CallFacts:
    """Everything the rules may look at for one call."""

    property_name: str
    agent_name: str | None
    staff: ChannelSpeech | None  # the person who answered the transfer (second channel)
    caller: ChannelSpeech | None
    transferred: bool
    ring_seconds: float | None  # from ringing to answered; None when nobody answered
    ring_facts: list[EventFact] = field(default_factory=list)
    ended_by: Literal["caller", "staff"] | None = None
    ended_fact: EventFact | None = None
    record: dict[str, bool] = field(default_factory=dict)  # room/name/phone/matter present on the ticket
    # A staff call-back (回拨): the staff member called the resident, so nothing rang for them to answer (E1)
    # and the greeting is the outbound one (E2: 您好,这里是…物业服务中心, their name).
    call_back: bool = False


@dataclass
class Finding:
    answer: Answer
    note: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "note": self.note, "evidence": self.evidence}


def _ev(items: list[Evidence]) -> list[dict[str, Any]]:
    return [item.as_dict() for item in items]


def answered_within_three_rings(facts: CallFacts) -> Finding:
    """E1: ring time of the transfer from the Dial's status events."""
    events = [fact.as_dict() for fact in facts.ring_facts]
    if facts.call_back:
        return Finding("na", "值班人员回拨住户,无需接听", events)
    if not facts.transferred:
        return Finding("na", "未转接人工", events)
    if facts.ring_seconds is None:
        return Finding("no", "转接后无人接听", events)
    verdict: Answer = "yes" if facts.ring_seconds <= THREE_RINGS_SECONDS else "no"
    return Finding(verdict, f"响铃{facts.ring_seconds:.0f}秒后接听(标准:约{THREE_RINGS_SECONDS:.0f}秒内)", events)


def standard_greeting(facts: CallFacts) -> Finding:
    """E2: the first sentence has 您好, the centre's name, the staff member's name and 很高兴为您服务 —
    judged by how close it sounds, so ASR errors do not fail a good greeting."""
    if facts.staff is None or not facts.staff.text:
        return Finding("no", "没有值班人员的语音转写", [])
    centre = f"{facts.property_name}物业服务中心"
    wanted = [("您好", "您好", PHRASE_THRESHOLD), ("中心名称", centre, PHRASE_THRESHOLD)]
    if not facts.call_back:  # calling a resident: 您好,这里是…物业服务中心,我是…, without 很高兴为您服务
        wanted.append(("很高兴为您服务", "很高兴为您服务", PHRASE_THRESHOLD))
    if facts.property_name:
        # 物业服务中心 alone is most of the centre's name: the property's own name must be there too.
        wanted.append(("中心名称", facts.property_name, NAME_THRESHOLD))
    if facts.agent_name:
        wanted.append(("姓名", facts.agent_name, NAME_THRESHOLD))
    # The first sentence: the standard greeting's length, or GREETING_WINDOW_CHARS when that is longer.
    longest = len("您好这里是" + centre + "我是" + (facts.agent_name or "") + "很高兴为您服务")
    opening = facts.staff.text[: max(GREETING_WINDOW_CHARS, longest + 8)]
    found: list[Evidence] = []
    missing: dict[str, float] = {}
    near: list[str] = []
    for label, phrase, threshold in wanted:
        ratio, start, end = sounds_like(phrase, opening, threshold)
        if start < 0:
            missing[label] = min(ratio, missing.get(label, 1.0))
        elif phrase != facts.property_name:  # the property's name is shown within the centre's
            found.append(facts.staff.evidence(start, end))
            if opening[start:end] != phrase:
                near.append(f"{opening[start:end]}≈{phrase}")
    if missing:
        return Finding(
            "no",
            "问候缺少:" + "、".join(f"{label}(最接近{ratio:.0%})" for label, ratio in missing.items()),
            _ev(sorted(found, key=lambda e: e.start)),
        )
    complete = "回拨问候完整" if facts.call_back else "问候完整"
    return Finding(
        "yes", complete + (f"(近音:{'、'.join(near)})" if near else ""), _ev(sorted(found, key=lambda e: e.start))
    )


def record_taken(facts: CallFacts) -> Finding:
    """E3: room, name, phone and matter asked for by the staff member or present on the ticket."""
    asks: dict[str, list[str]] = phrases()["record_asks"]
    labels = {"room": "房号", "name": "姓名", "phone": "联系方式", "matter": "事由"}
    evidence, missing = [], []
    for item, words in asks.items():
        heard = [hit for word in words for hit in (facts.staff.find_all(word) if facts.staff else [])]
        if heard:
            evidence.append(heard[0])
        elif not facts.record.get(item):
            missing.append(labels[item])
    if missing:
        return Finding("no", "未询问或未记录:" + "、".join(missing), _ev(evidence))
    return Finding("yes", "房号、姓名、联系方式、事由均已询问或记录", _ev(evidence))


def read_back_before_goodbye(facts: CallFacts) -> Finding:
    """E4: a read-back (复述 / 跟您确认 …) before the staff member's goodbye."""
    if facts.staff is None:
        return Finding("no", "没有值班人员的语音转写", [])
    read_backs = sorted(
        (hit for word in phrases()["read_back"] for hit in facts.staff.find_all(word)), key=lambda e: e.start
    )
    goodbyes = list(facts.staff.find_all("再见"))
    if not read_backs:
        return Finding("no", "没有复述确认记录信息", _ev(goodbyes[-1:]))
    if goodbyes and read_backs[0].start > goodbyes[-1].start:
        return Finding("no", "复述在道别之后", _ev([read_backs[0], goodbyes[-1]]))
    return Finding("yes", "道别前已复述确认", _ev(read_backs[:1] + goodbyes[-1:]))


def polite_words(facts: CallFacts) -> Finding:
    """E5: the 十字礼貌用语, counted; passes when enough of the five are used."""
    if facts.staff is None:
        return Finding("no", "没有值班人员的语音转写", [])
    counts: dict[str, int] = {}
    evidence: list[Evidence] = []
    for word in phrases()["polite_words"]:
        hits = list(facts.staff.find_all(word))
        counts[word] = len(hits)
        evidence += hits[:1]
    used = sum(1 for n in counts.values() if n)
    needed = int(phrases()["polite_words_needed"])
    note = ",".join(f"{word}×{n}" for word, n in counts.items())
    return Finding(
        "yes" if used >= needed else "no",
        f"{note}(用到{used}个,标准{needed}个)",
        _ev(sorted(evidence, key=lambda e: e.start)),
    )


def caller_hung_up_first(facts: CallFacts) -> Finding:
    """E6: which side ended the call, from the Dial's action."""
    evidence = [facts.ended_fact.as_dict()] if facts.ended_fact else []
    if facts.ended_by is None:
        return Finding("na", "无法判断哪一方先挂断", evidence)
    if facts.ended_by == "caller":
        return Finding("yes", "住户先挂断" if facts.call_back else "来电人先挂断", evidence)
    return Finding("no", "值班人员先挂断", evidence)


def apology_when_not_heard(facts: CallFacts) -> Finding:
    """E7: when the staff member did not hear, the apology form (对不起…请您重述一遍好吗?) — not a bare
    什么? or 再说一遍. Ordinary sentences with 什么 in them (有什么可以帮您) are not asking again."""
    if facts.staff is None:
        return Finding("na", "没有值班人员的语音转写", [])
    words = phrases()
    speech = facts.staff
    moments: list[tuple[int, int, bool]] = []  # character span, apologised
    for utterance in speech.utterances:
        if utterance.text in words["not_heard_utterances"]:
            moments.append((utterance.first, utterance.last, False))
    for ask in words["not_heard_asks"]:
        for at in speech.positions(ask):
            said_in = speech.utterance_at(at)
            first, last = (said_in.first, max(said_in.last, at + len(ask))) if said_in else (at, at + len(ask))
            apology = max(
                (speech.text.rfind(word, max(0, at - APOLOGY_REACH_CHARS), at) for word in words["not_heard_apology"]),
                default=-1,
            )
            moments.append((apology, last, True) if apology >= 0 else (first, last, False))
    merged: list[tuple[int, int, bool]] = []
    for first, last, apologised in sorted(moments):
        if merged and first < merged[-1][1]:  # one sentence: apologised only if every part of it was
            previous = merged.pop()
            first, last, apologised = previous[0], max(previous[1], last), previous[2] and apologised
        merged.append((first, last, apologised))
    bare = [speech.evidence(first, last) for first, last, apologised in merged if not apologised]
    polite = [speech.evidence(first, last) for first, last, apologised in merged if apologised]
    if bare:
        return Finding("no", "听不清时未使用致歉用语:" + "、".join(e.text for e in bare), _ev(bare))
    if polite:
        return Finding("yes", "听不清时使用了规范用语", _ev(polite))
    return Finding("na", "通话中没有听不清的情况", [])


def no_forbidden_phrases(facts: CallFacts) -> Finding:
    """E8: every forbidden phrase with its moment and the standard phrase to use instead."""
    if facts.staff is None:
        return Finding("na", "没有值班人员的语音转写", [])
    candidates = [
        (heard, rule["say"], bool(rule.get("ends_utterance")))
        for rule in phrases()["forbidden"]
        for heard in (rule["say_not"], *rule.get("also", []))
    ]
    taken: list[tuple[int, int]] = []
    hits = []
    for heard, say, ends_utterance in sorted(candidates, key=lambda item: -len(item[0])):  # longest wording first
        for start in facts.staff.positions(heard):
            end = start + len(heard)
            if any(start < other_end and other_start < end for other_start, other_end in taken):
                continue
            utterance = facts.staff.utterance_at(start)
            if ends_utterance and utterance is not None and end < utterance.last:
                continue
            taken.append((start, end))
            hits.append((start, {**facts.staff.evidence(start, end).as_dict(), "say_instead": say}))
    evidence = [hit for _, hit in sorted(hits, key=lambda item: item[0])]
    if evidence:
        return Finding("no", "使用了禁用语:" + "、".join(h["text"] for h in evidence), evidence)
    return Finding("yes", "未发现禁用语", [])


RULES: dict[str, Callable[[CallFacts], Finding]] = {
    rule.__name__: rule
    for rule in (
        answered_within_three_rings,
        standard_greeting,
        record_taken,
        read_back_before_goodbye,
        polite_words,
        caller_hung_up_first,
        apology_when_not_heard,
        no_forbidden_phrases,
    )
}
