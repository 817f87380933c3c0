"""API tokens through the front door: expired, revoked and orphaned tokens are refused with the reason,
the last use is recorded, and service tokens exist only when asked for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ivr.db import utcnow
from ivr.models import ApiToken, User
from ivr.staff import StaffError, create_token, create_user, token_state


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def wang(database) -> int:
    with database.session() as session:
        return create_user(session, "wang", "night-shift-password", "night_shift").id


def make_token(database, name: str, user_id: int | None, **options) -> str:
    with database.session() as session:
        user = session.get(User, user_id) if user_id is not None else None
        return create_token(session, name, user, **options)


def change_token(database, name: str, **values) -> None:
    with database.session() as session:
        record = session.scalars(select(ApiToken).where(ApiToken.name == name)).one()
        for key, value in values.items():
            setattr(record, key, value)


def test_a_token_records_its_last_use(client, database, wang):
    token = make_token(database, "wang-phone", wang)
    before = utcnow()
    assert client.get("/api/tickets", headers=bearer(token)).status_code == 200
    with database.session() as session:
        record = session.scalars(select(ApiToken)).one()
        assert record.last_used_at is not None and record.last_used_at >= before
        assert timedelta(days=89) < record.expires_at - before <= timedelta(days=90)  # the default lifetime


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"revoked": True}, "token revoked"),
        ({"expires_at": utcnow() - timedelta(seconds=1)}, "token expired at"),
    ],
)
def test_revoked_and_expired_tokens_get_401_with_the_reason(client, database, wang, change, reason):
    token = make_token(database, "wang-phone", wang)
    assert client.get("/api/tickets", headers=bearer(token)).status_code == 200
    change_token(database, "wang-phone", **change)
    response = client.get("/api/tickets", headers=bearer(token))
    assert response.status_code == 401 and response.json["error"].startswith(reason)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_disabled_accounts_token_is_refused(client, database, wang):
    token = make_token(database, "wang-phone", wang, expires=None)
    with database.session() as session:
        session.get(User, wang).active = False
    response = client.get("/api/tickets", headers=bearer(token))
    assert response.status_code == 401 and "disabled" in response.json["error"]
    with database.session() as session:
        assert token_state(session.scalars(select(ApiToken)).one()) == "account-disabled"  # as `ivr token list` says


def test_a_token_with_neither_account_nor_service_flag_is_refused(client, database, wang):
    with database.session() as session, pytest.raises(StaffError, match="--service"):
        create_token(session, "anything")
    # A row like that can only be left by hand or an old database; it opens nothing.
    token = make_token(database, "orphan", wang)
    change_token(database, "orphan", user_id=None)
    response = client.get("/api/tickets", headers=bearer(token))
    assert response.status_code == 401 and response.json["error"] == "token has no account"


def test_an_unknown_token_is_refused_without_a_hint(client, database):
    response = client.get("/api/tickets", headers=bearer("ivr_" + "x" * 43))
    assert response.status_code == 401 and response.json["error"] == "invalid token"
