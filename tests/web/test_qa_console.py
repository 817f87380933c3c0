"""The QA screens through the test client: the list, a call's scorecard with evidence, reviews, corrected
transcripts that re-score, the staff member's response, access by role, weekly reports and their CSV."""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ivr.models import Call, CallEvent, Evaluation, EvaluationStatus, Recording, RecordingState, Transcript
from ivr.qa.evaluations import evaluate_call
from ivr.staff import create_user
from tests.factories import PASSWORD, create_staff, csrf_from, login

SHANGHAI = ZoneInfo("Asia/Shanghai")
WANG_NUMBER, LI_NUMBER = "+8613800000001", "+8613800000002"


def good_call(name: str = "王芳") -> str:
    """Everything the standard asks for (E7 does not arise), greeting with the staff member's own name."""
    return (
        f"您好幸福家园物业服务中心我是{name}很高兴为您服务。请问您住几号楼哪个房间?请问您贵姓?"
        "请问怎样与您联系?请问有什么可以帮您?好的跟您确认一下,三号楼二单元五零一室厨房漏水,对吗?"
        "谢谢您,我们马上安排,再见。"
    )


GOOD_CALL = good_call()
NO_GREETING_CALL = GOOD_CALL.replace("您好幸福家园物业服务中心我是王芳很高兴为您服务。", "喂。")
RUDE_CALL = "喂。什么?再说一遍!你是谁?等着!"
CALLER = "你好我家厨房漏水了"


def timed_words(text: str, start: float = 1.0, step: float = 0.25) -> list[dict]:
    """Vosk-like timed words: two characters a word, a short pause after each sentence."""
    words, at = [], start
    for sentence in re.split(r"[,。!?]", text):
        for i in range(0, len(sentence), 2):
            words.append({"word": sentence[i : i + 2], "start": round(at, 2), "end": round(at + step, 2), "conf": 0.9})
            at += step
        at += 0.8
    return words


def create_evaluated_call(
    database,
    *,
    staff_text: str = GOOD_CALL,
    caller_text: str = CALLER,
    agent_number: str = WANG_NUMBER,
    started_at: datetime | None = None,
    ring_seconds: int = 6,
    caller_hung_up: bool = True,
) -> str:
    """A transferred call as the webhooks and the transcription job leave it — Dial status events, the
    Dial's result, a dual-channel recording with both channels' timed words — then scored. Returns the
    CallSid."""
    # Twilio's event timestamps have whole seconds.
    started = started_at or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    call_sid, leg_sid = "CA" + secrets.token_hex(16), "CA" + secrets.token_hex(16)
    with database.session() as session:
        call = Call(
            call_sid=call_sid,
            from_number="+8613912345678",
            to_number="+861062345678",
            status="completed",
            started_at=started,
            ended_at=started + timedelta(minutes=2),
        )
        session.add(call)

        def dial_status(status: str, after: float) -> CallEvent:
            moment = started + timedelta(seconds=after)
            return CallEvent(
                call=call,
                endpoint="dial-status",
                at=moment,
                params={
                    "CallSid": leg_sid,
                    "CallStatus": status,
                    "To": agent_number,
                    "Timestamp": format_datetime(moment, usegmt=True),
                },
            )

        session.add_all(
            [
                dial_status("ringing", 2),
                dial_status("in-progress", 2 + ring_seconds),
                CallEvent(
                    call=call,
                    endpoint="dial-result",
                    at=started + timedelta(seconds=90),
                    params={
                        "DialCallStatus": "completed",
                        "CallStatus": "completed" if caller_hung_up else "in-progress",
                    },
                ),
            ]
        )
        recording = Recording(
            recording_sid="RE" + secrets.token_hex(16),
            call=call,
            source="dial",
            state=RecordingState.STORED,
            channels=2,
            duration=80.0,
            path="dial.wav",
        )
        session.add(recording)
        for channel, text in ((0, caller_text), (1, staff_text)):
            words = timed_words(text)
            session.add(
                Transcript(
                    recording=recording,
                    channel=channel,
                    words=words,
                    text="".join(w["word"] for w in words),
                    raw_text="",
                )
            )
        session.flush()
        evaluation = evaluate_call(session, call, "幸福家园")
        assert evaluation is not None
        evaluation.created_at = started
    return call_sid


def evaluation_of(database, call_sid: str) -> Evaluation:
    with database.session() as session:
        evaluation = session.scalars(select(Evaluation).join(Evaluation.call).where(Call.call_sid == call_sid)).one()
        session.expunge(evaluation)
        return evaluation


