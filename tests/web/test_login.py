"""Log-in limits through the front door (per account and address, per address, behind a proxy or not) and
sessions that end at log-out, a password change or a disabled account."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from ivr import create_app
from ivr.config import load_settings
from ivr.db import utcnow
from ivr.models import LoginAttempt, User
from ivr.signin import PER_ACCOUNT_AND_ADDRESS, PER_ADDRESS
from tests.factories import PASSWORD, create_staff, csrf_from, login

ATTACKER = "203.0.113.7"
COLLEAGUE = "198.51.100.20"


class Clock:
    """The log-in code's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("ivr.web.auth.utcnow", clock)
    return clock


@pytest.fixture
def proxied_app(settings_environ: dict[str, str]) -> Iterator[Flask]:
    """The app as deployed behind one reverse proxy (IVR_TRUSTED_PROXIES=1)."""
    app = create_app(load_settings({**settings_environ, "IVR_TRUSTED_PROXIES": "1"}), with_queue=False)
    yield app
    app.extensions["ivr.database"].dispose()


class Behind:
    """A browser behind the TLS proxy: the proxy appends the client's address to X-Forwarded-For and says
    the scheme and host it was asked for; the browser sends a same-origin Referer (checked by CSRF on https)."""

    def __init__(
        self,
        app: Flask,
        address: str,
        forged: str | None = None,
        referrer: str = "https://ivr.example.test/console/login",
    ) -> None:
        self.client = app.test_client()
        chain = f"{forged}, {address}" if forged else address
        self.client.environ_base.update(
            HTTP_X_FORWARDED_FOR=chain,
            HTTP_X_FORWARDED_PROTO="https",
            HTTP_X_FORWARDED_HOST="ivr.example.test",
            HTTP_REFERER=referrer,
        )

    def login(self, username: str, password: str = PASSWORD):
        return login(self.client, username, password)


def attempts(database) -> list[tuple[str, str | None, bool, bool]]:
    with database.session() as session:
        rows = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id))
        return [(a.username, a.remote_addr, a.succeeded, a.refused) for a in rows]


def test_an_attacker_behind_the_proxy_is_locked_out_while_a_colleague_behind_it_logs_in(proxied_app, database):
    create_staff(database, "wang", "night_shift")
    attacker, colleague = Behind(proxied_app, ATTACKER), Behind(proxied_app, COLLEAGUE)
    for _ in range(5):
        assert attacker.login("wang", "guess-guess-guess").status_code == 401
    refused = attacker.login("wang")  # even the right password, from the attacker's address
    assert refused.status_code == 429 and "请1分钟后再试" in refused.get_data(as_text=True)
    assert colleague.login("wang").status_code == 302  # the same account, another client of the same proxy
    assert colleague.client.get("/console/").status_code == 200
    assert attempts(database) == [
        *[("wang", ATTACKER, False, False)] * 5,
        ("wang", ATTACKER, False, True),
        ("wang", COLLEAGUE, True, False),
    ]


def test_a_forged_x_forwarded_for_is_not_believed_beyond_the_trusted_proxies(proxied_app, database):
    create_staff(database, "wang", "night_shift")
    for n in range(5):  # the attacker puts a new address in front each time; the proxy appends the real one
        assert Behind(proxied_app, ATTACKER, forged=f"10.0.0.{n}").login("wang", "guess-guess-guess").status_code == 401
    assert Behind(proxied_app, ATTACKER, forged=COLLEAGUE).login("wang").status_code == 429


def test_behind_the_proxy_requests_are_https_for_the_public_host(proxied_app, database):
    create_staff(database, "wang", "night_shift")
    # On https Flask-WTF checks that a form comes from the same origin: the scheme and host are the proxy's.
    assert Behind(proxied_app, COLLEAGUE, referrer="https://evil.example/").login("wang").status_code == 400
    assert Behind(proxied_app, COLLEAGUE, referrer="http://ivr.example.test/").login("wang").status_code == 400
    assert Behind(proxied_app, COLLEAGUE).login("wang").status_code == 302


