"""The console blueprint (its views live in queue, ticket, dashboard, admin, audio)."""

from __future__ import annotations

from flask import Blueprint

from ivr.web.headers import security_headers

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
blueprint.after_request(security_headers)
