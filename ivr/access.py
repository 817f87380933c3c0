"""One access policy for the console and the API: who may see, hear, change and review what.

No Flask here. The console (`ivr.web`) and the API (`ivr.api`) ask these functions and turn the answer into
a page or a status (`ivr.web.access.enforce`); the route × role table in tests/test_access_policy.py holds
both surfaces to it. Decisions about one thing are an `Access`: allowed, forbidden (403: the person may know
the thing exists) or hidden (404: they may not even learn that).

Staff work for some properties (小区) or, with none, for the whole company; everything that belongs to a place
carries its property, and nothing outside someone's properties is shown to them: it is answered as if it did
not exist (`TicketScope`, `EvaluationScope`). Service tokens see every property.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeAlias

from sqlalchemy import ColumnElement, Select, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from ivr.models import Evaluation, Notice, Recording, RecordingSource, Ticket
from ivr.models import Role as Role  # a staff account's role: defined with the other stored enums, asked about here

# Run the whole complaint procedure (投诉处理程序) and correct the messages on tickets.
TICKET_WORKERS = frozenset({Role.NIGHT_SHIFT, Role.MANAGER, Role.ADMIN})
# A department works its own tickets: it starts the work, writes 原因分析与纠正措施 and resolves; forwarding,
# replying to the caller, the follow-up call and closing stay with the front desk.
DEPARTMENT_STEPS = frozenset({"start", "analysis", "resolve"})
# Score transferred calls, read every evaluation and the weekly reports, correct transfer transcripts.
REVIEWERS = frozenset({Role.QA, Role.MANAGER, Role.ADMIN})
# Who has a "my evaluations" page (the night shift answers the transferred calls).
SCORED = frozenset({Role.NIGHT_SHIFT}) | REVIEWERS
MANAGE_USERS = frozenset({Role.ADMIN})
READ_AUDIT = frozenset({Role.ADMIN})


class Access(enum.Enum):
    """The answer about one thing."""

    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"  # they may know it exists, but not do this (403)
    HIDDEN = "hidden"  # they may not learn that it exists (404)

    @property
    def allowed(self) -> bool:
        return self is Access.ALLOWED


class Staff(Protocol):
    """A logged-in account, or the account an API token was made for."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def department(self) -> str | None: ...

    @property
    def property_ids(self) -> frozenset[int] | None:
        """The properties the account works for; None: the whole company. Loaded with the account (at log-in,
        per request, per token look-up), so asking it about a ticket costs no query."""
        ...


@dataclass(frozen=True)
class ServiceToken:
    """An API token made for a program rather than a person: it reads tickets and recordings (all of them,
    as an archive or integration needs), and changes, scores and reads the scores of nothing."""

    token_id: int


Principal: TypeAlias = Staff | ServiceToken


def role_of(who: Principal) -> Role | None:
    """The staff member's role; None for a service token or a role this policy does not know (refused)."""
    if isinstance(who, ServiceToken):
        return None
    try:
        return Role(who.role)
    except ValueError:
        return None


def has_role(who: Principal, roles: frozenset[Role]) -> bool:
    """Page-level permission: the QA list, the reports, accounts, the audit."""
    return role_of(who) in roles


# Properties ------------------------------------------------------------------------------------------------


def property_scope(who: Principal) -> frozenset[int] | None:
    """The properties whose calls, tickets and evaluations someone may see: None for all of them (an account
    with no property works for the whole company; service tokens), none for a role this policy does not know."""
    if isinstance(who, ServiceToken):
        return None
    if role_of(who) is None:
        return frozenset()
    return who.property_ids


def _among(properties: frozenset[int] | None, wanted: frozenset[int]) -> frozenset[int]:
    """`wanted` narrowed to `properties` (None: every property)."""
    return wanted if properties is None else properties & wanted


def _in_properties(column: InstrumentedAttribute[int], properties: frozenset[int] | None) -> ColumnElement[bool] | None:
    """The condition for rows of these properties; None when every property is in."""
    if properties is None:
        return None
    if not properties:
        return false()
    return column.in_(sorted(properties))


