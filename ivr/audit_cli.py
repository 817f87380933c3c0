"""`ivr audit`: who listened to which recording and read which ticket, when and from where (ivr.audit)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

if TYPE_CHECKING:
    from ivr.cli_state import CliState

# ivr.audit's actions, spelled out so `ivr --help` need not load the models (a test keeps them equal).
ACTIONS = ("listen", "read_ticket", "list_tickets", "read_evaluation", "fee_told", "fee_refused")


def parse_since(text: str, timezone: str) -> datetime:
    """A local date (`2026-12-01`: from its midnight) or local time (`2026-12-01T08:30`), as a UTC moment."""
    zone = ZoneInfo(timezone)
    try:
        moment = datetime.combine(date.fromisoformat(text), time.min)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(
                f"{text!r} is not a date (2026-12-01) or a time (2026-12-01T08:30)", param_hint="--since"
            ) from None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


@click.command("audit")
@click.option("--user", help="A username (their console and API reads) or token:<name> for a service token.")
@click.option("--recording", help="A RecordingSid (RE…).")
@click.option("--action", type=click.Choice(ACTIONS), help="Only this kind of access.")
@click.option("--since", help="From this local date (2026-12-01) or time (2026-12-01T08:30).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1), help="Newest rows shown.")
@click.pass_obj
def audit(
    state: CliState, user: str | None, recording: str | None, action: str | None, since: str | None, limit: int
) -> None:
    """Who listened to which recording and read which ticket, newest first: the time (property time), who,
    console or API, what, the recording and ticket, the client address and the detail (e.g. the Range)."""
    from sqlalchemy import func, select

    from ivr.audit import audit_query, describe_detail
    from ivr.models import Ticket

    zone = ZoneInfo(state.settings.timezone)
    query = audit_query(
        user=user,
        recording=recording,
        action=action,
        since=parse_since(since, state.settings.timezone) if since else None,
    )
    with state.database.session(read_only=True) as session:
        matching = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        events = list(session.scalars(query.limit(limit)))
        ticket_ids = {event.ticket_id for event in events if event.ticket_id is not None}
        numbers = {
            ticket_id: number
            for ticket_id, number in session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ticket_ids)))
        }
    if not events:
        click.echo("no audit rows match")
        return
    rows: list[tuple[str, ...]] = [("AT", "WHO", "VIA", "ACTION", "RECORDING", "TICKET", "FROM", "DETAIL")]
    for event in events:
        ticket = numbers.get(event.ticket_id, str(event.ticket_id)) if event.ticket_id is not None else "-"
        via = f"api (token {event.token_id})" if event.via == "api" and event.token_id else event.via
        rows.append(
            (
                event.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                event.actor,
                via,
                event.action,
                event.recording_sid or "-",
                ticket,
                event.remote_addr or "-",
                describe_detail(event),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    if matching > len(events):
        click.echo(f"showing the newest {len(events)} of {matching}; use --limit for more")
