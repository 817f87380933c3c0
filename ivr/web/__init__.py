"""The night-shift console: log-in, the queue, tickets, the dashboard, accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select

from ivr.access import company_admin, notices_for
from ivr.models import Notice
from ivr.runtime import close_request_session, current_settings, request_session
from ivr.speech.status import speech_model_installed, speech_model_status
from ivr.telephony.spool import Spool

csrf = CSRFProtect()


def unread_notices() -> dict[str, Any]:
    """Notices for the logged-in user's role about tickets they may read (e.g. major complaints for managers),
    on every page; whether the menu offers the company's own pages."""
    if not current_user.is_authenticated:
        return {"notices": [], "speech_missing": None, "spool": None, "company_admin": False}
    query = notices_for(current_user, select(Notice).where(Notice.read_at.is_(None))).order_by(Notice.id.desc())
    settings = current_settings()
    speech_missing = None if speech_model_installed(settings) else speech_model_status(settings)
    spooled = Spool(settings.spool_dir).status()
    return {
        "notices": list(request_session().scalars(query)),
        "speech_missing": speech_missing,
        "spool": None if spooled.empty else spooled,
        "company_admin": company_admin(current_user),
    }


def init_app(app: Flask) -> None:
    import ivr.web.residents  # noqa: F401 (routes)
    from ivr.api.views import blueprint as api_blueprint
    from ivr.telephony import blueprint as telephony_blueprint
    from ivr.web import admin, audit, dashboard, follow_ups, formatting, qa_reports, qa_review, queue, ticket  # noqa: F401 (routes)
    from ivr.web.auth import blueprint as auth_blueprint
    from ivr.web.auth import login_manager
    from ivr.web.blueprint import blueprint

    settings = app.config["IVR"]
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        REMEMBER_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),  # one night shift
        WTF_CSRF_TIME_LIMIT=12 * 3600,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    # Twilio and API clients do not hold a session: signatures and bearer tokens protect them instead.
    csrf.exempt(telephony_blueprint)
    csrf.exempt(api_blueprint)
    formatting.init_app(app)
    app.register_blueprint(auth_blueprint)
    app.register_blueprint(blueprint)
    app.context_processor(unread_notices)
    app.teardown_request(close_request_session)

    @app.get("/")
    def home() -> ResponseReturnValue:
        return redirect(url_for("console.queue"))
