"""The JSON API for staff tools: tickets and their recordings, behind bearer tokens."""

from __future__ import annotations

from flask import Flask

from ivr.api.views import blueprint


def init_app(app: Flask) -> None:
    from ivr.api import qa  # noqa: F401  (its routes register on the blueprint)

    app.register_blueprint(blueprint)
