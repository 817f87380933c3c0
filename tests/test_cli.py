"""The `ivr` command through Click's runner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.db import utcnow
from ivr.models import ApiToken, User
from ivr.staff import token_digest
from tests.factories import count, create_staff, login


def run(settings, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=CliState(settings), input=input)


def test_help_needs_no_configuration():
    result = CliRunner().invoke(main, ["--help"], env={"IVR_ENV": "production"})
    assert result.exit_code == 0
    for command in ("init-db", "serve", "worker", "token", "user", "fees", "call", "twilio"):
        assert command in result.output


def test_production_without_secrets_is_refused_with_what_to_set(tmp_path):
    result = CliRunner().invoke(
        main,
        ["init-db"],
        env={"IVR_ENV": "production", "IVR_SECRET_KEY": "", "TWILIO_AUTH_TOKEN": "", "IVR_INSTANCE_DIR": str(tmp_path)},
    )
    assert result.exit_code != 0
    assert "IVR_SECRET_KEY" in result.output and "TWILIO_AUTH_TOKEN" in result.output


def test_init_db_is_repeatable(settings):
    assert run(settings, "init-db").exit_code == 0
    result = run(settings, "init-db")
    assert result.exit_code == 0 and "database ready" in result.output


def test_token_create_prints_the_token_last_and_stores_only_its_digest(settings, database, client):
    result = run(settings, "token", "create", "night-desk", "--service")
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    with database.session() as session:
        record = session.scalars(select(ApiToken)).one()
        assert record.name == "night-desk" and record.token_sha256 == token_digest(token)
        assert record.service and record.user is None
    assert client.get("/api/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_token_needs_a_user_or_an_explicit_service_flag(settings, database):
    create_staff(database, "wang", "night_shift")
    neither = run(settings, "token", "create", "night-desk")
    assert neither.exit_code == 1 and "--user" in neither.output and "--service" in neither.output
    both = run(settings, "token", "create", "night-desk", "--user", "wang", "--service")
    assert both.exit_code == 1 and "not both" in both.output
    assert run(settings, "token", "create", "night-desk", "--user", "nobody").exit_code == 1
    assert run(settings, "token", "create", "1234", "--user", "wang").exit_code == 1  # ids are digits
    assert count(database, ApiToken) == 0


def test_user_tokens_expire_in_90_days_unless_told_otherwise(settings, database):
    create_staff(database, "wang", "night_shift")
    now = utcnow()
    for name, expires in (("default", None), ("month", "30d"), ("date", "2099-01-31"), ("forever", "never")):
        args = ["token", "create", name, "--user", "wang"] + (["--expires", expires] if expires else [])
        result = run(settings, *args)
        assert result.exit_code == 0, result.output
    with database.session() as session:
        tokens = {t.name: t.expires_at for t in session.scalars(select(ApiToken))}
    assert timedelta(days=89, hours=23) < tokens["default"] - now <= timedelta(days=90, minutes=1)
    assert timedelta(days=29, hours=23) < tokens["month"] - now <= timedelta(days=30, minutes=1)
    # valid through 31 January in the property's time zone (UTC+8): until 2099-01-31 16:00 UTC
    assert tokens["date"] == datetime(2099, 1, 31, 16, 0, tzinfo=UTC)
    assert tokens["forever"] is None
    for bad in ("2020-01-01", "0d", "soon"):
        result = run(settings, "token", "create", f"bad-{bad}", "--user", "wang", "--expires", bad)
        assert result.exit_code == 1 and "--expires" in result.output


def test_token_list_shows_owner_expiry_last_use_and_state(settings, database, client):
    create_staff(database, "wang", "night_shift")
    wang = run(settings, "token", "create", "wang-phone", "--user", "wang").output.strip().splitlines()[-1]
    run(settings, "token", "create", "crm", "--service", "--expires", "never")
    run(settings, "token", "create", "old", "--user", "wang", "--expires", "1d")
    with database.session() as session:  # a day later for this token
        session.scalars(select(ApiToken).where(ApiToken.name == "old")).one().expires_at = utcnow()
    assert client.get("/api/tickets", headers={"Authorization": f"Bearer {wang}"}).status_code == 200
    run(settings, "token", "revoke", "crm")

    listing = run(settings, "token", "list")
    assert listing.exit_code == 0
    header, *lines = listing.output.strip().splitlines()
    assert header.split() == ["ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST", "USED", "STATE"]
    rows = {line.split()[1]: line.split() for line in lines}
    today = utcnow().astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d")
    assert rows["wang-phone"][2] == "wang" and rows["wang-phone"][-1] == "active"
    assert rows["wang-phone"][7] == today  # last used: just now (date and time columns)
    assert rows["crm"][2] == "service" and rows["crm"][5] == "never" and rows["crm"][-1] == "revoked"
    assert rows["old"][-1] == "expired" and rows["old"][-2] == "never"  # never used


def test_token_revoke_by_id_or_name(settings, database, client):
    create_staff(database, "wang", "night_shift")
    first = run(settings, "token", "create", "a", "--user", "wang").output.strip().splitlines()[-1]
    second = run(settings, "token", "create", "b", "--user", "wang").output.strip().splitlines()[-1]
    with database.session() as session:
        first_id = session.scalars(select(ApiToken.id).where(ApiToken.name == "a")).one()
    assert run(settings, "token", "revoke", str(first_id)).exit_code == 0
    result = run(settings, "token", "revoke", "b")
    assert result.exit_code == 0 and "revoked" in result.output
    for token in (first, second):
        response = client.get("/api/tickets", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.json["error"] == "token revoked"
    missing = run(settings, "token", "revoke", "b")  # nothing live by that name any more
    assert missing.exit_code == 1 and "no live token" in missing.output
    assert run(settings, "token", "revoke", "999").exit_code == 1


def test_user_set_password_ends_the_accounts_sessions(settings, database, app):
    create_staff(database, "wang", "night_shift")
    browser = app.test_client()
    assert login(browser, "wang").status_code == 302
    short = run(settings, "user", "set-password", "wang", "--password", "short")
    assert short.exit_code == 1 and "at least 10" in short.output
    assert browser.get("/console/").status_code == 200  # a refused change ends nothing
    result = run(settings, "user", "set-password", "wang", input="a brand new password\na brand new password\n")
    assert result.exit_code == 0, result.output
    assert browser.get("/console/").status_code == 302
    assert login(browser, "wang").status_code == 401
    assert login(browser, "wang", "a brand new password").status_code == 302
    assert run(settings, "user", "set-password", "nobody", "--password", "long enough pw").exit_code == 1


def test_user_create_hashes_the_password_and_checks_the_role(settings, database):
    ok = run(
        settings,
        "user",
        "create",
        "wang",
        "--role",
        "night_shift",
        "--name",
        "王芳",
        input="correct horse battery\ncorrect horse battery\n",
    )
    assert ok.exit_code == 0, ok.output
    with database.session() as session:
        user = session.scalars(select(User)).one()
        assert user.role == "night_shift" and "correct horse" not in user.password_hash
    bad_role = run(settings, "user", "create", "li", "--role", "boss", "--password", "long enough pw")
    assert bad_role.exit_code == 1 and "unknown role" in bad_role.output
    short = run(settings, "user", "create", "li", "--role", "qa", "--password", "short")
    assert short.exit_code == 1 and "at least 10" in short.output
    dept = run(settings, "user", "create", "zhao", "--role", "department", "--password", "long enough pw")
    assert dept.exit_code == 1 and "--department" in dept.output
