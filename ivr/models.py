"""Typed SQLAlchemy models: properties and their residents, calls and their events, tickets, recordings, jobs,
staff, fees."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Enum, ForeignKey, Index, Numeric, String, Table, Text, UniqueConstraint, false
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ivr.db import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum], length: int = 24) -> Enum:
    """Store an enum by value as a plain string (portable, no native ENUM type to migrate)."""
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Category(enum.StrEnum):
    REPAIR = "repair"
    COMPLAINT = "complaint"
    FEE = "fee"
    EMERGENCY = "emergency"
    OTHER = "other"


class TicketStatus(enum.StrEnum):
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    ANALYSED = "analysed"
    RESOLVED = "resolved"
    REPLIED = "replied"
    FOLLOWED_UP = "followed_up"
    CLOSED = "closed"


# Retries back off from 10 s, doubling, capped at 30 min between tries (ivr.jobs.retry_delay): 60 attempts
# spread over about 26 hours, so a Twilio, disk or database outage of a day still ends with the job done.
JOB_MAX_ATTEMPTS = 60


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RecordingState(enum.StrEnum):
    PENDING = "pending"  # Twilio has not said it is complete yet
    DOWNLOADING = "downloading"
    STORED = "stored"
    FAILED = "failed"  # download gave up, or Twilio reported the recording failed/absent


class RecordingSource(enum.StrEnum):
    MESSAGE = "message"  # a take of the caller's message (<Record>)
    DIAL = "dial"  # a transfer to a person, recorded dual-channel (<Dial record=…>)


class Role(enum.StrEnum):
    """A staff account's role; what each may do is decided in ivr.access."""

    NIGHT_SHIFT = "night_shift"
    QA = "qa"
    DEPARTMENT = "department"
    MANAGER = "manager"
    ADMIN = "admin"


# The property every row belongs to when nothing says otherwise: made by migration 0007 with this id, its name,
# duty numbers and time zone taken from the settings (IVR_PROPERTY_NAME …) unless stored (ivr.properties).
DEFAULT_PROPERTY_ID = 1
DEFAULT_PROPERTY_CODE = "default"


def _property_column() -> Mapped[int]:
    return mapped_column(
        ForeignKey("properties.id"), default=DEFAULT_PROPERTY_ID, server_default=str(DEFAULT_PROPERTY_ID), index=True
    )


class Property(Base):
    """A 小区 the call centre serves: its own numbers, name in the greeting (E2), duty phones and time zone.
    Empty name, duty numbers or time zone: the settings' (how the default property carries today's install)."""

    __tablename__ = "properties"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64))
    duty_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    call_windows: Mapped[str | None] = mapped_column(Text)  # follow-up call windows; None: IVR_CALL_WINDOWS
    call_days_off: Mapped[str | None] = mapped_column(Text)  # None: IVR_CALL_DAYS_OFF
    # Inbound calls end with a satisfaction question (after the ticket number, before 再见): off unless set.
    ask_satisfaction: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    numbers: Mapped[list[PropertyNumber]] = relationship(
        back_populates="property", order_by="PropertyNumber.number", cascade="all, delete-orphan"
    )


class PropertyNumber(Base):
    """A Twilio number residents dial for this property: a call belongs to the property of its `To`."""

    __tablename__ = "property_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164, as Twilio sends To
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"), index=True)

    property: Mapped[Property] = relationship(back_populates="numbers")


class Resident(Base):
    """A resident the line knows: one row per (room, phone) of a property, from the registry import."""

    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("property_id", "room", "phone", name="uq_residents_property_room_phone"),
        Index("ix_residents_property_phone", "property_id", "phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"))
    room: Mapped[str] = mapped_column(String(32))  # 楼栋-单元-房号, as tickets and the fee ledger keep it
    name: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))  # E.164, as Twilio sends From
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))  # the import (None) or the admin who edited it


