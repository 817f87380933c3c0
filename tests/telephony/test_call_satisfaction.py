"""The satisfaction question at the end of an inbound call (issue 12), for a property that asks: after the ticket
number, 1–5 by keypad onto the ticket and its timeline, then thanks, 再见 and the pause (E6). A wrong key is
apologised for and asked once more (E7); silence or a second miss is thanked and let go. A property that does not
ask ends its calls as it always has."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.devphone.callers import HANGUP, SILENCE, Message
from ivr.devphone.emulator import TwilioEmulator
from ivr.devphone.transport import FlaskClientTransport
from ivr.models import Property, Ticket, TicketEvent
from ivr.staff import create_user
from ivr.telephony.prompts import prompt
from ivr.telephony.spool import replay_spool
from ivr.tickets.timeline import timeline
from tests.factories import HELLO_WAV, PASSWORD, call_params, login, signed_post, ticket_for

ASKING_LINE = "+862160000001"  # 东方花园, which asks
QUESTION = prompt("ask_call_satisfaction")
THANKS = prompt("call_satisfaction_thanks")
GOODBYE = prompt("goodbye")
WRONG_KEY = prompt("invalid_key")
# Repair, room 3-2-501 confirmed, a message, the read-back confirmed: the ticket number is said next.
UP_TO_THE_TICKET_NUMBER = ["1", "3*2*501#", "1", Message(HELLO_WAV), "1"]


def ivr(settings, *args: str):
    return CliRunner().invoke(main, list(args), obj=CliState(settings))


@pytest.fixture
def asking(settings) -> None:
    """东方花园 asks the question (made before the app's first call, so its first look-up sees it)."""
    made = ivr(
        settings, "property", "create", "east", "--name", "东方花园", "--number", ASKING_LINE, "--ask-satisfaction"
    )
    assert made.exit_code == 0, made.output


def events_of(database, call_sid: str) -> list[tuple[str, dict]]:
    """The call's ticket's timeline events (kind, detail), oldest first."""
    ticket = ticket_for(database, call_sid)
    assert ticket is not None
    with database.session(read_only=True) as session:
        found = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id))
        return [(event.kind, event.detail) for event in found]


def said_after_the_ticket_number(result) -> list[str]:
    """What the caller heard from the ticket number on."""
    at = next(i for i, text in enumerate(result.said) if text.startswith("谢谢您,您的工单号是"))
    return result.said[at + 1 :]


def ends_politely(result) -> None:
    """再见 last, then the pause for the caller to hang up first (E6), then the line hangs up."""
    assert result.said[-1] == GOODBYE, result.describe()
    assert result.heard[-1].kind == "pause" and result.heard[-1].seconds >= 10
    assert result.ended_by == "twilio"


def test_a_property_that_asks_keeps_the_score_on_the_ticket_and_its_timeline(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "4"], to=ASKING_LINE).raise_for_errors()

    assert said_after_the_ticket_number(result) == [QUESTION, THANKS, GOODBYE]
    ends_politely(result)
    assert result.unused_steps == []  # the key went to the question
    ticket = ticket_for(database, result.call_sid)
    assert ticket is not None and ticket.confirmed and ticket.call_satisfaction == 4
    assert events_of(database, result.call_sid) == [("call_satisfaction", {"score": 4})]
    with database.session(read_only=True) as session:
        on_timeline = [entry for entry in timeline(session, session.get(Ticket, ticket.id)) if entry.who == "系统"]
        assert [(entry.what, entry.detail) for entry in on_timeline] == [("来电人评价本次服务", {"score": 4})]
    assert result.last("gather").url == "https://ivr.example.test/twilio/satisfaction"  # signed, as every step


def test_the_question_comes_after_the_ticket_number_and_its_whole_sentence(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "5"], to=ASKING_LINE).raise_for_errors()
    # The confirm step's answer: the whole ticket-number sentence outside the Gather (a key cannot cut it off),
    # then the question inside it.
    confirm_reply = next(e.body for e in result.requests if e.url.endswith("/twilio/confirm"))
    before_gather, gather = confirm_reply.split("<Gather")
    assert "工单号是" in before_gather and "我们会尽快安排维修人员" in before_gather
    assert QUESTION in gather and 'numDigits="1"' in gather
    assert result.last("gather").params["Digits"] == "5"
    assert ticket_for(database, result.call_sid).call_satisfaction == 5


