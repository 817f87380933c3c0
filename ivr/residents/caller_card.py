"""来电弹屏: beside a call, who the property's registry says the caller is and what they called about before."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from ivr.access import TicketScope
from ivr.models import Resident, Ticket
from ivr.residents.registry import residents_of_phone

RECENT_TICKETS = 5


@dataclass(frozen=True)
class CallerCard:
    """The caller's registrations in the ticket's property (a name per room) and their other recent tickets."""

    residents: list[Resident]
    recent: list[Ticket]

    @property
    def names(self) -> list[str]:
        """The names registered for the number, each once."""
        return list(dict.fromkeys(resident.name for resident in self.residents if resident.name))


def caller_card(session: Session, ticket: Ticket, scope: TicketScope) -> CallerCard:
    """Who called (the registry's residents of the ticket's number in its property) and the last
    RECENT_TICKETS other tickets of that property from the same number or about the same room, newest first,
    of those the reader may see (`scope`)."""
    residents = residents_of_phone(session, ticket.property_id, ticket.caller_number)
    query = recent_tickets_query(ticket)
    return CallerCard(residents, list(session.scalars(scope.where(query))) if query is not None else [])


def recent_tickets_query(ticket: Ticket) -> Select[Ticket] | None:
    """The property's other tickets from the ticket's number or about its room, newest first (None: neither)."""
    # Each look-up on its own index (room, caller number), united by id: as one OR beside the property, SQLite
    # would read every ticket of the property through its index instead.
    same: list[Select[int]] = []
    if ticket.room:
        same.append(select(Ticket.id).where(Ticket.room == ticket.room))
    if ticket.caller_number:
        same.append(select(Ticket.id).where(Ticket.caller_number == ticket.caller_number))
    if not same:
        return None
    return (
        select(Ticket)
        .where(Ticket.id.in_(union(*same)), Ticket.property_id == ticket.property_id, Ticket.id != ticket.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(RECENT_TICKETS)
    )
