"""The `ivr` command: database, server, worker, tokens, staff, fees, dev phone, Twilio set-up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from ivr.audit_cli import audit
from ivr.cli_state import CliState
from ivr.config import Settings
from ivr.devphone.cli import call
from ivr.fees.cli import fees
from ivr.jobs_cli import jobs
from ivr.property_cli import property_group
from ivr.residents.cli import residents
from ivr.speech.cli import models, transcribe
from ivr.telephony.spool_cli import spool
from ivr.twilio_number import twilio

if TYPE_CHECKING:
    from flask import Flask

    from ivr.jobs import JobQueue
    from ivr.models import User


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """物业 24-hour phone line: webhooks, tickets, recordings and tools."""
    if ctx.obj is None:
        ctx.obj = CliState()
    ctx.call_on_close(ctx.obj.close)


@main.command("init-db")
@click.pass_obj
def init_db(state: CliState) -> None:
    """Create the database schema, or upgrade it to the latest version (Alembic)."""
    from ivr.migrate import upgrade_database

    upgrade_database(state.settings.database_url)
    click.echo(f"database ready: {state.database.engine.url.render_as_string(hide_password=True)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=int,
    help="Web threads for webhooks and pages (live streams get their own).",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=int,
    help="Embedded job worker threads (ignored when IVR_REDIS_URL is set: run `ivr worker`).",
)
@click.pass_obj
def serve(state: CliState, host: str, port: int, threads: int, workers: int) -> None:
    """Serve the webhooks, the media WebSocket, the console, the API and /healthz on one port (gunicorn's
    threaded worker), with the embedded job worker."""
    import logging
    import threading

    from ivr import create_app
    from ivr.server import serve_wsgi
    from ivr.speech.status import speech_model_installed, speech_model_status
    from ivr.telephony.media import LIVE_STREAM_SPARE_THREADS, live_pool, live_transcription_on, media_stream_url
    from ivr.telephony.spool import SpoolReplayer
    from ivr.twilio_number import webhook_urls

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = state.settings
    if settings.debug and host not in ("127.0.0.1", "::1", "localhost"):
        logging.getLogger("ivr").warning(
            "IVR_ENV=%s with generated secrets, listening on %s: other machines can reach this server",
            settings.env,
            host,
        )
    embedded = settings.redis_url is None
    stops: list[Callable[[], None]] = []

    def start_line() -> Flask:
        """In the server's worker process: the app, the jobs a dead process left, the embedded worker and
        the spool replayer."""
        app = create_app(settings)
        queue = app.extensions["ivr.queue"]
        queue.requeue_jobs_of_dead_workers()  # before our own workers start: a dead process's jobs, at once
        if embedded:
            queue.start_embedded(workers=workers)
            stops.append(queue.stop_embedded)
        _sweep_at_start(queue)
        replayer = SpoolReplayer(app)
        replayer.start()
        stops.append(replayer.stop)
        pool = live_pool(app)
        stops.append(pool.close)
        if live_transcription_on(settings):  # the model in memory before the first caller speaks
            threading.Thread(target=pool.warm_up, name="live-warm-up", daemon=True).start()
        return app

    def stop_line() -> None:
        for stop in reversed(stops):
            stop()

    urls = webhook_urls(settings.public_url)
    click.echo(f"Twilio voice URL:      {urls['voice_url']}  (HTTP POST)")
    click.echo(f"Twilio status callback: {urls['status_callback']}")
    click.echo(f"Twilio fallback URL:   {urls['voice_fallback_url']}")
    click.echo(f"Media streams:         {media_stream_url(settings.public_url)}  (WebSocket, same origin)")
    click.echo(f"Jobs: {'embedded worker (SQLite queue)' if embedded else 'Redis queue — run `ivr worker`'}")
    click.echo(f"Speech model: {speech_model_status(settings)}")
    if not speech_model_installed(settings):
        logging.getLogger("ivr").warning("speech model %s", speech_model_status(settings))
    live = settings.live_streams if live_transcription_on(settings) else 0
    click.echo(f"Live transcription: {f'up to {live} takes at once' if live else 'off (after the download only)'}")
    click.echo(f"Try a call without Twilio:  .venv/bin/ivr call --server http://127.0.0.1:{port}")
    click.echo(
        f"Night-shift console:   {settings.public_url}/console/  (the first account: "
        ".venv/bin/ivr user create NAME --role admin)"
    )
    # A live stream holds a thread while its take lasts: they get their own, beyond the webhooks'.
    serve_wsgi(start_line, host=host, port=port, threads=threads + live + LIVE_STREAM_SPARE_THREADS, stop=stop_line)


@main.command()
@click.option("--workers", default=2, show_default=True, type=int, help="Worker threads.")
@click.pass_obj
def worker(state: CliState, workers: int) -> None:
    """Run jobs from the Redis queue (IVR_REDIS_URL); `ivr serve` runs them itself otherwise."""
    import logging

    from ivr import create_app
    from ivr.telephony.spool import SpoolReplayer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not state.settings.redis_url:
        raise click.ClickException("IVR_REDIS_URL is not set: `ivr serve` runs the jobs itself")
    app = create_app(state.settings)  # the spool is replayed through the app's webhook steps
    queue = app.extensions["ivr.queue"]
    queue.requeue_jobs_of_dead_workers()
    _sweep_at_start(queue)
    replayer = SpoolReplayer(app)
    replayer.start()
    try:
        queue.run_worker(workers=workers)
    finally:
        replayer.stop()


def _sweep_at_start(queue: JobQueue) -> None:
    """Re-queue what a crashed process left behind; the database may be down: then the sweep waits."""
    import logging

    try:
        queue.sweep()
    except Exception as exc:
        logging.getLogger("ivr").warning("start-up sweep skipped (database unavailable?): %s", exc)


@main.group()
def token() -> None:
    """API tokens for `Authorization: Bearer …`."""


@token.command("create")
@click.argument("name")
@click.option("--user", "username", help="Staff account the token acts for (it sees what that account sees).")
@click.option("--service", is_flag=True, help="A program's token with no account: it sees every ticket.")
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    help="Lifetime: days (30d), a last valid day (2027-01-31, property time) or never.",
)
@click.pass_obj
def token_create(state: CliState, name: str, username: str | None, service: bool, expires: str) -> None:
    """Create a token called NAME and print it (last line of output; it is not shown again)."""
    from sqlalchemy import select

    from ivr.models import User
    from ivr.staff import StaffError, create_token, parse_expiry

    try:
        expires_at = parse_expiry(expires, state.settings.timezone)
        with state.database.session() as session:
            user = None
            if username:
                user = session.scalars(select(User).where(User.username == username)).first()
                if user is None:
                    raise click.ClickException(f"no user {username!r} (create it with `ivr user create`)")
            plain = create_token(session, name, user, service=service, expires=expires_at)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    until = "never expires" if expires_at is None else f"expires {_local(state.settings, expires_at)}"
    click.echo(
        f"token {name!r} created ({'service' if service else 'for ' + str(username)}, {until}); "
        "store it now, it cannot be shown again:"
    )
    click.echo(plain)


def _local(settings: Settings, moment: datetime | None) -> str:
    """A UTC timestamp in the property's time zone, to the minute."""
    from zoneinfo import ZoneInfo

    return "-" if moment is None else moment.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M")


