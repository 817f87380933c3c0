"""The ticket's timeline: one line per thing that happened to it (its audit log)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ivr.models import Ticket, TicketEvent


def record_event(session: Session, ticket: Ticket, kind: str, actor: str | None, **detail: Any) -> TicketEvent:
    """Add a line to the ticket's timeline / audit log."""
    event = TicketEvent(ticket=ticket, kind=kind, actor=actor, detail=detail)
    session.add(event)
    return event
