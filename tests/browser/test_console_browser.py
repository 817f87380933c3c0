"""The staff console in a real browser (Debian's Chromium under Playwright) against a live server: the night
shift works a called-in complaint from log-in to close, listening to the message; logged-out and department
users are kept out; the keyboard and a phone-sized screen work; caller speech is never markup."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivr.models import AuditEvent, Category, Recording, Ticket, TicketStatus, Transcript
from tests.browser.conftest import CHROMIUM, call_in_a_complaint, store_recording
from tests.factories import HELLO_WAV, PASSWORD, create_staff, create_ticket

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium (./scripts/test does, as root)"
    ),
]

expect = pytest.importorskip("playwright.sync_api").expect


def watch_for_errors(page) -> list[str]:
    """Collects uncaught script errors, console errors (CSP violations among them) and dialogs on `page`."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message) -> None:
        # Chromium asks for /favicon.ico on its own; the console has none, and nobody sees that 404.
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            problems.append(f"console error at {where}: {message.text}")

    page.on("console", console)

    def dismiss(dialog) -> None:
        problems.append(f"dialog ({dialog.type}): {dialog.message}")
        dialog.dismiss()

    page.on("dialog", dismiss)
    return problems


def listens(database) -> list[tuple[str, str | None, int | None]]:
    """The audited listens: who, which recording, on which ticket."""
    with database.session() as session:
        return [
            (e.actor, e.recording_sid, e.ticket_id)
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "listen"))
        ]