# Tickets ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketScope:
    """The tickets someone may see: of every department or some, of every property or some. Every ticket list
    and lookup in the console and the API goes through this class."""

    departments: frozenset[str] | None = None  # None: every department (and undispatched tickets)
    properties: frozenset[int] | None = None  # None: every property

    def where(self, query: Select[Any]) -> Select[Any]:
        """Narrow a ticket query to the scope."""
        if self.departments is not None:
            if not self.departments:
                return query.where(false())
            query = query.where(Ticket.department.in_(sorted(self.departments)))
        if (condition := _in_properties(Ticket.property_id, self.properties)) is not None:
            query = query.where(condition)
        return query

    def contains(self, ticket: Ticket) -> bool:
        return (self.departments is None or ticket.department in self.departments) and (
            self.properties is None or ticket.property_id in self.properties
        )

    def within(self, property_ids: frozenset[int]) -> TicketScope:
        """The scope narrowed to these properties (a property filter): one outside the scope adds nothing."""
        return replace(self, properties=_among(self.properties, property_ids))


def ticket_scope(who: Principal) -> TicketScope:
    """A department account sees only its department's tickets, and every account only its properties'; other
    staff see every department's, company-wide accounts and service tokens every property's."""
    if isinstance(who, ServiceToken):
        return TicketScope()
    role = role_of(who)
    if role is None:
        return TicketScope(frozenset(), frozenset())
    properties = property_scope(who)
    if role == Role.DEPARTMENT:
        return TicketScope(frozenset({who.department}) if who.department else frozenset(), properties)
    return TicketScope(properties=properties)


def ticket_access(who: Principal, ticket: Ticket) -> Access:
    """Read the ticket (the record, the matter, notes, timeline)."""
    return Access.ALLOWED if ticket_scope(who).contains(ticket) else Access.HIDDEN


def step_access(who: Principal, ticket: Ticket, step: str) -> Access:
    """Take one step of the procedure on the ticket."""
    if not ticket_access(who, ticket).allowed:
        return Access.HIDDEN
    role = role_of(who)
    if role in TICKET_WORKERS or (role == Role.DEPARTMENT and step in DEPARTMENT_STEPS):
        return Access.ALLOWED
    return Access.FORBIDDEN


def edit_access(who: Principal, ticket: Ticket) -> Access:
    """Change the ticket's record: the caller's name and room, notes, the message's transcript, 重大投诉.
    The front desk, and a department on its own tickets (as the console has always allowed); QA reads only."""
    if not ticket_access(who, ticket).allowed:
        return Access.HIDDEN
    role = role_of(who)
    return Access.ALLOWED if role in TICKET_WORKERS or role == Role.DEPARTMENT else Access.FORBIDDEN


def call_back_access(who: Principal, ticket: Ticket) -> Access:
    """Call the ticket's resident back from the console (回拨): the front desk, as for the follow-up step; the
    call rings the staff member's own phone first, so only a staff account (not a token) can ask."""
    if not ticket_access(who, ticket).allowed:
        return Access.HIDDEN
    return Access.ALLOWED if not isinstance(who, ServiceToken) and role_of(who) in TICKET_WORKERS else Access.FORBIDDEN


def _company_admin(who: Principal, roles: frozenset[Role]) -> Access:
    return Access.ALLOWED if role_of(who) in roles and property_scope(who) is None else Access.FORBIDDEN


def accounts_access(who: Principal) -> Access:
    """Manage staff accounts (the 账号 page): admins of the whole company only, since an admin of some
    properties could otherwise give themselves the others."""
    return _company_admin(who, MANAGE_USERS)


def audit_access(who: Principal) -> Access:
    """Read the audit (who heard and read what, what the line told callers of their arrears): admins of the
    whole company only — it covers every property's residents."""
    return _company_admin(who, READ_AUDIT)


def company_admin(who: Principal) -> bool:
    """Whether the account may reach the company's own pages (accounts, the audit): for the console's menu."""
    return accounts_access(who).allowed and audit_access(who).allowed


def notices_for(who: Principal, query: Select[Any]) -> Select[Any]:
    """Narrow a notice query to what `who` is shown: their role's, about tickets they may read (or none)."""
    role = role_of(who)
    if role is None:
        return query.where(false())
    query = query.where(Notice.role == role)
    scope = ticket_scope(who)
    if scope == TicketScope():
        return query  # every ticket
    # Correlated, per notice (few are unread): an IN over the readable tickets would list them all.
    readable = scope.where(select(Ticket.id).where(Ticket.id == Notice.ticket_id)).exists()
    return query.where(or_(Notice.ticket_id.is_(None), readable))


