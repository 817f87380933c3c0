"""The console through the test client: log-in, roles, CSRF, the procedure, escaping, the audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ivr.models import AuditEvent, Category, LoginAttempt, Ticket, TicketEvent, TicketStatus
from tests.factories import count, create_staff, create_ticket, csrf_from, login


@pytest.fixture
def night(database, client):
    create_staff(database, "wang", "night_shift")
    assert login(client, "wang").status_code == 302
    return client


@pytest.mark.parametrize(
    "path",
    ["/console/", "/console/dashboard", "/console/tickets/1", "/console/users", "/console/recordings/RE123/audio"],
)
def test_logged_out_requests_are_sent_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


def test_a_wrong_password_is_refused_and_recorded(client, database):
    create_staff(database, "wang", "night_shift")
    response = login(client, "wang", "wrong-password")
    assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)
    assert count(database, LoginAttempt) == 1
    assert client.get("/console/").status_code == 302


def test_repeated_failures_lock_the_account_for_a_while(client, database):
    """Five failures for a name from one address refuse that name from that address for a minute; other
    addresses and growing delays: tests/web/test_login.py."""
    create_staff(database, "wang", "night_shift")
    create_staff(database, "li", "night_shift")
    for _ in range(4):
        assert login(client, "wang", "wrong-password").status_code == 401
    assert login(client, "wang").status_code == 302  # four failures: still in
    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/")})
    for _ in range(5):
        assert login(client, "wang", "wrong-password").status_code == 401
    locked = login(client, "wang")  # even the right password, until the delay has passed
    assert locked.status_code == 429 and "请1分钟后再试" in locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= 60
    assert login(client, "li").status_code == 302  # another account from the same address is not refused


def test_login_without_csrf_token_is_refused(client, database):
    create_staff(database, "wang", "night_shift")
    response = client.post("/console/login", data={"username": "wang", "password": "night-shift-password"})
    assert response.status_code == 400


def test_next_parameter_cannot_send_staff_off_site(client, database):
    create_staff(database, "wang", "night_shift")
    page = client.get("/console/login?next=//evil.example/")

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post(
        "/console/login?next=//evil.example/",
        data={"username": "wang", "password": "night-shift-password", "csrf_token": token},
    )
    assert response.headers["Location"] == "/console/"


def queue_rows(client, query: str = "") -> list[str]:
    """The queue's rows (the page's own refresh: no filter form that would echo the search), top to bottom."""
    partial = client.get(f"/console/{query}", headers={"X-Partial": "rows"}).get_data(as_text=True)
    assert partial.lstrip().startswith('<tbody id="queue-rows">'), partial
    return [row for row in partial.split("<tr")[1:] if "没有符合条件的工单" not in row]


def rooms_listed(client, query: str = "") -> list[str]:
    return [re.search(r"<td>(\d+-\d+-\d+|未知)</td>", row).group(1) for row in queue_rows(client, query)]


def test_the_queue_puts_urgent_first_then_overdue(night, database):
    from datetime import timedelta

    from ivr.db import utcnow
    from ivr.models import Call

    # Made in the opposite order to the one expected, so the order on the page is the queue's own.
    create_ticket(database, room="1-1-101")
    late = create_ticket(database, room="3-3-303")
    create_ticket(database, room="2-2-202", urgent=True, urgent_reason="跑水")
    with database.session() as session:
        session.get(Call, session.get(Ticket, late).call_id).started_at = utcnow() - timedelta(hours=2)
    rows = queue_rows(night)
    assert rooms_listed(night) == ["2-2-202", "3-3-303", "1-1-101"]
    urgent, overdue, calm = rows
    assert '<span class="badge urgent">紧急</span>' in urgent
    assert '<span class="badge urgent">' not in overdue + calm
    assert "已超时" in overdue and "已超时" not in calm


def test_queue_filters_and_search(night, database):
    create_ticket(database, room="1-1-101", transcript="楼上漏水了")
    create_ticket(database, room="2-2-202", category=Category.COMPLAINT, transcript="晚上很吵")
    assert rooms_listed(night, "?q=漏水") == ["1-1-101"]
    assert rooms_listed(night, "?q=很吵") == ["2-2-202"]
    assert rooms_listed(night, "?category=complaint") == ["2-2-202"]
    assert rooms_listed(night, "?q=停电") == []


def test_caller_speech_is_shown_as_text_never_as_markup(night, database):
    ticket_id = create_ticket(database, transcript='<script>alert("x")</script><b>楼上漏水</b>')
    page = night.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    queue = night.get("/console/").get_data(as_text=True)
    assert "<script>alert" not in queue


def test_pages_send_a_strict_content_security_policy(night):
    response = night.get("/console/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_complaint_through_the_whole_procedure(night, database):
    ticket_id = create_ticket(database, category=Category.COMPLAINT)
    path = f"/console/tickets/{ticket_id}"

    def step(name: str, **form: str) -> str:
        response = night.post(
            f"{path}/steps/{name}", data={"csrf_token": csrf_from(night, path), **form}, follow_redirects=True
        )
        assert response.status_code == 200
        return response.get_data(as_text=True)

    assert "请填写处理人" in step("dispatch", department="工程部", handler="")
    step("dispatch", department="工程部", handler="李工")
    step("start")
    assert "投诉工单须先填写原因分析与纠正措施" in step("resolve")
    step("analysis", analysis="水管老化,已更换", approved_by="工程部张经理")
    step("resolve")
    step("reply", told="已更换水管,请您放心")
    step("follow_up", result="业主确认不再漏水", satisfaction="满意")
    step("close")
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.CLOSED and ticket.handler == "李工"
        assert ticket.cause_analysis == "水管老化,已更换" and ticket.satisfaction == "满意"
        kinds = [e.kind for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id))]
        assert kinds.count("status") == 7
        views = session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket_id)).all()
        assert views and {(v.action, v.actor, v.via) for v in views} == {("read_ticket", "wang", "console")}
    assert "已更换水管,请您放心" in night.get(path).get_data(as_text=True)


def test_steps_without_a_csrf_token_are_refused(night, database):
    ticket_id = create_ticket(database)
    response = night.post(
        f"/console/tickets/{ticket_id}/steps/dispatch", data={"department": "工程部", "handler": "李工"}
    )
    assert response.status_code == 400


def test_correcting_the_transcript_keeps_the_machine_text(night, database):
    ticket_id = create_ticket(database, room="1-1-101", transcript="楼上漏税")
    create_ticket(database, room="2-2-202", transcript="楼道灯不亮")
    path = f"/console/tickets/{ticket_id}"
    assert rooms_listed(night, "?q=漏水") == []
    night.post(f"{path}/transcript", data={"csrf_token": csrf_from(night, path), "text": "楼上漏水"})
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        [take] = ticket.recordings
        [transcript] = take.transcripts
        # The correction is on the take, beside the machine's text; the ticket's text follows it.
        assert (transcript.text, transcript.corrected_text, transcript.corrected_by) == ("楼上漏税", "楼上漏水", "wang")
        assert ticket.text == "楼上漏水"
        [event] = [e for e in ticket.events if e.kind == "transcript_corrected"]
        assert (event.actor, event.detail["before"], event.detail["after"]) == ("wang", "楼上漏税", "楼上漏水")
    page = night.get(path).get_data(as_text=True)
    assert '<dd class="matter" id="matter">楼上漏水</dd>' in page
    assert '机器转写:<span class="machine">楼上漏税</span>' in page
    # The queue finds the ticket by the corrected words and still by the machine's.
    assert rooms_listed(night, "?q=漏水") == ["1-1-101"]
    assert rooms_listed(night, "?q=漏税") == ["1-1-101"]


def test_a_ticket_without_a_transcribed_take_has_nothing_to_correct(night, database):
    ticket_id = create_ticket(database)  # e.g. a call-back ticket: no message
    path = f"/console/tickets/{ticket_id}"
    assert 'id="corrected"' not in night.get(path).get_data(as_text=True)
    page = night.post(
        f"{path}/transcript", data={"csrf_token": csrf_from(night, path), "text": "楼上漏水"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "这张工单还没有可修改的转写" in page
    with database.session() as session:
        assert session.get(Ticket, ticket_id).text is None


def test_internal_notes_and_what_the_caller_was_told_are_kept_apart(night, database):
    ticket_id = create_ticket(database)
    path = f"/console/tickets/{ticket_id}"
    for text, told_caller in (("内部:需要备件", "0"), ("已告知明早上门", "1")):
        form = {"csrf_token": csrf_from(night, path), "text": text, "told_caller": told_caller}
        night.post(f"{path}/notes", data=form)
    page = night.get(path).get_data(as_text=True)
    internal, told = page.index("内部备注"), page.index("已告知业主</h3>")
    assert internal < page.index("内部:需要备件") < told < page.index("已告知明早上门")


def test_a_department_sees_only_its_own_tickets(client, database):
    mine = create_ticket(database, room="1-1-101", department="工程部", status=TicketStatus.DISPATCHED)
    theirs = create_ticket(database, room="2-2-202", department="秩序维护部", status=TicketStatus.DISPATCHED)
    create_staff(database, "gong", "department", department="工程部")
    login(client, "gong")
    queue = client.get("/console/").get_data(as_text=True)
    assert "1-1-101" in queue and "2-2-202" not in queue
    assert client.get(f"/console/tickets/{mine}").status_code == 200
    assert client.get(f"/console/tickets/{theirs}").status_code == 404
    # and may only take the department's own steps
    path = f"/console/tickets/{mine}"
    response = client.post(
        f"{path}/steps/dispatch",
        data={"csrf_token": csrf_from(client, path), "department": "秩序维护部", "handler": "x"},
    )
    assert response.status_code == 403


def test_flagging_a_major_complaint_tells_managers(client, database):
    ticket_id = create_ticket(database, category=Category.COMPLAINT)
    create_staff(database, "wang", "night_shift")
    create_staff(database, "boss", "manager")
    login(client, "wang")
    path = f"/console/tickets/{ticket_id}"
    client.post(f"{path}/flag", data={"csrf_token": csrf_from(client, path), "reason": "多户联名投诉"})
    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/")})
    login(client, "boss")
    page = client.get("/console/").get_data(as_text=True)
    assert "多户联名投诉" in page


def test_only_admins_manage_accounts(client, database):
    create_staff(database, "wang", "night_shift")
    login(client, "wang")
    assert client.get("/console/users").status_code == 403


def test_admin_creates_and_deactivates_an_account(client, database):
    create_staff(database, "root", "admin")
    login(client, "root")
    token = csrf_from(client, "/console/users")
    client.post(
        "/console/users", data={"csrf_token": token, "username": "li", "password": "long-enough-pw", "role": "qa"}
    )
    from ivr.models import User

    with database.session() as session:
        user = session.scalars(select(User).where(User.username == "li")).one()
        user_id = user.id
    client.post(f"/console/users/{user_id}", data={"csrf_token": token, "action": "toggle"})
    with database.session() as session:
        assert session.get(User, user_id).active is False


def test_dashboard_counts_overdue_tickets(night, database):
    from datetime import timedelta

    from ivr.db import utcnow
    from ivr.models import Call

    ticket_id = create_ticket(database)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        session.get(Call, ticket.call_id).started_at = utcnow() - timedelta(hours=2)
    page = night.get("/console/dashboard").get_data(as_text=True)

    assert re.search(r'id="overdue-dispatch"><span class="big">1<', page), page


def test_a_listen_is_audited_by_the_audio_route_and_shown_on_the_timeline(night, database, settings):
    from ivr.models import Recording, RecordingState
    from tests.factories import HELLO_WAV

    ticket_id = create_ticket(database)
    stored = settings.recordings_dir / "2026/11/27/x/RE1.wav"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(HELLO_WAV.read_bytes())
    sid = "RE" + "1" * 32
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        session.add(
            Recording(
                recording_sid=sid,
                call_id=ticket.call_id,
                ticket=ticket,
                state=RecordingState.STORED,
                path="2026/11/27/x/RE1.wav",
            )
        )
    path = f"/console/tickets/{ticket_id}"

    def listens() -> list[AuditEvent]:
        with database.session() as session:
            return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "listen")))

    page = night.get(path).get_data(as_text=True)
    # The player does not preload: opening the ticket fetches no audio and is not a listen.
    assert f'<audio controls preload="none" src="/console/recordings/{sid}/audio">' in page
    assert listens() == [] and "收听录音" not in page
    with night.get(f"/console/recordings/{sid}/audio", headers={"Range": "bytes=0-"}) as audio:
        assert audio.status_code == 206 and audio.data == HELLO_WAV.read_bytes()
    [listen] = listens()
    assert (listen.actor, listen.via, listen.ticket_id, listen.recording_sid) == ("wang", "console", ticket_id, sid)
    timeline = night.get(path).get_data(as_text=True).split('class="timeline"')[1]
    assert f"<strong>wang</strong> 收听录音 <small>recording={sid} </small>" in timeline


def test_staff_complete_the_record_with_the_callers_name_and_room(night, database):
    ticket_id = create_ticket(database, room=None)
    path = f"/console/tickets/{ticket_id}"
    bad = night.post(
        f"{path}/caller",
        data={"csrf_token": csrf_from(night, path), "caller_name": "张先生", "room": "三栋"},
        follow_redirects=True,
    )
    assert "房号格式应为" in bad.get_data(as_text=True)
    form = {"csrf_token": csrf_from(night, path), "caller_name": "张先生", "room": "3-2-501"}
    night.post(f"{path}/caller", data=form)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.caller_name, ticket.room) == ("张先生", "3-2-501")
    assert "修改来电记录" in night.get(path).get_data(as_text=True)


def test_the_console_says_when_messages_are_not_being_transcribed(night):
    assert "语音模型未安装" in night.get("/console/").get_data(as_text=True)


def test_the_ticket_shows_the_live_text_apart_from_the_recordings_transcript(night, database):
    from ivr.models import LiveTranscript

    ticket_id = create_ticket(database, transcript="楼上漏水")
    with database.session() as session:
        [take] = session.get(Ticket, ticket_id).recordings
        take.live_transcript = LiveTranscript(text="楼上漏税", raw_text="楼上 漏税", words=[], duration=1.0)
    page = night.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert "<strong>通话中实时识别</strong><small>(复述给来电人用;以上录音转写为准)</small>" in page
    assert '<span class="live-text">楼上漏税</span>' in page
    # The ticket's text is the recording's transcript, not what was heard live.
    assert '<dd class="matter" id="matter">楼上漏水</dd>' in page