class Call(Base):
    """One phone call, keyed by Twilio's CallSid; holds where the caller is in the menus."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    property_id: Mapped[int] = _property_column()  # the property of the number dialled (To)
    account_sid: Mapped[str | None] = mapped_column(String(64))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="in-progress")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration: Mapped[int | None]
    # Where the caller is: the purpose chosen in the menu, the room keyed in, retry counters.
    category: Mapped[Category | None] = mapped_column(_enum(Category))
    room: Mapped[str | None] = mapped_column(String(32))
    room_confirmed: Mapped[bool] = mapped_column(default=False)
    counters: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket | None] = relationship(back_populates="call")
    events: Mapped[list[CallEvent]] = relationship(back_populates="call", order_by="CallEvent.id")
    recordings: Mapped[list[Recording]] = relationship(back_populates="call", order_by="Recording.id")


class CallEvent(Base):
    """Each webhook Twilio made for a call, with the TwiML we answered (replayed on retries)."""

    __tablename__ = "call_events"
    # A retry repeats the token for the same webhook of the same call; another call's token means nothing here.
    __table_args__ = (
        UniqueConstraint("call_id", "endpoint", "idempotency_token", name="uq_call_events_call_endpoint_token"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Twilio repeats I-Twilio-Idempotency-Token on retries of the same webhook.
    idempotency_token: Mapped[str | None] = mapped_column(String(128))
    response: Mapped[str | None] = mapped_column(Text)

    call: Mapped[Call | None] = relationship(back_populates="events")


class Ticket(Base):
    """A resident's matter taken by the line (E3): who, which room, what, when."""

    __tablename__ = "tickets"
    __table_args__ = (
        # The open queue (status <> 'closed' written as a literal, so SQLite and PostgreSQL match the partial
        # index) ordered urgent first, then by the running clock; also the overview's counts of open tickets.
        Index(
            "ix_tickets_open_queue",
            "urgent",
            "sla_due",
            "sla_warn_at",
            "category",
            "status",
            sqlite_where=sql_text("status <> 'closed'"),
            postgresql_where=sql_text("status <> 'closed'"),
        ),
        Index("ix_tickets_status_created_at", "status", "created_at"),
        # The callers' own scores by week (the weekly follow-up report): the few scored tickets, read from the index.
        Index(
            "ix_tickets_call_satisfaction",
            "created_at",
            "property_id",
            "department",
            "call_satisfaction",
            sqlite_where=sql_text("call_satisfaction IS NOT NULL"),
            postgresql_where=sql_text("call_satisfaction IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # unique across the company
    property_id: Mapped[int] = _property_column()
    category: Mapped[Category] = mapped_column(_enum(Category))
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.REGISTERED)
    urgent: Mapped[bool] = mapped_column(default=False)
    urgent_reason: Mapped[str | None] = mapped_column(Text)
    room: Mapped[str | None] = mapped_column(String(32), index=True)
    # The room came from the resident registry (the caller's number, confirmed by them), not the keypad.
    room_from_registry: Mapped[bool] = mapped_column(default=False, server_default=false())
    caller_number: Mapped[str | None] = mapped_column(String(64), index=True)  # 来电弹屏: the caller's other tickets
    caller_name: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), unique=True)
    confirmed: Mapped[bool] = mapped_column(default=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    note: Mapped[str | None] = mapped_column(Text)
    # The procedure (投诉处理程序): who has it, and when each step happened.
    major: Mapped[bool] = mapped_column(default=False)  # 重大投诉: the manager is told at once
    department: Mapped[str | None] = mapped_column(String(32), index=True)
    handler: Mapped[str | None] = mapped_column(String(64))  # 处理人, the receiver who signs for it
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cause_analysis: Mapped[str | None] = mapped_column(Text)  # 原因分析与纠正措施
    analysis_approved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reply_to_caller: Mapped[str | None] = mapped_column(Text)  # what the caller was told
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    follow_up_result: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    call_satisfaction: Mapped[int | None]  # 1–5 by keypad at the end of the call that reported it (per property)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Found at Twilio by reconciliation: the line never heard this message's webhooks.
    recovered: Mapped[bool] = mapped_column(default=False)
    # The procedure's clocks as stored deadlines (ivr.tickets.sla.stamp_clocks, on every write of the ticket),
    # so the queue's order and the overview's counts are SQL over indexes rather than Python over every row.
    # sla_due / sla_warn_at: the clock running now (None when all are done); the others: each clock's due.
    dispatch_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolve_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    follow_up_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    call: Mapped[Call | None] = relationship(back_populates="ticket")
    recordings: Mapped[list[Recording]] = relationship(back_populates="ticket", order_by="Recording.id")
    events: Mapped[list[TicketEvent]] = relationship(back_populates="ticket", order_by="TicketEvent.id")
    notes: Mapped[list[TicketNote]] = relationship(back_populates="ticket", order_by="TicketNote.id")

    @property
    def text_transcript(self) -> Transcript | None:
        """Where the ticket's text comes from: the latest message take with something said in it (a
        person's correction, else the machine's text); takes still being transcribed or silent are passed over."""
        for recording in reversed(self.recordings):
            if recording.source == RecordingSource.MESSAGE and recording.transcripts:
                transcript = recording.transcripts[0]  # a message is mono: channel 0
                if transcript.current_text:
                    return transcript
        return None

    @property
    def text(self) -> str | None:
        """What the caller said, derived from the takes (see `text_transcript`)."""
        transcript = self.text_transcript
        return transcript.current_text if transcript is not None else None


class TicketEvent(Base):
    """The ticket's timeline and audit log: who did, viewed or listened to what, and when."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(64))  # username; None for the line itself
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketNote(Base):
    """A note on a ticket: internal, or what was told to the caller — kept apart."""

    __tablename__ = "ticket_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    told_caller: Mapped[bool] = mapped_column(default=False)
    text: Mapped[str] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="notes")


class Notice(Base):
    """A console notice for a role (e.g. a major complaint for the manager), and its SMS if sent."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, length=32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_by: Mapped[str | None] = mapped_column(String(64))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sms_sids: Mapped[list[str]] = mapped_column(JSON, default=list)
    sms_error: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket | None] = relationship()


