"""Urgency triage by keywords."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.speech.triage import (
    DEFAULT_KEYWORDS_PATH,
    TriageKeywordsError,
    TriageRule,
    load_keywords,
    parse_keywords,
    triage,
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("我家厨房漏水了", "跑水"),
        ("楼上跑水了,快来人", "跑水"),
        ("水管爆了", "跑水"),
        ("楼道里有燃气味", "燃气泄漏"),
        ("闻到煤气味", "燃气泄漏"),
        ("三楼着火了", "火警"),
        ("地下室在冒烟", "火警"),
        ("电梯困人了", "电梯困人"),
        ("我被困在电梯里", "电梯困人"),
        ("整栋楼停电了", "断电"),
        ("门口有人受伤", "人身安全"),
        ("有个老人晕倒了", "人身安全"),
        ("家里被盗窃了", "盗窃"),
        ("看到小偷在撬门", "盗窃"),
    ],
)
def test_urgent_messages_are_flagged_with_their_reason(text: str, reason: str) -> None:
    result = triage(text)
    assert result.urgent
    assert reason in result.reasons


@pytest.mark.parametrize("text", ["我想问一下物业费怎么交", "水费的发票在哪里开", "小区绿化什么时候修剪", ""])
def test_ordinary_messages_are_not_urgent(text: str) -> None:
    result = triage(text)
    assert not result.urgent
    assert result.reasons == []
    assert result.matched == []


def test_raw_vosk_tokens_match_across_spaces() -> None:
    result = triage("水管 爆 了 楼下 都 淹 了")
    assert result.urgent
    assert result.matched == ["水管爆"]


def test_reasons_are_distinct_and_matches_all_listed() -> None:
    result = triage("厨房漏水,现在跑水到楼下,还停电了")
    assert result.matched == ["漏水", "跑水", "停电"]
    assert result.reasons == ["跑水", "断电"]


def test_the_shipped_file_covers_the_standards_emergencies() -> None:
    keywords = {rule.keyword for rule in load_keywords()}
    required = {"漏水", "跑水", "水管爆", "爆管", "燃气", "煤气", "着火", "起火", "冒烟", "电梯困人", "困在电梯",
                "停电", "有人受伤", "晕倒", "盗窃", "小偷"}  # fmt: skip
    assert required <= keywords
    assert DEFAULT_KEYWORDS_PATH.name == "triage_keywords.txt"


def test_file_format_comments_reasons_and_defaults() -> None:
    rules = parse_keywords("# a comment\n\n漏水\t跑水\n  小偷  \n冒 烟\t火警\n")
    assert rules == (TriageRule("漏水", "跑水"), TriageRule("小偷", "小偷"), TriageRule("冒烟", "火警"))


def test_a_custom_keywords_file(tmp_path: Path) -> None:
    path = tmp_path / "keywords.txt"
    path.write_text("# property-specific\n水箱溢出\t跑水\n", encoding="utf-8")
    assert triage("楼顶水箱溢出了", keywords_path=path).reasons == ["跑水"]
    assert not triage("厨房漏水了", keywords_path=path).urgent


def test_the_file_is_read_once(tmp_path: Path) -> None:
    path = tmp_path / "keywords.txt"
    path.write_text("漏水\n", encoding="utf-8")
    assert triage("漏水", keywords_path=path).urgent
    path.write_text("小偷\n", encoding="utf-8")
    assert triage("漏水", keywords_path=path).urgent  # still the first version
    load_keywords.cache_clear()
    assert not triage("漏水", keywords_path=path).urgent


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "keywords.txt"
    path.write_text("漏水\n停电\t断电\t多余\n", encoding="utf-8")
    with pytest.raises(TriageKeywordsError, match=r"keywords\.txt:2: expected"):
        triage("漏水", keywords_path=path)


def test_empty_keyword_is_refused() -> None:
    with pytest.raises(TriageKeywordsError, match="keywords:1: the keyword is empty"):
        parse_keywords("\t跑水\n")


def test_missing_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(TriageKeywordsError, match="cannot read triage keywords"):
        triage("漏水", keywords_path=tmp_path / "nope.txt")
