"""`ivr property create | list`: the properties (小区) the line serves, their numbers and duty phones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ivr.cli_state import CliState


def property_id_of(session: Session, code: str) -> int:
    """The id of the property with this code, or a ClickException naming the ones there are."""
    from sqlalchemy import select

    from ivr.models import Property

    found = session.scalar(select(Property.id).where(Property.code == code.strip().lower()))
    if found is None:
        codes = ", ".join(session.scalars(select(Property.code).order_by(Property.code)))
        raise click.ClickException(f"no property {code!r} (there are: {codes}); create it with `ivr property create`")
    return found


def on_off(asked: bool) -> str:
    """Whether the property asks the satisfaction question, as the commands print it."""
    return "on" if asked else "off"


@click.group("property")
def property_group() -> None:
    """Properties (小区): each with its own numbers, name in the greeting, duty phones and time zone."""


@property_group.command("create")
@click.argument("code")
@click.option("--name", help="The name the greeting says (您好,NAME物业服务中心…); required for a new property.")
@click.option("--number", "numbers", multiple=True, metavar="E164", help="A Twilio number residents dial (repeatable).")
@click.option(
    "--duty-number",
    "duty_numbers",
    multiple=True,
    metavar="E164",
    help="A phone rung for a person or an emergency (repeatable; none: IVR_DUTY_NUMBERS).",
)
@click.option("--timezone", help="Local time zone (none: IVR_TIMEZONE), e.g. Asia/Shanghai.")
@click.option(
    "--call-windows",
    metavar="HH:MM-HH:MM,…",
    help='When its residents may be called back (回访), local time, e.g. "09:00-11:30,13:30-17:30" '
    '(none: IVR_CALL_WINDOWS; "" clears).',
)
@click.option(
    "--days-off",
    "call_days_off",
    metavar="DAYS",
    help='Weekdays and dates nobody is called back, e.g. "sun,2027-02-17" ("none": every day; "" clears: '
    "IVR_CALL_DAYS_OFF).",
)
@click.option(
    "--ask-satisfaction/--no-ask-satisfaction",
    default=None,
    help="Whether its inbound calls end with the satisfaction question (1–5 by keypad, after the ticket number); "
    "new properties do not ask; left out, an update keeps what it had.",
)
@click.pass_obj
def create_property(
    state: CliState,
    code: str,
    name: str | None,
    numbers: tuple[str, ...],
    duty_numbers: tuple[str, ...],
    timezone: str | None,
    call_windows: str | None,
    call_days_off: str | None,
    ask_satisfaction: bool | None,
) -> None:
    """Create the property CODE, or update it: what is given replaces what it had (all its numbers, or all
    its duty numbers), the rest stays. A call to one of its numbers belongs to it; a number no property has
    belongs to the default property (code "default"), whose name and numbers come from the settings until
    set here. A running server sees the change within 30 seconds."""
    from ivr.properties import PropertyError, save_property

    try:
        with state.database.session() as session:
            saved = save_property(
                session,
                code,
                name=name,
                numbers=numbers or None,
                duty_numbers=duty_numbers or None,
                timezone=timezone,
                call_windows=call_windows,
                call_days_off=call_days_off,
                ask_satisfaction=ask_satisfaction,
            )
            summary = (
                f"property {saved.code!r} saved: {len(saved.numbers)} number(s), {len(saved.duty_numbers)} duty, "
                f"satisfaction question: {on_off(saved.ask_satisfaction)}"
            )
    except PropertyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary)


@property_group.command("list")
@click.pass_obj
def list_properties(state: CliState) -> None:
    """Show every property with its name, numbers, duty phones, time zone, whether its calls end with the
    satisfaction question, and its follow-up call windows and days off (settings' values marked *)."""
    from ivr.properties import all_properties, property_directory

    with state.database.session(read_only=True) as session:
        directory = property_directory(session)
        directory.reload()
        stored = {row.id: row for row in directory.all_stored()}
        lines = all_properties(session, state.settings)
    for line in lines:
        own = stored[line.id]

        def mark(value: object, own_value: object) -> str:
            return f"{value}" if own_value else f"{value}*"

        click.echo(
            f"{line.code}\t{mark(line.name, own.name)}\t"
            f"numbers: {', '.join(line.numbers) or '-'}\t"
            f"duty: {mark(', '.join(line.duty_numbers) or '-', own.duty_numbers)}\t"
            f"{mark(line.timezone, own.timezone)}\t"
            f"satisfaction question: {on_off(line.ask_satisfaction)}\t"
            f"calls: {mark(line.call_windows, own.call_windows is not None)}\t"
            f"days off: {mark(line.call_days_off or '-', own.call_days_off is not None)}"
        )
    click.echo(
        "* from the settings (IVR_PROPERTY_NAME, IVR_DUTY_NUMBERS, IVR_TIMEZONE, IVR_CALL_WINDOWS, IVR_CALL_DAYS_OFF)"
    )