def add_agent(database, username: str, display_name: str, phone: str) -> None:
    with database.session() as session:
        create_user(session, username, PASSWORD, "night_shift", display_name=display_name, phone=phone)


@pytest.fixture
def agents(database):
    add_agent(database, "wangfang", "王芳", WANG_NUMBER)
    add_agent(database, "lina", "李娜", LI_NUMBER)


@pytest.fixture
def qa(client, database, agents):
    create_staff(database, "zhang", "qa")
    assert login(client, "zhang").status_code == 302
    return client


def post_review(client, call_sid: str, **fields: str):
    path = f"/console/qa/calls/{call_sid}"
    return client.post(f"{path}/review", data={"csrf_token": csrf_from(client, path), **fields}, follow_redirects=True)


def test_the_list_shows_evaluated_calls_newest_first_with_scores(qa, database):
    older = create_evaluated_call(database, staff_text=RUDE_CALL, started_at=datetime(2024, 3, 5, 2, 0, tzinfo=UTC))
    newer = create_evaluated_call(
        database,
        agent_number=LI_NUMBER,
        staff_text=good_call("李娜"),
        started_at=datetime(2024, 3, 6, 2, 0, tzinfo=UTC),
    )
    page = qa.get("/console/qa").get_data(as_text=True)
    assert page.index(newer) < page.index(older)
    rows = {sid: page[page.index(f'data-call="{sid}"') :].split("</tr>")[0] for sid in (older, newer)}
    assert "2024-03-05 10:00" in rows[older]  # local time (UTC+8)
    assert "王芳" in rows[older] and "关键项不合格" in rows[older] and "待复核" in rows[older]
    assert re.search(r'final-score">0\.0<', rows[older])
    assert "李娜" in rows[newer] and re.search(r'final-score">100\.0<', rows[newer])

    only_wang = qa.get("/console/qa?agent=wangfang").get_data(as_text=True)
    assert older in only_wang and newer not in only_wang
    assert older not in qa.get("/console/qa?week=2024-W09").get_data(as_text=True)
    assert newer in qa.get("/console/qa?week=2024-W10").get_data(as_text=True)
    assert older not in qa.get("/console/qa?status=reviewed").get_data(as_text=True)


def test_a_daily_sample_picks_unreviewed_calls_the_same_way_all_day(qa, database):
    sids = [create_evaluated_call(database) for _ in range(5)]
    reviewed = sids[0]
    post_review(qa, reviewed, comment="已听")

    def picked() -> set[str]:
        page = qa.get("/console/qa?sample=2").get_data(as_text=True)
        return set(re.findall(r'data-call="(CA\w+)"', page))

    first = picked()
    assert len(first) == 2 and reviewed not in first and first <= set(sids)
    assert picked() == first


def test_the_call_page_shows_each_question_with_evidence_that_seeks_the_player(qa, database):
    call_sid = create_evaluated_call(database)
    evaluation = evaluation_of(database, call_sid)
    page = qa.get(f"/console/qa/calls/{call_sid}").get_data(as_text=True)
    sid = re.search(r"/console/recordings/(RE\w+)/audio", page).group(1)
    # No preload: opening the page sends no audio, so it is not audited as a listen (the audio route is).
    assert f'<audio controls preload="none" src="/console/recordings/{sid}/audio">' in page
    # The greeting's evidence: what was said, when, as a button that seeks the player to its start.
    greeting = evaluation.suggested["E2"]["evidence"][0]
    button = re.search(
        r'<button type="button" class="seek" data-start="([\d.]+)"[^>]*>▶ ([\d.]+)秒</button>'
        r' <span class="who">值班人员</span>:<q>([^<]+)</q>',
        page,
    )
    assert button, page
    assert float(button.group(1)) == greeting["start"] and button.group(3) == greeting["text"]
    assert "通话第8.0秒" in page and "接听 +8613800000001" in page  # E1's evidence is the call's events
    for qid in ("E1", "E2", "E8"):
        assert f'id="q-{qid}"' in page
    assert "关键项" in page[page.index('id="q-E8"') :]
    # Both channels, word by word, in the player's take.
    assert page.count('class="word"') == len(timed_words(GOOD_CALL)) + len(timed_words(CALLER))
    assert 'class="take qa-layout"' in page and "qa.js" in page and "player.js" in page


