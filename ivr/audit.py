"""The audit of who read or heard residents' data (保密制度), written by the routes that serve it (no Flask).

What is recorded, as `AuditEvent` rows (actor, account or token, console or API, client address):

- `listen`: the audio of a recording left the server — the console's and the API's audio routes, ticket
  messages and transfer recordings alike, whoever or whatever asked (the player, a typed URL, a script).
  One listen is one row: a reader's first request for a recording opens it, and their further requests
  for the same recording through the same surface within LISTEN_WINDOW of that row (the player's range
  requests, seeking, a replay) belong to it, whatever their Range. After the window the next request
  opens a new listen. A `Range` that does not start at 0 opens a listen like any other, so asking for
  `bytes=1-` does not avoid the audit.
- `read_ticket`: a ticket opened in the console or fetched through the API (`ticket_id`).
- `list_tickets`: an API listing, with the ids it returned and the filters.
- `read_evaluation`: a transferred call's scorecard (with both sides' transcripts), console or API.

Changes to tickets stay on their timeline (`TicketEvent`); the ticket page shows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from ivr.db import utcnow
from ivr.models import AuditEvent, Recording, User

LISTEN_WINDOW = timedelta(minutes=5)
LISTEN, READ_TICKET, LIST_TICKETS, READ_EVALUATION = "listen", "read_ticket", "list_tickets", "read_evaluation"
# Arrears are residents' personal data too: the line's own answers about them are audited (via the phone).
FEE_TOLD, FEE_REFUSED = "fee_told", "fee_refused"
PHONE = "phone"
ACTION_LABELS = {
    LISTEN: "收听录音",
    READ_TICKET: "查看工单",
    LIST_TICKETS: "列出工单",
    READ_EVALUATION: "查看质检评分",
    FEE_TOLD: "电话告知欠费",
    FEE_REFUSED: "拒绝告知欠费",
}
VIA_LABELS = {"console": "值班台", "api": "API", PHONE: "电话"}
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class Reader:
    """Who is reading, as the audit records them: a logged-in account, or an API token (with its account)."""

    actor: str  # the username, or "token:<name>" for a service token
    via: str  # console | api
    user_id: int | None = None
    token_id: int | None = None
    remote_addr: str | None = None

    def event(self, action: str, **fields: Any) -> AuditEvent:
        return AuditEvent(
            actor=self.actor[:64],
            via=self.via,
            user_id=self.user_id,
            token_id=self.token_id,
            remote_addr=(self.remote_addr or "")[:64] or None,
            action=action,
            **fields,
        )

    def same_reader(self) -> ColumnElement[bool]:
        """Rows written for this reader: the same token through the API, the same account in the console."""
        if self.token_id is not None:
            return AuditEvent.token_id == self.token_id
        if self.user_id is not None:
            return (AuditEvent.user_id == self.user_id) & AuditEvent.token_id.is_(None)
        return AuditEvent.actor == self.actor[:64]


def record_listen(
    session: Session, reader: Reader, recording: Recording, range_header: str | None, now: datetime | None = None
) -> AuditEvent | None:
    """Audit a request for a recording's audio; returns the new listen, or None when the request belongs
    to the reader's listen already recorded (within LISTEN_WINDOW)."""
    now = now or utcnow()
    already = session.scalars(
        select(AuditEvent.id)
        .where(
            AuditEvent.action == LISTEN,
            AuditEvent.recording_sid == recording.recording_sid,
            AuditEvent.via == reader.via,
            AuditEvent.at > now - LISTEN_WINDOW,
            reader.same_reader(),
        )
        .limit(1)
    ).first()
    if already is not None:
        return None
    detail: dict[str, Any] = {"source": recording.source}
    if range_header:
        detail["range"] = range_header[:MAX_DETAIL_CHARS]
    event = reader.event(
        LISTEN, at=now, recording_sid=recording.recording_sid, ticket_id=recording.ticket_id, detail=detail
    )
    session.add(event)
    session.flush()
    return event


def record_read(
    session: Session,
    reader: Reader,
    action: str,
    *,
    ticket_id: int | None = None,
    recording_sid: str | None = None,
    **detail: Any,
) -> AuditEvent:
    """Audit a read of a ticket, a listing or an evaluation."""
    event = reader.event(action, ticket_id=ticket_id, recording_sid=recording_sid, detail=detail)
    session.add(event)
    session.flush()
    return event


def ticket_audit(session: Session, ticket_id: int) -> list[AuditEvent]:
    """Who opened the ticket and heard its messages, oldest first (for the ticket's timeline)."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.ticket_id == ticket_id, AuditEvent.action.in_([LISTEN, READ_TICKET]))
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def audit_query(
    *,
    user: str | None = None,
    recording: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEvent]:
    """Audit rows, newest first. `user` is a username (their console and API reads) or "token:<name>"."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if user:
        account = select(User.id).where(User.username == user).scalar_subquery()
        query = query.where(or_(AuditEvent.actor == user, AuditEvent.user_id == account))
    if recording:
        query = query.where(AuditEvent.recording_sid == recording)
    if action:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return query


def describe_detail(event: AuditEvent) -> str:
    """The detail as one line (ids listed, range, filters) for the page and the command."""
    parts = []
    for key, value in (event.detail or {}).items():
        if isinstance(value, list):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key}={value}")
    return " ".join(parts)
