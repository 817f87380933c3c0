"""Template filters: local times, ages, labels — what staff read, in Chinese."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask

from ivr.db import utcnow
from ivr.models import Category, TicketStatus
from ivr.problems import in_chinese
from ivr.runtime import current_settings
from ivr.tickets.procedure import CATEGORY_LABELS, STATUS_LABELS
from ivr.tickets.sla import SLA_LABELS, SlaState


def local_time(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC timestamp shown in the property's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(current_settings().timezone)).strftime(pattern)


def age(moment: datetime | None) -> str:
    """How long ago, the way the night shift says it: 5分钟, 2小时, 3天."""
    if moment is None:
        return ""
    minutes = int((utcnow() - moment).total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)}分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60}小时{minutes % 60}分"
    return f"{minutes // (24 * 60)}天"


def category_label(value: Category | str) -> str:
    return CATEGORY_LABELS[Category(value)]


def status_label(value: TicketStatus | str) -> str:
    return STATUS_LABELS[TicketStatus(value)]


def sla_label(value: SlaState | str) -> str:
    return SLA_LABELS[SlaState(value)]


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(in_chinese, "in_chinese")
    app.add_template_filter(age, "age")
    app.add_template_filter(category_label, "category_label")
    app.add_template_filter(status_label, "status_label")
    app.add_template_filter(sla_label, "sla_label")
