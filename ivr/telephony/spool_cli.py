"""`ivr spool list | replay`: webhooks kept on disk while the database was unreachable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ivr.telephony.spool import Spool

if TYPE_CHECKING:
    from ivr.cli_state import CliState


@click.group()
def spool() -> None:
    """Webhooks waiting on local disk for the database (replayed by `ivr serve` / `ivr worker`)."""


@spool.command("list")
@click.pass_obj
def spool_list(state: CliState) -> None:
    """Show pending and parked requests, oldest first."""
    folder = Spool(state.settings.spool_dir)
    pending = folder.entries()
    failed = folder.failed_entries()
    click.echo(f"spool {folder.directory}: {len(pending)} pending, {len(failed)} could not be applied")
    for entry in pending:
        click.echo(
            f"  {entry.received_at}  {entry.path:<28} {entry.form.get('CallSid', '')}  "
            f"{entry.form.get('RecordingSid', '')}  ({entry.reason[:80]})"
        )
    for entry, reason in failed:
        click.echo(f"  FAILED {entry.received_at}  {entry.path:<28} {entry.form.get('CallSid', '')}  {reason[:120]}")


@spool.command("replay")
@click.option("--retry-failed", is_flag=True, help="Put the requests that could not be applied back first.")
@click.pass_obj
def spool_replay(state: CliState, retry_failed: bool) -> None:
    """Apply the pending requests now, in arrival order (harmless to run twice)."""
    from ivr import create_app
    from ivr.telephony.spool import replay_spool

    settings = state.settings
    if retry_failed:
        click.echo(f"{Spool(settings.spool_dir).retry_failed()} parked request(s) put back")
    app = create_app(settings)
    try:
        result = replay_spool(app)
    finally:
        app.extensions["ivr.database"].dispose()
    click.echo(f"applied {result.replayed}, parked {result.parked}, still pending {result.remaining}")
    if result.stopped_by:
        raise click.ClickException(f"replay stopped: {result.stopped_by}")
