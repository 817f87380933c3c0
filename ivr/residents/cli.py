"""The `ivr residents` commands: replace a property's registry with its current list, show who is registered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ivr.cli_state import CliState


@click.group()
def residents() -> None:
    """The resident registry (住户登记): which phones belong to which rooms of a property. The line offers a
    registered caller their room, and tells a room's arrears only to a phone registered for it."""


@residents.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--property",
    "property_code",
    required=True,
    help="The property's code (ivr property list); named, never assumed, as its whole registry is replaced.",
)
@click.pass_obj
def import_residents(state: CliState, csv_file: Path, property_code: str) -> None:
    """Replace a property's registry with FILE.csv, the property's current list: every line, or nothing if
    any line has a problem (each one is listed by line number).

    The header names the columns room,name,phone (any order); one line per phone: a room with two phones has
    two lines, a phone of two rooms too; the name may be empty. Residents not in the file are removed (those
    added in the console too), names are updated, new ones are added. Phones are kept as the line sees the
    caller's number: 13912345678, 139 1234 5678 and +86 139-1234-5678 are all +8613912345678; a landline needs
    its area code (021-62345678 is +862162345678). UTF-8 (with or without BOM) or GBK, as Excel saves it.
    """
    # Imported here, not at the top, so `ivr --help` does not load the models.
    from ivr.csv_cli import refuse_import
    from ivr.property_cli import property_id_of
    from ivr.residents.registry import ResidentImportError, parse_resident_csv, replace_registry

    try:
        rows = parse_resident_csv(csv_file.read_bytes())
    except ResidentImportError as exc:
        refuse_import(exc.problems)
    with state.database.session() as session:
        summary = replace_registry(session, property_id_of(session, property_code), rows)
    click.echo(
        f"property {property_code!r} now has {summary.total} registered phones ({summary.added} new, "
        f"{summary.renamed} renamed, {summary.unchanged} unchanged, {summary.removed} removed)"
    )


@residents.command("list")
@click.option(
    "--property", "property_code", default="default", show_default=True, help="The property's code (ivr property list)."
)
@click.option("--room", help="Only this room (楼栋-单元-房号, e.g. 3-2-501).")
@click.pass_obj
def list_residents(state: CliState, property_code: str, room: str | None) -> None:
    """Show a property's registered phones: room, name, phone, and who last changed the line (import or the
    admin's name), in room order."""
    from ivr.property_cli import property_id_of
    from ivr.residents.registry import find_residents, registry_room

    if room is not None:
        try:
            room = registry_room(room)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--room") from None
    with state.database.session(read_only=True) as session:
        found = find_residents(session, property_id_of(session, property_code), room=room)
        lines = [f"{r.room}\t{r.name or '-'}\t{r.phone}\t{r.updated_by or 'import'}" for r in found]
    for line in lines:
        click.echo(line)
    where = f"room {room} of property {property_code!r}" if room else f"property {property_code!r}"
    click.echo(f"{len(lines)} registered phone(s) for {where}", err=True)