def test_without_trusted_proxies_x_forwarded_for_is_ignored(client, database):
    create_staff(database, "wang", "night_shift")
    for n in range(5):
        forged = {"X-Forwarded-For": f"10.0.0.{n}"}
        client.get("/console/login", headers=forged)
        assert login_with_headers(client, "wang", "guess-guess-guess", forged).status_code == 401
    escape = login_with_headers(client, "wang", PASSWORD, {"X-Forwarded-For": COLLEAGUE})
    assert escape.status_code == 429
    assert {address for _, address, _, _ in attempts(database)} == {"127.0.0.1"}


def login_with_headers(client: FlaskClient, username: str, password: str, headers: dict[str, str]):
    client.environ_base.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return login(client, username, password)


def test_many_names_from_one_address_lock_that_address_only(proxied_app, database):
    create_staff(database, "wang", "night_shift")
    attacker, colleague = Behind(proxied_app, ATTACKER), Behind(proxied_app, COLLEAGUE)
    for n in range(PER_ADDRESS.allowed):  # one or two tries per name: no name reaches its own limit
        assert attacker.login(f"user{n // 2}", "guess-guess-guess").status_code == 401
    assert attacker.login("wang").status_code == 429
    assert colleague.login("wang").status_code == 302


def test_the_delay_doubles_with_each_failure_and_a_success_clears_it(client, database, clock):
    create_staff(database, "wang", "night_shift")
    for _ in range(5):
        assert login(client, "wang", "guess-guess-guess").status_code == 401
    assert login(client, "wang").status_code == 429
    clock.advance(seconds=61)
    assert login(client, "wang", "guess-guess-guess").status_code == 401  # the sixth failure: two minutes
    refused = login(client, "wang")
    assert refused.status_code == 429 and "请2分钟后再试" in refused.get_data(as_text=True)
    clock.advance(seconds=90)
    assert login(client, "wang").status_code == 429  # refused tries do not count, and do not end the delay
    clock.advance(seconds=31)
    assert login(client, "wang").status_code == 302
    client.post("/console/logout", data={"csrf_token": csrf_from(client, "/console/")})
    assert login(client, "wang", "guess-guess-guess").status_code == 401  # counting starts again
    assert login(client, "wang").status_code == 302


def test_failures_are_forgotten_after_a_day(client, database, clock):
    create_staff(database, "wang", "night_shift")
    for _ in range(9):
        login(client, "wang", "guess-guess-guess")
        clock.advance(minutes=16)  # waiting out each delay, so every try is a real failure
    assert login(client, "wang", "guess-guess-guess").status_code == 401
    refused = login(client, "wang")
    assert refused.status_code == 429 and "请15分钟后再试" in refused.get_data(as_text=True)  # capped
    clock.advance(hours=24, minutes=1)
    assert login(client, "wang").status_code == 302


def test_the_delays_grow_one_two_four_minutes_up_to_fifteen():
    minutes = [PER_ACCOUNT_AND_ADDRESS.delay(n) for n in range(4, 11)]
    assert minutes == [None, *(timedelta(minutes=m) for m in (1, 2, 4, 8, 15, 15))]
    assert PER_ADDRESS.delay(19) is None and PER_ADDRESS.delay(20) == timedelta(minutes=1)