def notice_access(who: Principal, notice: Notice) -> Access:
    """Mark a notice read: notices are addressed to a role, and one about a ticket to those who may read it."""
    if role_of(who) is None or notice.role != role_of(who):
        return Access.HIDDEN
    if notice.ticket is not None and not ticket_access(who, notice.ticket).allowed:
        return Access.HIDDEN
    return Access.ALLOWED


# QA -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationScope:
    """The evaluations someone may find at all: those of calls to their properties (the QA list, "my
    evaluations", the weekly reports, and each evaluation's page)."""

    properties: frozenset[int] | None = None  # None: every property

    def where(self, query: Select[Any]) -> Select[Any]:
        """Narrow an evaluation query to the scope."""
        if (condition := _in_properties(Evaluation.property_id, self.properties)) is not None:
            query = query.where(condition)
        return query

    def contains(self, evaluation: Evaluation) -> bool:
        return self.properties is None or evaluation.property_id in self.properties

    def within(self, property_ids: frozenset[int]) -> EvaluationScope:
        """The scope narrowed to these properties (a property filter): one outside the scope adds nothing."""
        return replace(self, properties=_among(self.properties, property_ids))


def evaluation_scope(who: Principal) -> EvaluationScope:
    """Evaluations of the account's properties (every one for company-wide accounts and service tokens)."""
    return EvaluationScope(property_scope(who))


def _is_subject(who: Principal, evaluation: Evaluation | None) -> bool:
    """The staff member whose call was scored."""
    return (
        evaluation is not None
        and not isinstance(who, ServiceToken)
        and evaluation.agent_user_id is not None
        and evaluation.agent_user_id == who.id
    )


def evaluation_access(who: Principal, evaluation: Evaluation | None) -> Access:
    """Read a call's evaluation (None: the call has none). Its subject and the reviewers may. Anyone else
    is refused whether or not the call exists, so call ids cannot be probed; reviewers get a 404. An
    evaluation outside the account's properties is answered as if the call had none: 404 for reviewers, 403
    for others (as for every call not theirs, so it cannot be told from one that does not exist)."""
    if evaluation is not None and not evaluation_scope(who).contains(evaluation):
        evaluation = None
    if role_of(who) in REVIEWERS:
        return Access.ALLOWED if evaluation is not None else Access.HIDDEN
    return Access.ALLOWED if _is_subject(who, evaluation) else Access.FORBIDDEN


def review_access(who: Principal, evaluation: Evaluation) -> Access:
    """Confirm or override the system's answers: reviewers of its property, never on their own call."""
    if not (read := evaluation_access(who, evaluation)).allowed:
        return read
    if role_of(who) in REVIEWERS and not _is_subject(who, evaluation):
        return Access.ALLOWED
    return Access.FORBIDDEN


def respond_access(who: Principal, evaluation: Evaluation) -> Access:
    """Acknowledge or dispute an evaluation: only its subject, on an evaluation they may read."""
    if not (read := evaluation_access(who, evaluation)).allowed:
        return read
    return Access.ALLOWED if _is_subject(who, evaluation) else Access.FORBIDDEN


# Recordings and transcripts ---------------------------------------------------------------------------------


def _is_ticket_message(recording: Recording) -> bool:
    return recording.source != RecordingSource.DIAL and recording.ticket is not None


def recording_access(who: Principal, recording: Recording, evaluation: Evaluation | None) -> Access:
    """Hear a recording. A message on a ticket: whoever may read the ticket. A transfer (and a take on no
    ticket): whoever may read the call's evaluation — its subject and the reviewers of its property — and
    service tokens."""
    if _is_ticket_message(recording):
        assert recording.ticket is not None
        return ticket_access(who, recording.ticket)
    if isinstance(who, ServiceToken) or evaluation_access(who, evaluation).allowed:
        return Access.ALLOWED
    return Access.HIDDEN


def correction_access(who: Principal, recording: Recording, evaluation: Evaluation | None) -> Access:
    """Correct a recording's transcript. A message on a ticket: whoever may change the ticket (night shift,
    managers, admins, the ticket's department). A transfer: the reviewers, never the staff member whose
    score the transcript is evidence for. Service tokens correct nothing."""
    heard = recording_access(who, recording, evaluation)
    if not heard.allowed:
        return heard
    if isinstance(who, ServiceToken):
        return Access.FORBIDDEN
    if _is_ticket_message(recording):
        assert recording.ticket is not None
        return edit_access(who, recording.ticket)
    if evaluation is not None:
        return review_access(who, evaluation)
    return Access.ALLOWED if role_of(who) in REVIEWERS else Access.FORBIDDEN
