"""Staff read what went wrong in Chinese; the technical text stays one click away for operators."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from ivr.models import Recording, RecordingState, Ticket
from ivr.problems import UNKNOWN, in_chinese
from tests.factories import create_staff, create_ticket, login

MODEL_MISSING = (
    "ivr.jobs.PermanentJobError: speech model not found: looked for /srv/models/vosk-model-small-cn-0.22. "
    "Install it with `ivr models fetch vosk-model-small-cn-0.22`"
)
HOST_REFUSED = "recording host 'evil.example' is not in IVR_RECORDING_HOSTS; refusing to download"


def test_a_failed_transcription_and_a_refused_download_are_explained_in_chinese(client, database):
    ticket_id = create_ticket(database)
    with database.session() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.call is not None
        for state, error, needs_manual in (
            (RecordingState.STORED, None, True),
            (RecordingState.FAILED, HOST_REFUSED, False),
        ):
            session.add(
                Recording(
                    recording_sid="RE" + secrets.token_hex(16),
                    call=ticket.call,
                    ticket=ticket,
                    state=state,
                    error=error,
                    needs_manual_transcription=needs_manual,
                    transcription_error=MODEL_MISSING if needs_manual else None,
                )
            )
    create_staff(database, "wang", "night_shift")
    login(client, "wang")
    page = client.get(f"/console/tickets/{ticket_id}").get_data(as_text=True)
    assert "自动转写失败,请人工听写:未安装语音模型,留言未能自动转写;请人工收听并记录" in page
    assert "录音地址不在允许的下载主机中,未下载" in page
    # The English text is only inside the collapsed technical details.
    before_details = page.split("<details>")[0]
    assert "PermanentJobError" not in before_details and "IVR_RECORDING_HOSTS" not in before_details
    assert "<summary>技术信息</summary><code>ivr.jobs.PermanentJobError: speech model not found" in page
    with database.session(read_only=True) as session:
        assert len(session.scalars(select(Recording)).all()) == 2


@pytest.mark.parametrize(
    ("technical", "expected"),
    [
        ("HTTP 503 from https://api.twilio.com/…/RE1.wav", "暂时无法从 Twilio 取得录音,稍后会自动重新下载"),
        (
            "gave up after 60 attempts (the worker stopped during the last one)",
            "多次尝试后仍未完成,已停止;管理员可运行 ivr jobs retry 重试",
        ),
        (
            "recording is larger than IVR_MAX_RECORDING_BYTES (300000 bytes)",
            "录音文件超过允许的大小,未保存;请管理员处理",
        ),
        ("something nobody foresaw", UNKNOWN),
        (None, ""),
    ],
)
def test_each_known_problem_has_its_sentence(technical, expected):
    assert in_chinese(technical) == expected