def test_a_wrong_key_is_apologised_for_and_asked_once_more(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "7", "2"], to=ASKING_LINE).raise_for_errors()
    assert said_after_the_ticket_number(result) == [QUESTION, WRONG_KEY, QUESTION, THANKS, GOODBYE]
    assert WRONG_KEY.startswith("对不起")  # E7
    ends_politely(result)
    assert ticket_for(database, result.call_sid).call_satisfaction == 2


def test_a_second_wrong_key_is_thanked_and_let_go(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "0", "*"], to=ASKING_LINE).raise_for_errors()
    assert said_after_the_ticket_number(result) == [QUESTION, WRONG_KEY, QUESTION, GOODBYE]
    ends_politely(result)
    assert ticket_for(database, result.call_sid).call_satisfaction is None
    assert events_of(database, result.call_sid) == []


def test_silence_is_thanked_with_goodbye_and_never_asked_again(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, SILENCE], to=ASKING_LINE).raise_for_errors()
    assert said_after_the_ticket_number(result) == [QUESTION, GOODBYE]
    ends_politely(result)
    ticket = ticket_for(database, result.call_sid)
    assert ticket.confirmed and ticket.call_satisfaction is None


def test_silence_after_a_wrong_key_is_let_go_too(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "9", SILENCE], to=ASKING_LINE).raise_for_errors()
    assert said_after_the_ticket_number(result) == [QUESTION, WRONG_KEY, QUESTION, GOODBYE]
    ends_politely(result)


def test_hanging_up_at_the_question_keeps_the_confirmed_ticket_without_a_score(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, HANGUP], to=ASKING_LINE).raise_for_errors()
    assert result.ended_by == "caller"
    ticket = ticket_for(database, result.call_sid)
    assert ticket.confirmed and ticket.call_satisfaction is None


def test_a_property_that_does_not_ask_hears_todays_call(phone, asking, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "4"]).raise_for_errors()  # the default property
    assert said_after_the_ticket_number(result) == [GOODBYE]
    assert result.unused_steps == ["4"]  # nobody asked for a key
    ends_politely(result)
    assert not [e for e in result.requests if "/satisfaction" in e.url]
    confirm_reply = next(e.body for e in result.requests if e.url.endswith("/twilio/confirm"))
    assert "<Gather" not in confirm_reply and confirm_reply.endswith('<Pause length="10" /><Hangup /></Response>')
    assert ticket_for(database, result.call_sid).call_satisfaction is None


def test_a_message_kept_unconfirmed_ends_without_the_question(phone, asking, database):
    # Three misses at the read-back: the caller is not asked a fourth keypad question.
    result = phone.call([*UP_TO_THE_TICKET_NUMBER[:-1], "7", "7", "7"], to=ASKING_LINE).raise_for_errors()
    assert "您的留言已保存,工单号是" in result.said[-2] and result.said[-1] == GOODBYE
    assert QUESTION not in result.said
    ticket = ticket_for(database, result.call_sid)
    assert not ticket.confirmed and ticket.call_satisfaction is None


def test_retried_webhooks_get_the_first_answer_and_keep_one_score(app, settings, recording_server, asking, database):
    phone = TwilioEmulator(
        FlaskClientTransport(app, settings.public_url),
        public_url=settings.public_url,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        recording_server=recording_server,
        retry_webhooks=True,
    )
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "7", "3"], to=ASKING_LINE).raise_for_errors()
    assert all(exchange.replies_identical for exchange in result.requests), result.describe()
    assert said_after_the_ticket_number(result) == [QUESTION, WRONG_KEY, QUESTION, THANKS, GOODBYE]
    assert ticket_for(database, result.call_sid).call_satisfaction == 3
    assert events_of(database, result.call_sid) == [("call_satisfaction", {"score": 3})]


