"""The `ivr fees` commands: import the finance office's CSV, show what a room owes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ivr.cli_state import CliState


@click.group()
def fees() -> None:
    """The fee ledger (收费): what each room owes."""


PROPERTY_OPTION = click.option(
    "--property", "property_code", default="default", show_default=True, help="The property's code (ivr property list)."
)


@fees.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@PROPERTY_OPTION
@click.pass_obj
def import_fees(state: CliState, csv_file: Path, property_code: str) -> None:
    """Import a fee CSV into a property's ledger: every line, or none if any line has a problem.

    The header must name the columns room,fee_type,period,amount_due,due_date (any order). A line that
    matches an existing (room, fee_type, period) of the property overwrites it.
    """
    # Imported here, not at the top, so `ivr --help` does not load the models and cn2an.
    from ivr.csv_cli import refuse_import
    from ivr.fees.ledger import FeeImportError, import_fee_rows, parse_fee_csv
    from ivr.property_cli import property_id_of

    try:
        rows = parse_fee_csv(csv_file.read_bytes())
    except FeeImportError as exc:
        refuse_import(exc.problems)
    with state.database.session() as session:
        summary = import_fee_rows(session, rows, property_id_of(session, property_code))
    click.echo(f"imported {summary.total} lines ({summary.inserted} new, {summary.updated} updated)")


@fees.command("show")
@click.argument("room")
@PROPERTY_OPTION
@click.pass_obj
def show_fees(state: CliState, room: str, property_code: str) -> None:
    """Show what a room owes.

    ROOM is 楼栋-单元-房号, e.g. 3-2-501. Exit status 1 if the room has no lines in the ledger.
    """
    from ivr.fees.ledger import normalise_room, room_balance
    from ivr.property_cli import property_id_of

    try:
        room = normalise_room(room)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ROOM") from None
    with state.database.session() as session:
        balance = room_balance(session, room, property_id_of(session, property_code))
    if balance is None:
        click.echo(f"{room}: not in the fee ledger", err=True)
        raise SystemExit(1)
    if balance.owes_nothing:
        click.echo(f"{room} owes nothing")
        return
    click.echo(f"{room} owes {balance.total:,.2f} in total:")
    for line in balance.lines:
        click.echo(f"  {line.fee_type}\t{line.period}\t{line.amount_due:>12,.2f}\tdue {line.due_date.isoformat()}")
