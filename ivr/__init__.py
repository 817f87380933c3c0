"""物业 24-hour phone front desk: the Flask app factory."""

from __future__ import annotations

import logging

from flask import Flask

from ivr.config import Settings, load_settings
from ivr.db import Database
from ivr.tickets.sla import use_timezone


def create_app(settings: Settings | None = None, *, with_queue: bool = True, **queue_options: float) -> Flask:
    """Build the app: webhooks, API and health check, bound to one database and job queue."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(settings.as_flask_config())
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # webhooks are small forms
    for warning in settings.warnings:
        logging.getLogger("ivr").warning(warning)

    database = Database(settings.database_url, timeout=settings.db_timeout_seconds)
    use_timezone(settings.timezone)  # the same-day deadline stamped on tickets (ivr.tickets.sla)
    app.extensions["ivr.database"] = database
    import ivr.job_modules  # noqa: F401  (every job kind and periodic task declared before the queue is made)

    if with_queue:
        from ivr.jobs import JobQueue

        app.extensions["ivr.queue"] = JobQueue(settings, database, **queue_options)

    from ivr.api import init_app as init_api
    from ivr.health import init_app as init_health
    from ivr.telephony import init_app as init_telephony
    from ivr.web import init_app as init_console

    init_telephony(app)
    init_api(app)
    init_health(app)
    init_console(app)
    if settings.trusted_proxies:
        # The client's address, scheme and host as the proxies saw them (log-in limits, audit rows); without
        # proxies these headers are anyone's to forge and stay ignored. Twilio signatures do not depend on
        # them: they are checked against IVR_PUBLIC_URL.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    return app
