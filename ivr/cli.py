"""The `ivr` command: database, server, worker, tokens, staff, fees, dev phone, Twilio set-up."""

from __future__ import annotations

from functools import cached_property

import click

from ivr.config import ConfigError, Settings, load_settings
from ivr.db import Database


class CliState:
    """What every subcommand may need, created on first use so `--help` never touches config."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        if self._settings is not None:
            return self._settings
        try:
            return load_settings()
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc

    @cached_property
    def database(self) -> Database:
        return Database(self.settings.database_url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """物业 24-hour phone line: webhooks, tickets, recordings and tools."""
    if ctx.obj is None:
        ctx.obj = CliState()


@main.command("init-db")
@click.pass_obj
def init_db(state: CliState) -> None:
    """Create the database schema, or upgrade it to the latest version (Alembic)."""
    from ivr.migrate import upgrade_database

    upgrade_database(state.settings.database_url)
    click.echo(f"database ready: {state.database.engine.url.render_as_string(hide_password=True)}")
