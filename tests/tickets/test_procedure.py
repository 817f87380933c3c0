"""The procedure's reopen step (重新打开): from which states, where the ticket goes back to, what it forgets
and what stays on the timeline."""

from __future__ import annotations

import pytest

from ivr.models import Category, Ticket, TicketStatus
from ivr.tickets import procedure
from ivr.tickets.procedure import STATUS_LABELS, ProcedureError
from tests.factories import create_ticket


def worked_to(session, ticket: Ticket, last: str) -> None:
    """Take the ticket through the procedure up to and including the step `last`."""
    steps = {
        "dispatch": lambda: procedure.dispatch(session, ticket, "wang", "工程部", "李工"),
        "start": lambda: procedure.start_work(session, ticket, "gong"),
        "analysis": lambda: procedure.write_analysis(session, ticket, "gong", "水管老化,已更换", "张经理"),
        "resolve": lambda: procedure.resolve(session, ticket, "gong"),
        "reply": lambda: procedure.reply_to_caller(session, ticket, "wang", "已更换水管"),
        "follow_up": lambda: procedure.follow_up(session, ticket, "wang", "业主确认不再漏水", "满意"),
        "close": lambda: procedure.close(session, ticket, "wang"),
    }
    for name, take in steps.items():
        take()
        if name == last:
            return


@pytest.mark.parametrize("last", ["resolve", "reply", "follow_up", "close"])
def test_a_reopened_ticket_goes_back_to_work_with_its_department(database, last):
    ticket_id = create_ticket(database, category=Category.COMPLAINT)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        worked_to(session, ticket, last)
        before = len(ticket.events)
        procedure.reopen(session, ticket, "boss", "  业主回电说又漏水了 ")
        assert ticket.status == TicketStatus.IN_PROGRESS
        # What the reopened work has to do again is forgotten; who has it and why are kept.
        assert (ticket.resolved_at, ticket.replied_at, ticket.followed_up_at, ticket.closed_at) == (None,) * 4
        assert (ticket.department, ticket.handler, ticket.cause_analysis) == ("工程部", "李工", "水管老化,已更换")
        # The earlier steps stay on the timeline, followed by the reopening with its reason.
        assert len(ticket.events) == before + 1
        reopened = ticket.events[-1]
        assert (reopened.kind, reopened.actor) == ("status", "boss")
        assert reopened.detail == {
            "from": TicketStatus(last_status(last)).value,
            "to": "in_progress",
            "reason": "业主回电说又漏水了",
        }
        assert [step.name for step in procedure.next_steps(ticket)] == ["analysis", "resolve"]
        procedure.resolve(session, ticket, "gong")  # and it can be finished again
        assert ticket.status == TicketStatus.RESOLVED and ticket.resolved_at is not None


def last_status(step: str) -> TicketStatus:
    return {
        "resolve": TicketStatus.RESOLVED,
        "reply": TicketStatus.REPLIED,
        "follow_up": TicketStatus.FOLLOWED_UP,
        "close": TicketStatus.CLOSED,
    }[step]


def test_a_resolved_ticket_that_was_never_forwarded_goes_back_to_registered(database):
    ticket_id = create_ticket(database, status=TicketStatus.RESOLVED)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        procedure.reopen(session, ticket, "wang", "登记错误")
        assert ticket.status == TicketStatus.REGISTERED
        assert [step.name for step in procedure.next_steps(ticket)] == ["dispatch"]


def test_reopening_needs_a_reason(database):
    ticket_id = create_ticket(database)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        worked_to(session, ticket, "close")
        with pytest.raises(ProcedureError, match="请填写重新打开的原因"):
            procedure.reopen(session, ticket, "wang", "   ")
        assert ticket.status == TicketStatus.CLOSED and ticket.closed_at is not None


@pytest.mark.parametrize("last", [None, "dispatch", "start", "analysis"])
def test_a_ticket_still_being_worked_cannot_be_reopened(database, last):
    ticket_id = create_ticket(database, category=Category.COMPLAINT)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        if last:
            worked_to(session, ticket, last)
        status = ticket.status
        with pytest.raises(ProcedureError) as refused:
            procedure.reopen(session, ticket, "wang", "想重新打开")
        back_to = "处理中" if ticket.department else "已登记"
        assert str(refused.value) == f"工单当前为「{STATUS_LABELS[status]}」,不能变为「{back_to}」"
        assert ticket.status == status


def test_a_room_corrected_by_staff_is_no_longer_the_registry_s(database):
    ticket_id = create_ticket(database, room="3-2-501")
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        ticket.room_from_registry = True
        procedure.update_caller(session, ticket, "wang", "张伟", "3-2-501")  # the same room: still the registry's
        assert ticket.room_from_registry
        procedure.update_caller(session, ticket, "wang", "张伟", "3-2-502")
        assert (ticket.room, ticket.room_from_registry) == ("3-2-502", False)