def log_in(page, url: str, username: str) -> None:
    """Log in through the form, as staff do, and land on the queue."""
    page.goto(f"{url}/console/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="工单队列")).to_be_visible()


def ticket_number(database, ticket_id: int) -> str:
    with database.session() as session:
        return session.get(Ticket, ticket_id).number


def status_badge(page):
    return page.locator("h1 .badge.status")


def record_value(page, term: str):
    """The <dd> after the <dt> named `term` in the ticket's record lists."""
    return page.locator(f"dl.record dt:text-is('{term}') + dd")


def take_step(page, step: str, label: str, expected_status: str) -> None:
    """Submit one procedure form; the flash confirms it and the status badge changes."""
    page.locator(f"#step-{step}").get_by_role("button", name=label).click()
    expect(page.locator(".flash.ok[role=status]")).to_have_text(f"已完成:{label}")
    expect(status_badge(page)).to_have_text(expected_status)


def test_night_shift_listens_to_a_called_in_complaint_and_works_it_to_closed(
    live, settings, recording_server, context, database
):
    called = call_in_a_complaint(live, settings, recording_server)
    create_staff(database, "wang", "night_shift")
    page = context.new_page()
    problems = watch_for_errors(page)

    # Log in, find the caller's room in the queue, open the ticket.
    page.goto(f"{live.url}/console/")
    expect(page).to_have_url(f"{live.url}/console/login?next=%2Fconsole%2F")
    page.get_by_label("用户名").fill("wang")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="工单队列")).to_be_visible()
    page.get_by_label("房号").fill("3-2-501")
    page.get_by_role("button", name="筛选").click()
    row = page.locator("#queue-rows tr", has_text="3-2-501")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("投诉")
    row.get_by_role("link", name=called.number).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"工单 {called.number}")
    expect(status_badge(page)).to_have_text("已登记")
    expect(record_value(page, "房号")).to_have_text("3-2-501")

    # Opening the ticket fetches no audio (the player does not preload), so it is not a listen.
    audio = page.locator(f'.take[data-take="{called.recording_sid}"] audio')
    expect(audio).to_have_count(1)
    page.wait_for_load_state("networkidle")
    assert listens(live.database) == []
    # The message plays; the server audits the listen when it sends the audio.
    audio.evaluate("a => a.play()")
    page.wait_for_function("a => !a.paused && a.currentTime > 0.3", arg=audio.element_handle())
    audio.evaluate("a => a.pause()")
    duration = audio.evaluate("a => a.duration")
    assert duration == pytest.approx(3.31, abs=0.2), "the page plays different audio than the caller left"
    assert listens(live.database) == [("wang", called.recording_sid, called.id)]

    # Clicking a transcript word seeks to it, and the word is highlighted while it plays.
    words = page.locator(f'.take[data-take="{called.recording_sid}"] button.word')
    expect(words).to_have_count(len(called.words))
    index = max(range(len(called.words)), key=lambda i: called.words[i]["end"] - called.words[i]["start"])
    word = words.nth(index)
    expect(word).to_have_text(called.words[index]["word"])
    start = float(word.get_attribute("data-start"))
    audio.evaluate("a => { window.seekedTo = []; a.addEventListener('seeking', () => seekedTo.push(a.currentTime)); }")
    word.click()
    page.wait_for_function("() => window.seekedTo.length > 0", timeout=5_000)  # times out: the click did not seek
    assert page.evaluate("window.seekedTo[0]") == pytest.approx(start, abs=0.3)
    # Checked in one go: playback moves on to the next word (or a gap) within a fraction of a second.
    page.wait_for_function(
        "([a, w]) => !a.paused && w.classList.contains('current')"
        " && w.getAttribute('aria-current') === 'true'"
        " && document.querySelectorAll('button.word.current').length === 1",
        arg=[audio.element_handle(), word.element_handle()],
    )
    audio.evaluate("a => a.pause()")

    # Correct the transcript: the corrected text is the matter; the machine's is kept beside it.
    machine_text = page.locator("#matter").inner_text()
    assert machine_text and machine_text != "(尚未转写)"
    page.get_by_label("修改转写(原始机器转写保留)").fill("业主投诉:楼上卫生间漏水,已渗到客厅天花板")
    page.get_by_role("button", name="保存转写").click()
    expect(page.locator(".flash.ok[role=status]")).to_contain_text("转写已保存")
    expect(page.locator("#matter")).to_have_text("业主投诉:楼上卫生间漏水,已渗到客厅天花板")
    expect(page.locator(".hint .machine")).to_have_text(machine_text)

    # The procedure, step by step.
    dispatch = page.locator("#step-dispatch")
    dispatch.get_by_label("责任部门").select_option("工程部")
    dispatch.get_by_label("处理人(接收人签收)").fill("李工")
    take_step(page, "dispatch", "转交责任部门", "已转交")
    expect(record_value(page, "责任部门")).to_have_text("工程部")
    expect(record_value(page, "处理人")).to_have_text("李工")

    take_step(page, "start", "开始处理", "处理中")

    # A complaint cannot be resolved before its cause analysis.
    page.locator("#step-resolve").get_by_role("button", name="处理完毕").click()
    expect(page.locator(".flash.error[role=status]")).to_have_text("投诉工单须先填写原因分析与纠正措施")
    expect(status_badge(page)).to_have_text("处理中")

    analysis = page.locator("#step-analysis")
    analysis.get_by_label("原因分析与纠正措施").fill("楼上卫生间防水层老化;已重做防水并修补天花板")
    analysis.get_by_label("部门负责人审批").fill("工程部张经理")
    take_step(page, "analysis", "原因分析与纠正措施", "已分析")
    expect(record_value(page, "原因分析与纠正措施")).to_have_text(
        "楼上卫生间防水层老化;已重做防水并修补天花板(审批:工程部张经理)"
    )

    take_step(page, "resolve", "处理完毕", "已处理")

    page.locator("#step-reply").get_by_label("答复业主的内容").fill("已重做防水,天花板已修补,请您放心")
    take_step(page, "reply", "答复业主", "已回复")
    expect(page.locator("#notes")).to_contain_text("已重做防水,天花板已修补,请您放心")

    follow_up = page.locator("#step-follow_up")
    follow_up.get_by_label("回访结果").fill("业主确认不再漏水")
    follow_up.get_by_label("满意度").select_option("满意")
    take_step(page, "follow_up", "回访", "已回访")
    expect(record_value(page, "回访")).to_have_text("业主确认不再漏水 · 满意")

    take_step(page, "close", "关闭", "已关闭")
    expect(page.locator("form.step[id^=step-] legend")).to_have_text(["重新打开"])

    # Seeking and replaying made more range requests: still one listen. The timeline lists what happened.
    assert listens(live.database) == [("wang", called.recording_sid, called.id)]
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li", has_text="收听录音")).to_have_count(1)
    expect(timeline).to_contain_text("修改转写")
    expect(timeline).to_contain_text("下载录音(done)")
    if called.transcribed_by_model:
        expect(timeline).to_contain_text("语音转写(done)")
    changes = timeline.locator("li", has_text="状态变更")
    expect(changes).to_have_count(7)
    moved_to = [text.split("to=")[1].split()[0] for text in changes.all_inner_texts()]
    assert moved_to == ["dispatched", "in_progress", "analysed", "resolved", "replied", "followed_up", "closed"]
    assert problems == []


