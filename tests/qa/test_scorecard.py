"""The scorecard form as data: the company's default form, forms that are refused, and how answers (the
system's suggestions, a reviewer's overrides) become a score."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.qa.rules import RULES
from ivr.qa.scorecard import Form, FormError, Question, Section, effective_answers, load_form, score

QUESTION = """
[[sections.questions]]
id = "{id}"
text = "问题 {id}"
points = {points}
rule = "{rule}"
"""


def write_form(tmp_path: Path, *questions: tuple[str, str, float]) -> Path:
    body = 'name = "测试表"\nversion = 3\n\n[[sections]]\ntitle = "一"\n'
    body += "".join(QUESTION.format(id=qid, rule=rule, points=points) for qid, rule, points in questions)
    path = tmp_path / "form.toml"
    path.write_text(body, encoding="utf-8")
    return path


def form_of(*questions: Question) -> Form:
    return Form("测试表", 1, (Section("一", questions),))


def test_the_default_form_has_the_eight_rules_worth_a_hundred_points():
    form = load_form()
    assert form.name == "电话接听规范"
    assert [q.id for q in form.questions] == [f"E{n}" for n in range(1, 9)]
    assert sum(q.points for q in form.questions) == 100
    assert {q.rule for q in form.questions} == set(RULES)  # every rule is asked once
    assert [q.id for q in form.questions if q.critical] == ["E8"]


def test_a_well_formed_file_loads(tmp_path):
    form = load_form(write_form(tmp_path, ("A", "standard_greeting", 60), ("B", "no_forbidden_phrases", 40)))
    assert (form.name, form.version) == ("测试表", 3)
    assert [(q.id, q.rule, q.points, q.critical) for q in form.questions] == [
        ("A", "standard_greeting", 60.0, False),
        ("B", "no_forbidden_phrases", 40.0, False),
    ]


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ((("A", "standard_greeting", 50), ("B", "ask_for_a_tip", 50)), "question B names unknown rule 'ask_for_a_tip'"),
        ((("A", "standard_greeting", 50), ("A", "polite_words", 50)), "question id A appears twice"),
        ((), "the form has no questions"),
        ((("A", "standard_greeting", -5),), "question A has negative points"),
    ],
)
def test_a_form_that_cannot_be_used_is_refused(tmp_path, questions, message):
    path = write_form(tmp_path, *questions)
    with pytest.raises(FormError) as refused:
        load_form(path)
    assert str(refused.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "表"\nversion = 1\n[[sections]]\ntitle = "一"\n[[sections.questions]]\nid = "A"\ntext = "x"\n'
            'rule = "polite_words"\n',
            "missing 'points'",
        ),
        (
            'name = "表"\nversion = "one"\n[[sections]]\ntitle = "一"\n[[sections.questions]]\nid = "A"\ntext = "x"\n'
            'points = 1\nrule = "polite_words"\n',
            "invalid literal",
        ),
        ('name = "表\n', "cannot read the form"),
    ],
)
def test_a_broken_file_is_refused_with_form_error_not_a_crash(tmp_path, text, message):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormError, match=message):
        load_form(path)


def test_not_applicable_questions_do_not_count():
    form = form_of(
        Question("A", "甲", 50, "standard_greeting"),
        Question("B", "乙", 30, "polite_words"),
        Question("C", "丙", 20, "caller_hung_up_first"),
    )
    assert score(form, {"A": "yes", "B": "no", "C": "yes"}).score == 70.0
    assert score(form, {"A": "yes", "B": "no", "C": "na"}).score == round(100 * 50 / 80, 1)
    assert score(form, {"A": "yes", "B": "no"}).score == round(100 * 50 / 80, 1)  # unanswered is N/A
    assert score(form, {"A": "na", "B": "na", "C": "na"}).score is None  # nothing to score, not 0 or 100


def test_a_critical_no_scores_zero():
    form = form_of(
        Question("A", "甲", 85, "standard_greeting"),
        Question("E8", "禁用语", 15, "no_forbidden_phrases", critical=True),
    )
    failed = score(form, {"A": "yes", "E8": "no"})
    assert (failed.score, failed.critical_failed) == (0.0, True)
    passed = score(form, {"A": "yes", "E8": "yes"})
    assert (passed.score, passed.critical_failed) == (100.0, False)
    not_applicable = score(form, {"A": "no", "E8": "na"})
    assert (not_applicable.score, not_applicable.critical_failed) == (0.0, False)


def test_the_default_form_scores_a_call_with_one_slip():
    answers = {f"E{n}": "yes" for n in range(1, 9)} | {"E4": "no", "E7": "na"}
    result = score(load_form(), answers)
    assert (result.score, result.critical_failed) == (round(100 * 75 / 90, 1), False)


def test_reviewer_answers_override_the_suggestions():
    suggested = {
        "E1": {"answer": "yes", "note": "响铃4秒后接听"},
        "E2": {"answer": "no", "note": "问候缺少:姓名"},
        "E8": {"answer": "no", "note": "使用了禁用语:等着"},
    }
    final = {
        "E2": {"answer": "yes", "comment": "录音里说了姓名,转写漏了", "by": "qa"},
        "E8": {"answer": "maybe", "comment": "not an answer"},  # ignored: not yes/no/na
        "E1": {"comment": "同意"},
    }  # a comment alone keeps the suggestion
    assert effective_answers(suggested, final) == {"E1": "yes", "E2": "yes", "E8": "no"}
    assert effective_answers(suggested, {}) == {"E1": "yes", "E2": "no", "E8": "no"}