def test_refusals_are_logged_and_shown_to_admins(proxied_app, database, caplog):
    create_staff(database, "wang", "night_shift")
    create_staff(database, "root", "admin")
    attacker = Behind(proxied_app, ATTACKER)
    for _ in range(5):
        attacker.login("wang", "guess-guess-guess")
    with caplog.at_level(logging.WARNING, logger="ivr.web.auth"):
        assert attacker.login("wang").status_code == 429
        assert attacker.login("<b>x</b>", "guess-guess-guess").status_code == 401
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'wang'" in warning.getMessage() and ATTACKER in warning.getMessage()

    admin = Behind(proxied_app, COLLEAGUE)
    assert admin.login("root").status_code == 302
    page = admin.client.get("/console/users").get_data(as_text=True)
    section = page[page.index('id="login-trouble"') :]
    row = section[section.index("<td>wang</td>") :]
    row = row[: row.index("</tr>")]
    assert f"<td>{ATTACKER}</td><td>5</td><td>1</td>" in row and "暂停中" in row
    assert "&lt;b&gt;x&lt;/b&gt;" in section and "<b>x</b>" not in section


def test_a_session_copied_before_log_out_is_refused_after_it(app, database):
    create_staff(database, "wang", "night_shift")
    laptop, copy = app.test_client(), app.test_client()
    assert login(laptop, "wang").status_code == 302
    copy.set_cookie("session", laptop.get_cookie("session").value)
    assert copy.get("/console/").status_code == 200
    laptop.post("/console/logout", data={"csrf_token": csrf_from(laptop, "/console/")})
    refused = copy.get("/console/")
    assert refused.status_code == 302 and "/console/login" in refused.headers["Location"]
    assert login(laptop, "wang").status_code == 302  # logging in again makes a new session
    assert laptop.get("/console/").status_code == 200 and copy.get("/console/").status_code == 302


def test_a_password_reset_by_an_admin_ends_the_accounts_sessions(app, database):
    create_staff(database, "wang", "night_shift")
    create_staff(database, "root", "admin")
    wang, admin, admin_phone = app.test_client(), app.test_client(), app.test_client()
    login(wang, "wang")
    login(admin, "root")
    admin_phone.set_cookie("session", admin.get_cookie("session").value)
    with database.session() as session:
        ids = {u.username: u.id for u in session.scalars(select(User))}

    def reset(username: str, password: str) -> None:
        form = {"csrf_token": csrf_from(admin, "/console/users"), "password": password}
        assert admin.post(f"/console/users/{ids[username]}", data=form).status_code == 302

    reset("wang", "a-new-long-password")
    assert wang.get("/console/").status_code == 302
    assert login(wang, "wang").status_code == 401
    assert login(wang, "wang", "a-new-long-password").status_code == 302
    reset("root", "another-long-password")  # the admin's own: this session goes on, the copied one ends
    assert admin.get("/console/users").status_code == 200
    assert admin_phone.get("/console/users").status_code == 302


def test_a_disabled_account_loses_its_sessions_for_good(app, database):
    create_staff(database, "wang", "night_shift")
    create_staff(database, "root", "admin")
    wang, admin = app.test_client(), app.test_client()
    login(wang, "wang")
    login(admin, "root")
    with database.session() as session:
        wang_id = session.scalars(select(User.id).where(User.username == "wang")).one()
    for _ in range(2):  # disable, then enable again
        admin.post(
            f"/console/users/{wang_id}", data={"csrf_token": csrf_from(admin, "/console/users"), "action": "toggle"}
        )
        assert wang.get("/console/").status_code == 302
    assert login(wang, "wang").status_code == 302


def test_behind_the_proxy_twilio_signatures_are_still_checked_against_the_public_url(proxied_app, settings):
    from tests.factories import call_params, signed_post

    client = proxied_app.test_client()
    proxy_headers = {
        "X-Forwarded-For": "54.172.60.1",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "internal-name:5000",
    }
    answered = signed_post(client, settings, "/twilio/voice", call_params(), headers=proxy_headers)
    assert answered.status_code == 200 and "<Say" in answered.get_data(as_text=True)
    forged = client.post(
        "/twilio/voice", data=call_params("CA" + "2" * 32), headers={**proxy_headers, "X-Twilio-Signature": "bm9wZQ=="}
    )
    assert forged.status_code == 403