def test_logged_out_browser_gets_the_login_page_and_no_audio(live, settings, context, database):
    ticket_id = create_ticket(database, room="5-1-302")
    store_recording(database, settings, ticket_id, "RE" + "a" * 32, HELLO_WAV)
    create_staff(database, "wang", "night_shift")
    audio_url = f"{live.url}/console/recordings/{'RE' + 'a' * 32}/audio"
    page = context.new_page()
    problems = watch_for_errors(page)

    for path in ("/console/", f"/console/tickets/{ticket_id}", "/console/dashboard"):
        page.goto(live.url + path)
        expect(page.get_by_role("heading", name="值班人员登录")).to_be_visible()
        assert page.url.startswith(f"{live.url}/console/login?next=")
        expect(page.locator("body")).not_to_contain_text("5-1-302")

    # The recording's address typed into the browser: the login page, not the audio.
    response = page.goto(audio_url)
    assert response is not None and response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="值班人员登录")).to_be_visible()
    direct = context.request.get(audio_url, max_redirects=0)
    assert direct.status == 302 and "/console/login" in direct.headers["location"]
    assert b"RIFF" not in direct.body()

    # The same address does serve the audio once logged in (so the refusal above is about the login).
    log_in(page, live.url, "wang")
    served = context.request.get(audio_url)
    assert served.status == 200 and served.headers["content-type"].startswith("audio/")
    assert served.body() == HELLO_WAV.read_bytes()
    assert problems == []


