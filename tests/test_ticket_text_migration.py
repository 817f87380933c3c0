"""Migration 0004: a ticket's own transcript columns go, and a correction made on the ticket moves to the take
the ticket's text came from (a new transcript row when transcription had failed, an internal note when there
was no take), so every ticket reads the same before and after; the downgrade brings the columns back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select, text

from ivr.db import utcnow
from ivr.migrate import alembic_config, upgrade_database
from ivr.models import Recording, Ticket, TicketEvent, TicketNote, Transcript


def machine_take(session, ticket: tuple[int, int], sid: str, said: str | None, **fields) -> Recording:
    call_id, ticket_id = ticket
    take = Recording(recording_sid=sid, call_id=call_id, ticket_id=ticket_id, **fields)
    session.add(take)
    if said is not None:
        session.add(Transcript(recording=take, channel=0, text=said, raw_text=said, words=[]))
    return take


def test_corrections_made_on_tickets_move_to_their_takes(settings, database):
    config = alembic_config(settings.database_url)
    command.downgrade(config, "0003")
    with database.session() as session:
        tickets = {}
        for name in ("corrected", "manual", "no_take", "machine_only"):
            # SQL with 0003's columns only: today's models also write the columns of later migrations.
            call_id = session.execute(
                text(
                    "INSERT INTO calls (call_sid, counters, status, started_at, room_confirmed) "
                    "VALUES (:sid, '{}', 'in-progress', :now, false) RETURNING id"
                ),
                {"sid": f"CA{name:0>32}"[:34], "now": utcnow()},
            ).scalar_one()
            ticket_id = session.execute(
                text(
                    "INSERT INTO tickets (number, category, status, call_id, urgent, confirmed, major, recovered, "
                    "created_at) VALUES (:number, 'repair', 'registered', :call_id, false, false, false, false, :now) "
                    "RETURNING id"
                ),
                {"number": name[:20], "call_id": call_id, "now": utcnow()},
            ).scalar_one()
            tickets[name] = (call_id, ticket_id)
        machine_take(session, tickets["corrected"], "RE" + "1" * 32, "楼上漏税")
        machine_take(session, tickets["corrected"], "RE" + "2" * 32, "")  # a later, silent take
        session.add(
            TicketEvent(ticket_id=tickets["corrected"][1], kind="transcript_corrected", actor="wang", detail={})
        )
        machine_take(session, tickets["manual"], "RE" + "3" * 32, None, needs_manual_transcription=True)
        machine_take(session, tickets["machine_only"], "RE" + "4" * 32, "路灯不亮")
        session.flush()
        ids = {name: ticket_id for name, (_call, ticket_id) in tickets.items()}
        for name, machine, corrected in (
            ("corrected", "楼上漏税", "楼上漏水"),
            ("manual", None, "三楼电梯坏了"),
            ("no_take", None, "请回电"),
            ("machine_only", "路灯不亮", None),
        ):
            session.execute(
                text("UPDATE tickets SET transcript = :machine, corrected_transcript = :corrected WHERE id = :id"),
                {"machine": machine, "corrected": corrected, "id": ids[name]},
            )

    upgrade_database(settings.database_url)
    with database.session(read_only=True) as session:
        texts = {name: session.get(Ticket, ticket_id).text for name, ticket_id in ids.items()}
        assert texts == {"corrected": "楼上漏水", "manual": "三楼电梯坏了", "no_take": None, "machine_only": "路灯不亮"}
        first_take = session.scalars(
            select(Transcript).join(Transcript.recording).where(Recording.recording_sid == "RE" + "1" * 32)
        ).one()
        assert (first_take.text, first_take.corrected_text, first_take.corrected_by) == ("楼上漏税", "楼上漏水", "wang")
        typed = session.scalars(
            select(Transcript).join(Transcript.recording).where(Recording.recording_sid == "RE" + "3" * 32)
        ).one()
        assert (typed.channel, typed.text, typed.corrected_text, typed.corrected_by) == (0, "", "三楼电梯坏了", "系统")
        [note] = session.scalars(select(TicketNote).where(TicketNote.ticket_id == ids["no_take"])).all()
        assert (note.text, note.told_caller) == ("人工转写:请回电", False)

    command.downgrade(config, "0003")
    with database.session(read_only=True) as session:
        rows = dict(
            session.execute(
                text(
                    "SELECT id, transcript || '/' || COALESCE(corrected_transcript, '-') "
                    "FROM tickets WHERE transcript IS NOT NULL"
                )
            ).all()
        )
    assert rows == {ids["corrected"]: "楼上漏税/楼上漏水", ids["machine_only"]: "路灯不亮/-"}
    upgrade_database(settings.database_url)