@token.command("list")
@click.pass_obj
def token_list(state: CliState) -> None:
    """Every token: id, name, account (or service), created, expires, last used, state (property time)."""
    from ivr.staff import list_tokens, token_state

    with state.database.session(read_only=True) as session:
        rows = [
            (
                str(t.id),
                t.name,
                t.user.username if t.user else ("service" if t.service else "-"),
                _local(state.settings, t.created_at),
                "never" if t.expires_at is None else _local(state.settings, t.expires_at),
                "never" if t.last_used_at is None else _local(state.settings, t.last_used_at),
                token_state(t),
            )
            for t in list_tokens(session)
        ]
    if not rows:
        click.echo("no tokens (create one with `ivr token create NAME --user U`)")
        return
    header = ("ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED", "STATE")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


@token.command("revoke")
@click.argument("token_id_or_name", metavar="ID|NAME")
@click.pass_obj
def token_revoke(state: CliState, token_id_or_name: str) -> None:
    """Revoke a token by id or name: the API refuses it from now on."""
    from ivr.staff import StaffError, revoke_token

    try:
        with state.database.session() as session:
            record = revoke_token(session, token_id_or_name)
            click.echo(f"token {record.id} {record.name!r} revoked")
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def user() -> None:
    """Staff accounts (the console logs in with these)."""