def test_an_override_needs_a_comment_and_changes_only_the_final_score(qa, database):
    call_sid = create_evaluated_call(database)
    assert evaluation_of(database, call_sid).suggested["E5"]["answer"] == "yes"

    assert qa.post(f"/console/qa/calls/{call_sid}/review", data={"answer-E5": "no"}).status_code == 400  # no CSRF
    refused = post_review(qa, call_sid, **{"answer-E5": "no", "comment-E5": ""}).get_data(as_text=True)
    assert "E5 改判需要填写说明" in refused
    assert evaluation_of(database, call_sid).status == EvaluationStatus.SUGGESTED

    saved = post_review(
        qa, call_sid, **{"answer-E5": "no", "comment-E5": "礼貌用语不足,只说了一次请", "comment": "整体良好"}
    ).get_data(as_text=True)
    evaluation = evaluation_of(database, call_sid)
    # E7 does not apply; 80 of the remaining 90 points.
    assert (evaluation.suggested_score, evaluation.final_score) == (100.0, 88.9)
    assert evaluation.status == EvaluationStatus.REVIEWED and evaluation.reviewer == "zhang"
    assert 'id="final-score" class="big-score">88.9<' in saved and 'id="suggested-score">100.0<' in saved
    assert "复核人zhang改判:礼貌用语不足,只说了一次请" in saved


