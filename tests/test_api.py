"""The JSON API: bearer tokens, ticket listing and detail, recordings for staff only."""

from __future__ import annotations

import pytest

from ivr.devphone.callers import Message
from tests.factories import DUAL_WAV, HELLO_WAV


@pytest.fixture
def two_calls(phone, worker):
    repair = phone.call(["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]).raise_for_errors()
    complaint = phone.call(["2", "5*1*1102#", "1", Message(DUAL_WAV), "1"], from_="+8613700001111").raise_for_errors()
    assert worker.wait_idle(timeout=20)
    return repair, complaint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}]
)
def test_the_api_needs_a_valid_bearer_token(client, headers):
    response = client.get("/api/tickets", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_tickets_list_and_filters(client, api_token, two_calls):
    repair, complaint = two_calls
    everything = client.get("/api/tickets", headers=bearer(api_token)).json["tickets"]
    assert [t["call_sid"] for t in everything] == [complaint.call_sid, repair.call_sid]
    by_call = client.get(f"/api/tickets?call_sid={repair.call_sid}", headers=bearer(api_token)).json["tickets"]
    assert [t["category"] for t in by_call] == ["repair"]
    complaints = client.get("/api/tickets?category=complaint", headers=bearer(api_token)).json["tickets"]
    assert [(t["room"], t["caller"]) for t in complaints] == [("5-1-1102", "+8613700001111")]
    assert client.get("/api/tickets?status=closed", headers=bearer(api_token)).json["tickets"] == []


@pytest.mark.parametrize("query", ["category=plumbing", "status=done", "limit=-1", "offset=x"])
def test_bad_filters_are_a_400_with_the_reason(client, api_token, query):
    response = client.get(f"/api/tickets?{query}", headers=bearer(api_token))
    assert response.status_code == 400 and response.json["error"]


def test_ticket_detail_carries_the_record_and_its_recordings(client, api_token, two_calls, settings):
    repair, _ = two_calls
    [summary] = client.get(f"/api/tickets?call_sid={repair.call_sid}", headers=bearer(api_token)).json["tickets"]
    ticket = client.get(f"/api/tickets/{summary['id']}", headers=bearer(api_token)).json
    assert ticket["number"].isdigit() and len(ticket["number"]) == 9
    assert ticket["status"] == "registered" and ticket["confirmed"] is True
    assert ticket["transcript"] is None
    assert ticket["created_at"].endswith("+00:00")
    [recording] = ticket["recordings"]
    assert recording["duration"] == pytest.approx(2.0, abs=0.05)
    assert recording["url"].startswith(settings.public_url + "/api/recordings/")
    assert client.get("/api/tickets/99999", headers=bearer(api_token)).status_code == 404


def test_recording_audio_is_the_exact_bytes_with_range_support(client, api_token, two_calls):
    repair, _ = two_calls
    [summary] = client.get(f"/api/tickets?call_sid={repair.call_sid}", headers=bearer(api_token)).json["tickets"]
    path = summary["recordings"][0]["url"].split("ivr.example.test", 1)[1]
    assert client.get(path).status_code == 401  # staff only
    with client.get(path, headers=bearer(api_token)) as whole:
        assert whole.status_code == 200 and whole.data == HELLO_WAV.read_bytes()
        assert whole.headers["Cache-Control"] == "private, no-store"
    with client.get(path, headers={**bearer(api_token), "Range": "bytes=0-43"}) as part:
        assert part.status_code == 206 and part.data == HELLO_WAV.read_bytes()[:44]


def test_unknown_recording_is_a_404(client, api_token):
    assert client.get("/api/recordings/RE123/audio", headers=bearer(api_token)).status_code == 404


def test_healthz_reports_database_queue_and_model(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["database"] == "ok" and response.json["queue"] == "sqlite"
    assert "not" in response.json["speech_model"]


def test_a_department_token_sees_only_its_department(client, database):
    from ivr.models import TicketStatus
    from ivr.staff import create_token, create_user
    from tests.factories import create_ticket

    mine = create_ticket(database, room="1-1-101", department="工程部", status=TicketStatus.DISPATCHED)
    theirs = create_ticket(database, room="2-2-202", department="秩序维护部", status=TicketStatus.DISPATCHED)
    with database.session() as session:
        user = create_user(session, "gong", "department-password", "department", department="工程部")
        token = create_token(session, "gong-phone", user)
    listed = client.get("/api/tickets", headers=bearer(token)).json["tickets"]
    assert [t["id"] for t in listed] == [mine]
    assert client.get(f"/api/tickets/{theirs}", headers=bearer(token)).status_code == 404


def test_the_api_shows_machine_and_corrected_text_and_the_ticket_text_follows_the_latest_take(client, database):
    from sqlalchemy import select

    from ivr.models import Recording, RecordingState, Ticket, Transcript
    from ivr.staff import create_token, create_user
    from tests.factories import create_ticket

    ticket_id = create_ticket(database, transcript="楼上漏税")
    with database.session() as session:
        token = create_token(session, "desk", create_user(session, "wang", "night-shift-pw", "night_shift"))
        [first] = session.scalars(select(Recording.recording_sid).where(Recording.ticket_id == ticket_id)).all()

    def put(sid: str, text: str):
        return client.put(f"/api/recordings/{sid}/transcripts/0", json={"text": text}, headers=bearer(token))

    def shown() -> tuple[str | None, list[tuple[str, str, str | None]]]:
        body = client.get(f"/api/tickets/{ticket_id}", headers=bearer(token)).json
        return body["transcript"], [
            (r["sid"], t["text"], t["corrected_text"]) for r in body["recordings"] for t in r["transcripts"]
        ]

    corrected = put(first, " 楼上漏水 ")
    assert corrected.status_code == 200
    assert (corrected.json["text"], corrected.json["corrected_text"]) == ("楼上漏税", "楼上漏水")
    assert shown() == ("楼上漏水", [(first, "楼上漏税", "楼上漏水")])

    # A second take: not transcribed yet, so nothing to correct and the ticket still shows the first.
    second = "RE" + "9" * 32
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        session.add(Recording(recording_sid=second, call_id=ticket.call_id, ticket=ticket, state=RecordingState.STORED))
    assert put(second, "还有三楼").status_code == 404
    assert shown()[0] == "楼上漏水"
    # Transcription gives up on it: a person types it, and the latest take's text is the ticket's.
    with database.session() as session:
        take = session.scalars(select(Recording).where(Recording.recording_sid == second)).one()
        take.needs_manual_transcription = True
    assert put(second, "三楼也漏水").status_code == 200
    assert shown() == ("三楼也漏水", [(first, "楼上漏税", "楼上漏水"), (second, "", "三楼也漏水")])
    # Writing the machine's own text back clears the correction.
    assert put(first, "楼上漏税").json["corrected_text"] is None
    with database.session() as session:
        assert (
            session.scalars(
                select(Transcript.corrected_text).join(Transcript.recording).where(Recording.recording_sid == first)
            ).one()
            is None
        )
