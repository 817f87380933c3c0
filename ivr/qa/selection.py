"""Which evaluations a reviewer looks at: the list filtered by staff member, status and week, and the daily
random sample; and the evaluation statuses as staff read them (no Flask)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import contains_eager, selectinload

from ivr.models import Call, Evaluation, EvaluationStatus, User

EVALUATION_STATUS_LABELS = {
    EvaluationStatus.SUGGESTED: "待复核",
    EvaluationStatus.REVIEWED: "已复核",
    EvaluationStatus.ACKNOWLEDGED: "已确认",
    EvaluationStatus.DISPUTED: "申诉中",
}


def evaluations_query(
    agent: str = "",
    status: str = "",
    bounds: tuple[datetime, datetime] | None = None,
) -> Select[Any]:
    """Evaluations newest call first, with their calls and staff accounts loaded; narrowed to a staff
    member's username, a status (an unknown one is ignored) and the calls started within `bounds`."""
    query = (
        select(Evaluation)
        .join(Evaluation.call)
        .options(contains_eager(Evaluation.call), selectinload(Evaluation.agent))
        .order_by(Call.started_at.desc(), Evaluation.id.desc())
    )
    if agent:
        query = query.join(Evaluation.agent).where(User.username == agent)
    if status in {s.value for s in EvaluationStatus}:
        query = query.where(Evaluation.status == EvaluationStatus(status))
    if bounds is not None:
        query = query.where(Call.started_at >= bounds[0], Call.started_at < bounds[1])
    return query


def daily_sample(evaluations: list[Evaluation], size: int, day: str) -> list[Evaluation]:
    """`size` unreviewed evaluations picked at random, the same picks all day (seeded by the local date)."""
    unreviewed = sorted((e for e in evaluations if e.status == EvaluationStatus.SUGGESTED), key=lambda e: e.id)
    picked = random.Random(f"{day}/{size}").sample(unreviewed, min(size, len(unreviewed)))
    return sorted(picked, key=lambda e: (e.call.started_at, e.id), reverse=True)
