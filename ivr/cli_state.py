"""What every `ivr` subcommand may need (settings, the database), made on first use so `--help` never
touches configuration."""

from __future__ import annotations

from functools import cached_property

import click

from ivr.config import ConfigError, Settings, load_settings, read_environment
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
    def dev_settings(self) -> Settings:
        """Settings for the development tools (the dev phone): IVR_ENV defaults to development, as
        ./scripts/run sets it, so they share the development server's generated secrets."""
        if self._settings is not None:
            return self._settings
        environ = read_environment()
        environ.setdefault("IVR_ENV", "development")
        try:
            return load_settings(environ)
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc

    @cached_property
    def database(self) -> Database:
        return Database(self.settings.database_url, timeout=self.settings.db_timeout_seconds)

    def close(self) -> None:
        """Release database connections (called when the command finishes)."""
        if "database" in self.__dict__:
            self.database.dispose()