def test_a_department_sees_its_own_tickets_only(live, context, database):
    create_staff(database, "gong", "department", department="工程部")
    own = create_ticket(
        database,
        room="1-1-101",
        department="工程部",
        handler="李工",
        status=TicketStatus.DISPATCHED,
        transcript="厨房水管爆了",
    )
    other = create_ticket(
        database,
        room="2-2-202",
        department="秩序维护部",
        handler="赵队",
        status=TicketStatus.DISPATCHED,
        transcript="地下车库有人乱停车",
    )
    page = context.new_page()
    problems = watch_for_errors(page)
    log_in(page, live.url, "gong")

    rows = page.locator("#queue-rows tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("1-1-101")
    expect(page.locator("#queue")).not_to_contain_text("2-2-202")
    expect(page.locator("#queue")).not_to_contain_text("地下车库")

    rows.get_by_role("link").click()
    expect(page).to_have_url(f"{live.url}/console/tickets/{own}")
    expect(page.locator("#matter")).to_have_text("厨房水管爆了")
    # A department starts the work; forwarding is the night shift's.
    expect(page.locator("form.step[id^=step-] legend")).to_have_text(["开始处理"])
    take_step(page, "start", "开始处理", "处理中")

    response = page.goto(f"{live.url}/console/tickets/{other}")
    assert response is not None and response.status == 404
    expect(page.locator("body")).not_to_contain_text("2-2-202")
    expect(page.locator("body")).not_to_contain_text("地下车库")
    assert problems == [
        f"console error at {live.url}/console/tickets/{other}: "
        "Failed to load resource: the server responded with a status of 404 (NOT FOUND)"
    ]


def test_keyboard_log_in_and_the_queue_on_a_phone(live, context, database):
    create_staff(database, "wang", "night_shift")
    ticket_id = create_ticket(database, room="7-3-1201", category=Category.REPAIR, transcript="电梯停在三楼不动")
    number = ticket_number(database, ticket_id)
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    problems = watch_for_errors(page)

    # Keyboard only: the user name field has focus, Tab moves to the password, Enter submits.
    page.goto(f"{live.url}/console/login")
    assert page.evaluate("document.activeElement && document.activeElement.name") == "username"
    page.keyboard.type("wang")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="工单队列")).to_be_visible()

    # On a 390 px wide screen nothing needs sideways scrolling and the ticket's link is on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    link = page.locator("#queue-rows").get_by_role("link", name=number)
    link.scroll_into_view_if_needed()
    expect(link).to_be_visible()
    expect(link).to_be_in_viewport()
    box = link.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    expect(page.locator("#queue-rows tr", has_text=number)).to_contain_text("电梯停在三楼不动")

    # The link is reachable with Tab and opens with Enter.
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == number:
            break
    else:
        pytest.fail(f"the link to ticket {number} is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live.url}/console/tickets/{ticket_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(number)
    link_back = page.get_by_role("link", name="工单队列")
    expect(link_back).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert problems == []


MARKUP = "<img src=x onerror=alert(1)>"


def test_markup_in_what_the_caller_said_is_shown_as_text(live, settings, context, database):
    create_staff(database, "wang", "night_shift")
    ticket_id = create_ticket(database, room="9-9-909")
    sid = "RE" + "b" * 32
    store_recording(database, settings, ticket_id, sid, HELLO_WAV)
    with database.session() as session:
        recording_id = session.scalars(select(Recording.id).where(Recording.recording_sid == sid)).one()
        session.add(
            Transcript(
                recording_id=recording_id,
                channel=0,
                text=f"楼上{MARKUP}漏水",
                raw_text="",
                words=[
                    {"word": "楼上", "start": 0.0, "end": 0.3, "conf": 0.9, "low_confidence": False},
                    {"word": MARKUP, "start": 0.3, "end": 0.6, "conf": 0.9, "low_confidence": False},
                ],
                duration=1.0,
                model="inserted-by-test",
            )
        )
    page = context.new_page()
    problems = watch_for_errors(page)
    log_in(page, live.url, "wang")

    # The queue's first words, the matter, the transcript word and the correction box all show the text.
    expect(page.locator("#queue-rows")).to_contain_text("楼上<img src=x")
    page.locator("#queue-rows").get_by_role("link").click()
    expect(page.locator("#matter")).to_have_text(f"楼上{MARKUP}漏水")
    expect(page.locator("button.word").nth(1)).to_have_text(MARKUP)
    expect(page.locator("#corrected")).to_have_value(f"楼上{MARKUP}漏水")
    # No element was made of it (the CSP would also stop the handler, so a missing dialog alone proves little).
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert problems == []


def test_a_call_back_on_a_day_off_is_asked_for_with_a_reason(live, context, database):
    """The 回拨 button warns when the resident should not be called at home, and the browser itself will not send
    the request without the reason; with one, the staff member is told their phone rings first."""
    from ivr.followup.call_back import NOT_REACHED
    from ivr.models import CallBack, CallBackState
    from ivr.properties import save_property
    from ivr.staff import create_user

    with database.session() as session:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        days_off = ",".join(str(today + timedelta(days=n)) for n in (-1, 0, 1))  # whatever the hour of the run
        save_property(session, "default", numbers=("+861062345678",), call_days_off=days_off)
        create_user(session, "wang", PASSWORD, "night_shift", display_name="王芳", phone="+8613800000001")
    ticket_id = create_ticket(database, room="3-2-501", transcript="厨房漏水")
    page = context.new_page()
    problems = watch_for_errors(page)
    log_in(page, live.url, "wang")
    page.goto(f"{live.url}/console/tickets/{ticket_id}")

    card = page.locator("#call-back")
    expect(card.locator("#call-back-warning")).to_contain_text("今天是休息日,不宜打电话到居民住家")
    card.get_by_role("button", name="仍要回拨").click()  # no reason: the form is not sent
    assert card.get_by_label("回拨原因").evaluate("field => field.validity.valueMissing")
    with database.session() as session:
        assert session.scalars(select(CallBack)).all() == []

    card.get_by_label("回拨原因").fill("住户要求今天回电")
    card.get_by_role("button", name="仍要回拨").click()
    expect(page.locator(".flash.ok[role=status]")).to_have_text("正在拨打您的电话 +8613800000001,接听后为您接通住户")
    with database.session() as session:
        call_back = session.scalars(select(CallBack)).one()
        assert call_back.reason == "住户要求今天回电" and call_back.outside_window
    # Twilio is out of reach from the tests: the placement says so on the card, instead of ringing anyone later.
    deadline = time.monotonic() + 45  # the REST client's own bound is 30 s
    while call_back.state != CallBackState.FAILED and time.monotonic() < deadline:
        time.sleep(0.2)
        with database.session() as session:
            call_back = session.scalars(select(CallBack)).one()
    page.reload()
    expect(card.locator(".call-backs li")).to_contain_text(f"未接通({NOT_REACHED})")
    assert problems == []