class LoginAttempt(Base):
    """Log-ins that succeeded, failed (wrong name or password) or were refused unchecked (too many failures
    from that address), for rate limiting and the accounts page."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_remote_addr_at", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    succeeded: Mapped[bool] = mapped_column(default=False)
    # Refused before the password was checked; not a failure, so waiting out a delay is never held against anyone.
    refused: Mapped[bool] = mapped_column(default=False, server_default=false())


class Recording(Base):
    """A recording Twilio made (a message take or a transferred call), stored byte-exact."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    source: Mapped[RecordingSource] = mapped_column(_enum(RecordingSource, length=32), default=RecordingSource.MESSAGE)
    source_url: Mapped[str | None] = mapped_column(Text)
    state: Mapped[RecordingState] = mapped_column(_enum(RecordingState), default=RecordingState.PENDING)
    twilio_status: Mapped[str | None] = mapped_column(String(32))
    channels: Mapped[int | None]
    duration: Mapped[float | None]
    size: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(Text)  # relative to IVR_RECORDINGS_DIR
    content_type: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    # Set when transcription finally failed: a person should listen and type what was said.
    needs_manual_transcription: Mapped[bool] = mapped_column(default=False)
    transcription_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    call: Mapped[Call] = relationship(back_populates="recordings")
    ticket: Mapped[Ticket | None] = relationship(back_populates="recordings")
    transcripts: Mapped[list[Transcript]] = relationship(back_populates="recording", order_by="Transcript.channel")
    live_transcript: Mapped[LiveTranscript | None] = relationship(back_populates="recording")


class Transcript(Base):
    """What Vosk heard on one channel of a recording: text for people, timed words for the player."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("recording_id", "channel", name="uq_transcripts_recording_channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    channel: Mapped[int] = mapped_column(default=0)  # 0 mono or first (caller) channel, 1 second channel
    text: Mapped[str] = mapped_column(Text, default="")
    raw_text: Mapped[str] = mapped_column(Text, default="")
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    duration: Mapped[float | None]
    model: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A person's correction (console or API); the machine's words stay for timings.
    corrected_text: Mapped[str | None] = mapped_column(Text)
    corrected_by: Mapped[str | None] = mapped_column(String(64))

    recording: Mapped[Recording] = relationship(back_populates="transcripts")

    @property
    def current_text(self) -> str:
        """What was said on this channel: a person's correction, else the machine's text."""
        return self.corrected_text or self.text


class LiveTranscript(Base):
    """What the line heard while the caller recorded (Twilio Media Streams into Vosk), kept for the read-back
    the moment they pressed #. The downloaded recording's Transcript stays the take's authoritative text."""

    __tablename__ = "live_transcripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text, default="")
    raw_text: Mapped[str] = mapped_column(Text, default="")
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    duration: Mapped[float | None]  # seconds of audio the stream carried
    mean_confidence: Mapped[float | None]
    model: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    recording: Mapped[Recording] = relationship(back_populates="live_transcript")


