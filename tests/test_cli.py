"""The `ivr` command through Click's runner."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import CliState, main
from ivr.models import ApiToken, User
from ivr.staff import token_digest


def run(settings, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=CliState(settings), input=input)


def test_help_needs_no_configuration():
    result = CliRunner().invoke(main, ["--help"], env={"IVR_ENV": "production"})
    assert result.exit_code == 0
    for command in ("init-db", "serve", "worker", "token", "user", "fees", "call", "twilio"):
        assert command in result.output


def test_production_without_secrets_is_refused_with_what_to_set(tmp_path):
    result = CliRunner().invoke(main, ["init-db"], env={"IVR_ENV": "production", "IVR_SECRET_KEY": "",
                                                        "TWILIO_AUTH_TOKEN": "", "IVR_INSTANCE_DIR": str(tmp_path)})
    assert result.exit_code != 0
    assert "IVR_SECRET_KEY" in result.output and "TWILIO_AUTH_TOKEN" in result.output


def test_init_db_is_repeatable(settings):
    assert run(settings, "init-db").exit_code == 0
    result = run(settings, "init-db")
    assert result.exit_code == 0 and "database ready" in result.output


def test_token_create_prints_the_token_last_and_stores_only_its_digest(settings, database, client):
    result = run(settings, "token", "create", "night-desk")
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    with database.session() as session:
        record = session.scalars(select(ApiToken)).one()
        assert record.name == "night-desk" and record.token_sha256 == token_digest(token)
    assert client.get("/api/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_user_create_hashes_the_password_and_checks_the_role(settings, database):
    ok = run(settings, "user", "create", "wang", "--role", "night_shift", "--name", "王芳",
             input="correct horse battery\ncorrect horse battery\n")
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
