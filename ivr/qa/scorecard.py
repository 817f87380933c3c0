"""The scorecard form (data in a TOML file) and how answers become a score."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_FORM = Path(__file__).with_name("default_form.toml")
ANSWERS = ("yes", "no", "na")
ANSWER_LABELS = {"yes": "符合", "no": "不符合", "na": "不适用"}


class FormError(ValueError):
    """The scorecard file is not usable; the message names the problem."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    points: float
    rule: str
    critical: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Form:
    name: str
    version: int
    sections: tuple[Section, ...]

    @property
    def questions(self) -> list[Question]:
        return [q for section in self.sections for q in section.questions]


@cache
def load_form(path: Path = DEFAULT_FORM) -> Form:
    """Read and check a scorecard form: every question has an id, points and a known rule."""
    from ivr.qa.rules import RULES

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FormError(f"{path}: cannot read the form: {exc}") from exc
    sections = []
    seen: set[str] = set()
    try:
        for section in data.get("sections", []):
            questions = []
            for raw in section.get("questions", []):
                question = Question(
                    id=str(raw["id"]),
                    text=str(raw["text"]),
                    points=float(raw["points"]),
                    rule=str(raw["rule"]),
                    critical=bool(raw.get("critical", False)),
                )
                if question.rule not in RULES:
                    raise FormError(f"{path}: question {question.id} names unknown rule {question.rule!r}")
                if question.id in seen:
                    raise FormError(f"{path}: question id {question.id} appears twice")
                if question.points < 0:
                    raise FormError(f"{path}: question {question.id} has negative points")
                seen.add(question.id)
                questions.append(question)
            sections.append(Section(str(section["title"]), tuple(questions)))
        if not seen:
            raise FormError(f"{path}: the form has no questions")
        return Form(str(data["name"]), int(data["version"]), tuple(sections))
    except KeyError as exc:
        raise FormError(f"{path}: missing {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FormError):
            raise
        raise FormError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Score:
    score: float | None  # 0–100 over the questions that apply; 0 when a critical item failed
    critical_failed: bool


def effective_answers(suggested: dict[str, Any], final: dict[str, Any]) -> dict[str, str]:
    """The reviewer's answer where there is one, otherwise the system's suggestion."""
    answers = {qid: item["answer"] for qid, item in suggested.items()}
    answers.update({qid: item["answer"] for qid, item in final.items() if item.get("answer") in ANSWERS})
    return answers


def score(form: Form, answers: dict[str, str]) -> Score:
    possible = earned = 0.0
    critical_failed = False
    for question in form.questions:
        answer = answers.get(question.id, "na")
        if answer == "na":
            continue
        possible += question.points
        if answer == "yes":
            earned += question.points
        elif question.critical:
            critical_failed = True
    if possible == 0:
        return Score(None, critical_failed)
    return Score(0.0 if critical_failed else round(100 * earned / possible, 1), critical_failed)