def test_a_second_delivery_of_another_score_changes_nothing(phone, asking, client, settings, database):
    result = phone.call([*UP_TO_THE_TICKET_NUMBER, "5"], to=ASKING_LINE).raise_for_errors()
    # The same step again without Twilio's idempotency token (a replay from the spool, a proxy's retry).
    again = signed_post(
        client, settings, "/twilio/satisfaction", call_params(result.call_sid, To=ASKING_LINE, Digits="1")
    )
    assert again.status_code == 200 and "再见" in again.get_data(as_text=True)
    assert ticket_for(database, result.call_sid).call_satisfaction == 5
    assert events_of(database, result.call_sid) == [("call_satisfaction", {"score": 5})]


def test_a_failing_step_says_thanks_and_goodbye_and_the_replay_keeps_the_score(
    app, phone, asking, database, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr("ivr.telephony.satisfaction.record_call_satisfaction", broken)
        result = phone.call([*UP_TO_THE_TICKET_NUMBER, "4"], to=ASKING_LINE).raise_for_errors()
    assert said_after_the_ticket_number(result) == [QUESTION, THANKS, GOODBYE]  # not "leave a message"
    ends_politely(result)
    assert ticket_for(database, result.call_sid).call_satisfaction is None

    assert replay_spool(app).replayed == 1
    assert ticket_for(database, result.call_sid).call_satisfaction == 4


def test_the_api_ticket_carries_the_call_satisfaction(phone, asking, client, api_token):
    scored = phone.call([*UP_TO_THE_TICKET_NUMBER, "4"], to=ASKING_LINE).raise_for_errors()
    unasked = phone.call(UP_TO_THE_TICKET_NUMBER).raise_for_errors()
    headers = {"Authorization": f"Bearer {api_token}"}
    for result, expected in ((scored, 4), (unasked, None)):
        [ticket] = client.get(f"/api/tickets?call_sid={result.call_sid}", headers=headers).get_json()["tickets"]
        assert ticket["call_satisfaction"] == expected
        assert client.get(f"/api/tickets/{ticket['id']}", headers=headers).get_json()["call_satisfaction"] == expected


def test_the_ticket_page_shows_the_callers_score(phone, asking, client, database):
    scored = phone.call([*UP_TO_THE_TICKET_NUMBER, "2"], to=ASKING_LINE).raise_for_errors()
    unasked = phone.call(UP_TO_THE_TICKET_NUMBER).raise_for_errors()
    with database.session() as session:
        create_user(session, "wang", PASSWORD, "night_shift")
    login(client, "wang")
    shown = client.get(f"/console/tickets/{ticket_for(database, scored.call_sid).id}").get_data(as_text=True)
    assert '<dd id="call-satisfaction">2分(不满意)</dd>' in shown
    shown = client.get(f"/console/tickets/{ticket_for(database, unasked.call_sid).id}").get_data(as_text=True)
    assert "call-satisfaction" not in shown


def test_property_create_turns_the_question_on_and_off_and_an_update_keeps_it(settings, database):
    def asks(code: str) -> bool:
        with database.session(read_only=True) as session:
            return session.scalars(select(Property.ask_satisfaction).where(Property.code == code)).one()

    def listed(code: str) -> str:
        output = ivr(settings, "property", "list").output
        return next(line for line in output.splitlines() if line.startswith(f"{code}\t"))

    made = ivr(settings, "property", "create", "east", "--name", "东方花园", "--ask-satisfaction")
    assert made.exit_code == 0 and "satisfaction question: on" in made.output, made.output
    assert asks("east") and "\tsatisfaction question: on\t" in listed("east")

    assert ivr(settings, "property", "create", "east", "--timezone", "Asia/Urumqi").exit_code == 0
    assert asks("east")  # left out of an update: kept

    assert ivr(settings, "property", "create", "east", "--no-ask-satisfaction").exit_code == 0
    assert not asks("east") and "\tsatisfaction question: off\t" in listed("east")

    assert ivr(settings, "property", "create", "west", "--name", "西城").exit_code == 0
    assert not asks("west")  # a new property does not ask unless told
    assert "\tsatisfaction question: off\t" in listed("default")

    helped = ivr(settings, "property", "create", "--help").output
    assert "--ask-satisfaction / --no-ask-satisfaction" in helped and "keeps what it had" in helped