class Job(Base):
    """Background work as a row; the queue message carries only its id."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id", name="uq_jobs_kind_subject"),
        Index("ix_jobs_state_run_after", "state", "run_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int]  # e.g. the recording id
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=JOB_MAX_ATTEMPTS)
    last_error: Mapped[str | None] = mapped_column(Text)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # While running: which process has it ("host:pid") and until when; the worker renews the lease.
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Checkpoint(Base):
    """A named point in time that a periodic task has reached (e.g. Twilio reconciliation)."""

    __tablename__ = "checkpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


# Which properties a staff account works for; an account with none works for the whole company.
user_properties = Table(
    "user_properties",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("property_id", ForeignKey("properties.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A staff account; the role decides what it may see and do, its properties where (none: all of them)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(_enum(Role, length=32))
    department: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bumped by log-out and password changes: sessions carry it, so older sessions stop working.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")
    properties: Mapped[list[Property]] = relationship(secondary=user_properties, order_by="Property.code")


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A token for a program rather than a person (no user): made only when asked for explicitly.
    service: Mapped[bool] = mapped_column(default=False, server_default=false())

    user: Mapped[User | None] = relationship(back_populates="tokens")


class AuditEvent(Base):
    """Who read or listened to residents' data (保密制度): recordings, tickets, through the console or API."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_recording_sid_at", "recording_sid", "at"),
        Index("ix_audit_events_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # username, or "token:<name>"
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))  # listen, read_ticket, …
    via: Mapped[str] = mapped_column(String(16))  # console | api
    recording_sid: Mapped[str | None] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FeeItem(Base):
    """One line of the fee ledger: what a room owes for one fee type and period."""

    __tablename__ = "fee_items"
    __table_args__ = (
        UniqueConstraint("property_id", "room", "fee_type", "period", name="uq_fee_items_property_room_type_period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    property_id: Mapped[int] = _property_column()
    room: Mapped[str] = mapped_column(String(32), index=True)
    fee_type: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(32))
    amount_due: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    due_date: Mapped[date]
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TicketCounter(Base):
    """Per-day sequence for ticket numbers (local date), updated under the row lock."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class EvaluationStatus(enum.StrEnum):
    SUGGESTED = "suggested"  # the system's answers only
    REVIEWED = "reviewed"  # a QA reviewer confirmed or overrode them
    ACKNOWLEDGED = "acknowledged"  # the staff member accepted the result
    DISPUTED = "disputed"  # the staff member disputes it


class Evaluation(Base):
    """A transferred call scored against the etiquette scorecard: the system's suggested answers with their
    evidence, kept apart from the reviewer's final answers."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    property_id: Mapped[int] = _property_column()  # the call's
    form_name: Mapped[str] = mapped_column(String(64))
    form_version: Mapped[int]
    agent_number: Mapped[str | None] = mapped_column(String(64))  # the on-duty number that answered
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    suggested: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # question id → answer + evidence
    final: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # question id → override + comment
    suggested_score: Mapped[float | None]
    final_score: Mapped[float | None]
    critical_failed: Mapped[bool] = mapped_column(default=False)
    status: Mapped[EvaluationStatus] = mapped_column(_enum(EvaluationStatus), default=EvaluationStatus.SUGGESTED)
    reviewer: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_comment: Mapped[str | None] = mapped_column(Text)
    agent_comment: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    call: Mapped[Call] = relationship()
    agent: Mapped[User | None] = relationship()


class FollowUpState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its due time (always inside a call window when it is placed)
    CALLING = "calling"  # an attempt is ringing or under way
    DONE = "done"  # the resident answered the questions
    UNREACHABLE = "unreachable"  # attempts used up (or no way to call): on the call-back-by-hand list
    OPTED_OUT = "opted_out"  # the resident asked for no more follow-up calls (按9)
    CANCELLED = "cancelled"  # the ticket moved on without it (followed up by hand, reopened, closed)


class FollowUp(Base):
    """A follow-up call (回访) of a resolved ticket: when it is due, its attempts, what the resident answered."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        Index("ix_follow_ups_state_due_at", "state", "due_at"),
        Index("ix_follow_ups_created_at", "created_at"),  # the weekly report and the overview count by week due
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    property_id: Mapped[int] = _property_column()  # the ticket's: its calendar and its caller ID
    phone: Mapped[str | None] = mapped_column(String(32))  # whom to call (E.164), the ticket's caller
    state: Mapped[FollowUpState] = mapped_column(_enum(FollowUpState), default=FollowUpState.SCHEDULED)
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outcome: Mapped[str | None] = mapped_column(String(32))  # answered, no-answer, busy, failed, machine…
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)  # the latest attempt's call
    resolved: Mapped[bool | None]  # 1 = yes, 2 = no
    satisfaction: Mapped[int | None]  # 1–5 by keypad
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    comment_recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)  # why it is where it is (shown to staff)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    ticket: Mapped[Ticket] = relationship()
    comment_recording: Mapped[Recording | None] = relationship()


class FollowUpOptOut(Base):
    """A phone that asked for no more follow-up calls from a property (「不再接收回访请按9」). Kept by property
    and phone rather than on a registry row: most callers are not in the registry, and an import may replace it."""

    __tablename__ = "follow_up_opt_outs"
    __table_args__ = (UniqueConstraint("property_id", "phone", name="uq_follow_up_opt_outs_property_phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32))
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))  # asked on its call
    call_sid: Mapped[str | None] = mapped_column(String(64))


class CallBackState(enum.StrEnum):
    QUEUED = "queued"  # asked for on the console; the placement job dials the staff member's phone
    CALLING_STAFF = "calling_staff"  # the staff member's phone is ringing
    CALLING_RESIDENT = "calling_resident"  # the staff member answered; the resident's phone is ringing
    DONE = "done"  # they talked (recorded, scored like a transfer)
    FAILED = "failed"  # the staff member or the resident did not answer, or Twilio refused the call


class CallBack(Base):
    """A staff call-back from the console (回拨): Twilio rings the staff member's phone, then the resident, and
    records both sides on separate channels (the staff member's leg first). Asked for outside the property's
    call windows (meal times, night), it carries the reason the staff member gave."""

    __tablename__ = "call_backs"
    # One call-back under way per ticket, whatever the race (two clicks, two staff members at once).
    __table_args__ = (
        Index(
            "uq_call_backs_under_way",
            "ticket_id",
            unique=True,
            sqlite_where=sql_text("state IN ('queued', 'calling_staff', 'calling_resident')"),
            postgresql_where=sql_text("state IN ('queued', 'calling_staff', 'calling_resident')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    property_id: Mapped[int] = _property_column()  # the ticket's: its caller ID and its calendar
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    staff_phone: Mapped[str] = mapped_column(String(32))  # E.164: the staff member's phone, rung first
    resident_phone: Mapped[str] = mapped_column(String(32))  # E.164: the ticket's caller
    outside_window: Mapped[bool] = mapped_column(default=False)  # asked for at a meal time or at night
    reason: Mapped[str | None] = mapped_column(Text)  # why, then (required outside a window)
    state: Mapped[CallBackState] = mapped_column(_enum(CallBackState), default=CallBackState.QUEUED)
    outcome: Mapped[str | None] = mapped_column(Text)  # what happened, in Chinese, for the ticket page
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)  # the staff member's leg
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    ticket: Mapped[Ticket] = relationship()
    user: Mapped[User] = relationship()
    call: Mapped[Call | None] = relationship()


# Every ticket written stamps its clocks (a mapper event in ivr.tickets.sla): import it with the models, so that
# no program that writes tickets (the server, the worker, the CLI, a migration's script) can do so without it.
import ivr.tickets.sla  # noqa: E402, F401