@user.command("create")
@click.argument("username")
@click.option("--role", required=True, help="night_shift | qa | department | manager | admin")
@click.option("--department", help="For department accounts, e.g. 工程部.")
@click.option("--name", "display_name", help="Name shown in the console and used in QA.")
@click.option("--phone", help="Phone number (E.164), e.g. for on-duty transfers.")
@click.option(
    "--property",
    "property_codes",
    multiple=True,
    metavar="CODE",
    help="A property (小区) the account works for (repeatable; none: the whole company). See `ivr property list`.",
)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted for when not given.")
@click.pass_obj
def user_create(
    state: CliState,
    username: str,
    role: str,
    department: str | None,
    display_name: str | None,
    phone: str | None,
    property_codes: tuple[str, ...],
    password: str,
) -> None:
    """Create the staff account USERNAME with a role. With --property it sees only those properties' calls,
    tickets and evaluations (in the console, and through tokens made for it); without, the whole company's."""
    from ivr.staff import StaffError, create_user

    try:
        with state.database.session() as session:
            user = create_user(
                session,
                username,
                password,
                role,
                department=department,
                display_name=display_name,
                phone=phone,
                property_codes=property_codes,
            )
            where = _properties_label(user)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {username!r} created with role {role}, for {where}")


def _properties_label(user: User) -> str:
    """The account's properties by code, or the whole company."""
    return ", ".join(p.code for p in user.properties) or "the whole company"


@user.command("properties")
@click.argument("username")
@click.argument("property_codes", metavar="[CODE]...", nargs=-1)
@click.option("--company-wide", is_flag=True, help="Take every property away: the account works for the whole company.")
@click.pass_obj
def user_properties(state: CliState, username: str, property_codes: tuple[str, ...], company_wide: bool) -> None:
    """Show the properties (小区) USERNAME works for; with CODEs, make those its properties (replacing what it
    had); with --company-wide, none: the whole company. Its console sessions and tokens follow at their next
    request."""
    from sqlalchemy import select

    from ivr.models import User
    from ivr.staff import StaffError, set_properties

    if property_codes and company_wide:
        raise click.UsageError("give property CODEs or --company-wide, not both")
    try:
        with state.database.session() as session:
            account = session.scalars(select(User).where(User.username == username)).first()
            if account is None:
                raise click.ClickException(f"no user {username!r} (create it with `ivr user create`)")
            changed = bool(property_codes) or company_wide
            if changed:
                set_properties(session, account, property_codes)
            where = _properties_label(account)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{username!r} {'now works' if changed else 'works'} for {where}")


@user.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted for when not given.")
@click.pass_obj
def user_set_password(state: CliState, username: str, password: str) -> None:
    """Give USERNAME a new password; every console session of that account ends."""
    from sqlalchemy import select

    from ivr.models import User
    from ivr.staff import StaffError, set_password

    try:
        with state.database.session() as session:
            account = session.scalars(select(User).where(User.username == username)).first()
            if account is None:
                raise click.ClickException(f"no user {username!r} (create it with `ivr user create`)")
            set_password(account, password)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {username!r} changed; its console sessions have ended")


# Subcommands that live beside their feature.
for _command in (audit, call, fees, jobs, models, property_group, residents, spool, transcribe, twilio):
    main.add_command(_command)
