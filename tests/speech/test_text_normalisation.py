"""Chinese transcript clean-up: token joining and address/room/phone numbers."""

from __future__ import annotations

import pytest

from ivr.speech.text import join_tokens, normalise_numbers, normalise_transcript, numeral_to_digits


@pytest.mark.parametrize(
    ("raw", "joined"),
    [
        ("我 家 漏水 了", "我家漏水了"),
        ("wifi password", "wifi password"),
        ("A 座 三 楼", "A座三楼"),
        ("房号 B 1203", "房号B 1203"),
        ("  多余   空格  ", "多余空格"),
        ("", ""),
        ("   ", ""),
        ("您好 , 物业", "您好,物业"),
        ("您好 ， 物业", "您好，物业"),
        ("안녕 하세요", "안녕 하세요"),  # Korean writes spaces between words: keep them
    ],
)
def test_join_tokens(raw: str, joined: str) -> None:
    assert join_tokens(raw) == joined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("三号楼二单元五零一室", "3号楼2单元501室"),
        ("五百零一室", "501室"),
        ("电话幺三九幺二三四五六七八", "电话13912345678"),
        ("电话号码是幺三八零零零零一二三四", "电话号码是13800001234"),
        ("手机幺八六零零零零零零零零", "手机18600000000"),
        ("尾号六六八八", "尾号6688"),
        ("十一号楼", "11号楼"),
        ("二十三栋", "23栋"),
        ("七幢", "7幢"),
        ("两单元", "2单元"),
        ("一千零一室", "1001室"),
        ("两千零五室", "2005室"),
        ("一零零一室", "1001室"),
        ("三楼", "3楼"),
        ("五零一房", "501房"),
        ("房间五零一", "房间501"),
        ("房号一二零三", "房号1203"),
        ("零号楼", "0号楼"),
        ("〇三号", "03号"),
        ("第一单元", "第1单元"),
    ],
)
def test_numbers_next_to_markers_become_digits(text: str, expected: str) -> None:
    assert normalise_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "我想问一下",
        "等一点再来",
        "水一直在漏",
        "一楼一直漏水".replace("一楼", "楼下"),
        "万一楼上漏水怎么办",
        "统一号码",
        "电话一直打不通",  # 电话 + a single 一 is speech, not a phone number
        "厨房一直漏水",
        "厨房一点水",
        "一千零一夜",
        "三番五次",
        "几号楼",
        "十几号楼",
    ],
)
def test_other_numerals_are_left_alone(text: str) -> None:
    assert normalise_numbers(text) == text


def test_numbers_in_a_sentence() -> None:
    text = "我是三号楼二单元五零一室的业主,厨房一直漏水,电话幺三九幺二三四五六七八"
    assert normalise_numbers(text) == "我是3号楼2单元501室的业主,厨房一直漏水,电话13912345678"


def test_floor_and_leak_in_one_message() -> None:
    assert normalise_numbers("一楼一直漏水") == "1楼一直漏水"


def test_digits_already_written_are_untouched() -> None:
    assert normalise_numbers("3号楼2单元501室") == "3号楼2单元501室"


def test_malformed_positional_numeral_is_left_alone() -> None:
    assert normalise_numbers("十十室") == "十十室"


@pytest.mark.parametrize(
    ("numeral", "digits"),
    [("五零一", "501"), ("五百零一", "501"), ("幺三九", "139"), ("两百", "200"), ("十", "10"), ("零", "0")],
)
def test_numeral_to_digits(numeral: str, digits: str) -> None:
    assert numeral_to_digits(numeral) == digits


@pytest.mark.parametrize("numeral", ["", "一下", "十十", "abc"])
def test_numeral_to_digits_refuses_non_numbers(numeral: str) -> None:
    assert numeral_to_digits(numeral) is None


def test_normalise_transcript_joins_then_converts() -> None:
    raw = "您好 我 住 三 号 楼 二 单元 五 零 一 室 厨房 漏水 了 电话 幺 三 九 幺 二 三 四 五 六 七 八"
    assert normalise_transcript(raw) == "您好我住3号楼2单元501室厨房漏水了电话13912345678"


def test_normalise_transcript_keeps_latin_spacing() -> None:
    assert normalise_transcript("B 座 wifi 不 好 用") == "B座wifi不好用"
    assert normalise_transcript("app 登录 error code 403") == "app登录error code 403"


def test_normalise_transcript_of_nothing_is_empty() -> None:
    assert normalise_transcript("") == ""