def test_a_corrected_transcript_rescores_the_call_and_keeps_the_reviewers_answers(qa, database):
    call_sid = create_evaluated_call(database)
    post_review(qa, call_sid, **{"answer-E5": "no", "comment-E5": "语气生硬"})
    path = f"/console/qa/calls/{call_sid}"
    response = qa.post(
        f"{path}/transcripts/1",
        data={"csrf_token": csrf_from(qa, path), "text": GOOD_CALL + "等着!"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    evaluation = evaluation_of(database, call_sid)
    assert evaluation.suggested["E8"]["answer"] == "no"
    assert evaluation.suggested["E8"]["evidence"][0]["say_instead"] == "请稍等一会儿。"
    assert evaluation.final["E5"]["answer"] == "no"  # the override stays
    assert evaluation.critical_failed and (evaluation.suggested_score, evaluation.final_score) == (0.0, 0.0)
    page = response.get_data(as_text=True)
    assert "值班人员转写已保存并重新评分" in page and "应说:请稍等一会儿。" in page
    with database.session() as session:
        transcript = session.scalars(select(Transcript).where(Transcript.channel == 1)).one()
        assert transcript.corrected_by == "zhang" and transcript.words  # the machine's words stay


def test_the_agent_acknowledges_or_disputes_and_nobody_else_may(client, database, agents):
    call_sid = create_evaluated_call(database)
    path = f"/console/qa/calls/{call_sid}"
    login(client, "wangfang")
    page = client.get(path).get_data(as_text=True)
    assert "我的回应" in page and "保存复核" not in page and "保存并重新评分" not in page  # read-only
    assert client.get("/console/qa").status_code == 403
    assert client.post(f"{path}/review", data={"csrf_token": csrf_from(client, path)}).status_code == 403
    assert call_sid in client.get("/console/qa/mine").get_data(as_text=True)

    def respond(**form: str) -> str:
        return client.post(
            f"{path}/respond", data={"csrf_token": csrf_from(client, path), **form}, follow_redirects=True
        ).get_data(as_text=True)

    assert "申诉需要说明理由" in respond(action="dispute", comment=" ")
    assert evaluation_of(database, call_sid).status == EvaluationStatus.SUGGESTED
    respond(action="dispute", comment="当时来电人信号不好")
    evaluation = evaluation_of(database, call_sid)
    assert (evaluation.status, evaluation.agent_comment) == (EvaluationStatus.DISPUTED, "当时来电人信号不好")
    assert "已确认评分结果" in respond(action="accept")
    assert evaluation_of(database, call_sid).status == EvaluationStatus.ACKNOWLEDGED

    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/")})
    login(client, "lina")  # another night-shift member
    assert client.get(path).status_code == 403
    assert client.get("/console/qa/calls/CA-no-such-call").status_code == 403
    assert (
        client.post(
            f"{path}/respond", data={"csrf_token": csrf_from(client, "/console/"), "action": "accept"}
        ).status_code
        == 403
    )
    assert client.get("/console/qa/reports").status_code == 403


@pytest.mark.parametrize(
    "path", ["/console/qa", "/console/qa/mine", "/console/qa/reports", "/console/qa/reports.csv", "{call}"]
)
def test_department_users_may_not_see_qa(client, database, agents, path):
    call_sid = create_evaluated_call(database)
    create_staff(database, "gong", "department", department="工程部")
    login(client, "gong")
    assert client.get(path.format(call=f"/console/qa/calls/{call_sid}")).status_code == 403


def test_speech_with_markup_is_shown_as_text(qa, database):
    call_sid = create_evaluated_call(database, caller_text='<script>alert("x")</script>漏水')
    path = f"/console/qa/calls/{call_sid}"
    assert ">&lt;s</button>" in qa.get(path).get_data(as_text=True)  # the machine's words, escaped
    for channel, text in ((0, '<script>alert("x")</script>漏水'), (1, "<b>你是谁</b>")):
        qa.post(f"{path}/transcripts/{channel}", data={"csrf_token": csrf_from(qa, path), "text": text})
    page = qa.get(path).get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;漏水" in page
    assert "<b>" not in page and "&lt;b&gt;你是谁&lt;/b&gt;" in page


def local(day: int, hour: int) -> datetime:
    """March 2024, Shanghai time (W10 is 4–10 March, W11 is 11–17 March)."""
    return datetime(2024, 3, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def two_weeks(database, agents):
    """王芳: W10 a good call and one without the greeting, W11 a rude one. 李娜: W10 good, W11 good and
    one without the greeting. Monday 01:00 local is still Sunday in UTC: it counts in the local week."""
    create_evaluated_call(database, started_at=local(4, 1))
    create_evaluated_call(database, staff_text=NO_GREETING_CALL, started_at=local(6, 15))
    create_evaluated_call(database, staff_text=RUDE_CALL, started_at=local(12, 22))
    for day, text in ((5, good_call("李娜")), (13, good_call("李娜")), (14, NO_GREETING_CALL)):
        create_evaluated_call(database, agent_number=LI_NUMBER, staff_text=text, started_at=local(day, 9))
    create_evaluated_call(database, started_at=local(18, 9))  # W12: outside the report's range


def test_the_weekly_report_shows_averages_and_most_frequent_misses(qa, database, two_weeks):
    page = qa.get("/console/qa/reports?start=2024-W10&end=2024-W11").get_data(as_text=True)

    def row(week: str, staff: str) -> str:
        return page[page.index(f'data-week="{week}" data-staff="{staff}"') :].split("</tr>")[0]

    # Without the greeting (E2): 75 of 90 points → 83.3; so (100 + 83.3) / 2 = 91.7 (rounded per call first).
    assert re.search(r'count">2<.*average">91\.7<.*critical">0<', row("2024-W10", "wangfang"), re.S)
    assert re.search(r'count">1<.*average">0\.0<.*critical">1<', row("2024-W11", "wangfang"), re.S)
    assert re.search(r'count">1<.*average">100\.0<', row("2024-W10", "lina"), re.S)
    assert re.search(r'count">2<.*average">91\.7<', row("2024-W11", "lina"), re.S)
    assert "2024-W12" not in page
    # 王芳 missed the greeting twice (W10 and the rude call in W11): her most frequent miss.
    staff_row = page[page.index('<tr data-staff="wangfang">') :].split("</tr>")[0]
    assert re.search(r'average">61\.1<', staff_row)  # (100 + 83.3 + 0) / 3
    assert re.search(r'class="misses"><span class="miss"[^>]*>E2×2</span>', staff_row)
    assert "<svg" in page and page.count("<polyline") == 2 and 'class="series s0"' in page


def test_the_csv_export_opens_in_excel_with_chinese(qa, database, two_weeks):
    response = qa.get("/console/qa/reports.csv?start=2024-W10&end=2024-W11")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["周", "用户名", "姓名", "评分次数", "平均分", "关键项不合格", "常见失分项"]
    assert ["2024-W10", "wangfang", "王芳", "2", "91.7", "0", "E2×1"] in rows
    assert ["2024-W10", "lina", "李娜", "1", "100.0", "0", ""] in rows
    rude = next(r for r in rows if r[:2] == ["2024-W11", "wangfang"])
    assert rude[3:6] == ["1", "0.0", "1"] and len(rude[6].split("; ")) == 3
    assert len(rows) == 5


def test_a_malformed_report_week_is_refused(qa):
    assert qa.get("/console/qa/reports?start=last-week").status_code == 400
