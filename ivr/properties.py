"""The properties (小区) the line serves: which one a dialled number belongs to, and what the line says and
rings for it. No Flask here.

Every webhook needs its call's property (the greeting's name, the duty phones, the local day of the ticket
number), so the few rows are read once per database and again at most every REFRESH_SECONDS, not per call:
`ivr property create` reaches a running server within that time. The default property (id 1) takes its name,
duty numbers and time zone from the settings unless stored, so a single-property install works unchanged.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, selectinload

from ivr.config import Settings
from ivr.followup.windows import WEEKDAYS, CallWindowError, parse_days_off, parse_windows
from ivr.models import DEFAULT_PROPERTY_CODE, DEFAULT_PROPERTY_ID, Property, PropertyNumber
from ivr.tickets.sla import use_property_timezones

REFRESH_SECONDS = 30.0
CODE_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_CODE_LENGTH = 32
MAX_NAME_LENGTH = 64
NO_DAYS_OFF = "none"  # --days-off none: the property calls every day, whatever IVR_CALL_DAYS_OFF says


class PropertyError(ValueError):
    """A property that cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True)
class StoredProperty:
    """A property row as read, before the settings fill what it leaves empty."""

    id: int
    code: str
    name: str | None
    timezone: str | None
    duty_numbers: tuple[str, ...]
    numbers: tuple[str, ...]
    call_windows: str | None = None
    call_days_off: str | None = None
    ask_satisfaction: bool = False


@dataclass(frozen=True)
class LineProperty:
    """A property as the line uses it: every value concrete."""

    id: int
    code: str
    name: str
    timezone: str
    duty_numbers: tuple[str, ...]
    numbers: tuple[str, ...]
    call_windows: str = ""  # when its residents may be called back (回访), e.g. 09:00-11:30,13:30-17:30
    call_days_off: str = ""  # weekdays and dates nobody is called
    ask_satisfaction: bool = False  # inbound calls end with the satisfaction question (ivr.telephony.satisfaction)

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_PROPERTY_ID


def with_settings(stored: StoredProperty, settings: Settings) -> LineProperty:
    """What the line uses for a property: its own values, else the settings' (IVR_PROPERTY_NAME, IVR_TIMEZONE,
    IVR_DUTY_NUMBERS: a property with no duty phones of its own rings the company's night desk; IVR_CALL_WINDOWS,
    IVR_CALL_DAYS_OFF)."""
    return LineProperty(
        id=stored.id,
        code=stored.code,
        name=stored.name or settings.property_name,
        timezone=stored.timezone or settings.timezone,
        duty_numbers=stored.duty_numbers or settings.duty_numbers,
        numbers=stored.numbers,
        call_windows=stored.call_windows if stored.call_windows is not None else settings.call_windows,
        call_days_off=stored.call_days_off if stored.call_days_off is not None else settings.call_days_off,
        ask_satisfaction=stored.ask_satisfaction,
    )


_DEFAULT_ROW = StoredProperty(DEFAULT_PROPERTY_ID, DEFAULT_PROPERTY_CODE, None, None, (), ())


class PropertyDirectory:
    """Every property of one database with its numbers, read at most every REFRESH_SECONDS."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._loaded_at = -REFRESH_SECONDS
        self._by_id: dict[int, StoredProperty] = {}
        self._by_number: dict[str, int] = {}

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at < REFRESH_SECONDS:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < REFRESH_SECONDS:
                return
            with self._engine.connect() as connection:
                self._load(connection)
            self._loaded_at = time.monotonic()

    def _load(self, connection: Connection) -> None:
        with Session(bind=connection) as session:
            rows = session.scalars(select(Property).options(selectinload(Property.numbers))).all()
            by_id = {
                row.id: StoredProperty(
                    row.id,
                    row.code,
                    row.name,
                    row.timezone,
                    tuple(row.duty_numbers or ()),
                    tuple(number.number for number in row.numbers),
                    row.call_windows,
                    row.call_days_off,
                    row.ask_satisfaction,
                )
                for row in rows
            }
        by_id.setdefault(DEFAULT_PROPERTY_ID, _DEFAULT_ROW)
        self._by_id = by_id
        self._by_number = {number: row.id for row in by_id.values() for number in row.numbers}
        use_property_timezones({row.id: row.timezone for row in by_id.values() if row.timezone})

    def reload(self) -> None:
        """Read the properties again at the next look-up (after this process changed them)."""
        self._loaded_at = -REFRESH_SECONDS

    def property_id_for_number(self, dialled: str | None) -> int:
        """The property whose number was dialled; a number no property has belongs to the default one."""
        self._fresh()
        return self._by_number.get((dialled or "").strip(), DEFAULT_PROPERTY_ID)

    def stored(self, property_id: int) -> StoredProperty:
        """The property with this id (a property deleted since falls back to the default one)."""
        self._fresh()
        return self._by_id.get(property_id) or self._by_id[DEFAULT_PROPERTY_ID]

    def all_stored(self) -> list[StoredProperty]:
        self._fresh()
        return sorted(self._by_id.values(), key=lambda row: (row.id != DEFAULT_PROPERTY_ID, row.code))


_directories: weakref.WeakKeyDictionary[Engine, PropertyDirectory] = weakref.WeakKeyDictionary()
_directories_lock = threading.Lock()


def property_directory(session: Session) -> PropertyDirectory:
    """The directory of the database this session talks to."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    directory = _directories.get(engine)
    if directory is None:
        with _directories_lock:
            directory = _directories.setdefault(engine, PropertyDirectory(engine))
    return directory


def line_property(session: Session, property_id: int, settings: Settings) -> LineProperty:
    """The property with this id as the line uses it."""
    return with_settings(property_directory(session).stored(property_id), settings)


def property_id_for_number(session: Session, dialled: str | None) -> int:
    return property_directory(session).property_id_for_number(dialled)


def all_properties(session: Session, settings: Settings) -> list[LineProperty]:
    """Every property, the default first, then by code."""
    return [with_settings(row, settings) for row in property_directory(session).all_stored()]


# Writes (ivr property create) ------------------------------------------------------------------------------


def _check_code(code: str) -> str:
    code = code.strip().lower()
    if not code or len(code) > MAX_CODE_LENGTH or not set(code) <= CODE_CHARACTERS:
        raise PropertyError(
            f"property code {code!r} must be 1–{MAX_CODE_LENGTH} lowercase letters, digits, '-' or '_' (e.g. xfjy)"
        )
    return code


def _check_number(number: str, what: str) -> str:
    number = number.strip()
    if not (number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16):
        raise PropertyError(f"{what} {number!r} is not an E.164 phone number like +862162345678")
    return number


def _check_days_off(text: str) -> None:
    weekdays, _ = parse_days_off(text)
    if len(weekdays) == len(WEEKDAYS):
        raise CallWindowError("every weekday is a day off: its residents would never be called back")


def _check_calendar_text(text: str, option: str, parse: Callable[[str], object]) -> str | None:
    """The windows or days off as given (normalised spacing), None for an empty text; PropertyError naming the
    option otherwise."""
    text = ",".join(piece.strip() for piece in text.split(",") if piece.strip())
    if not text:
        return None
    try:
        parse(text)
    except CallWindowError as exc:
        raise PropertyError(f"{option}: {exc}") from None
    return text


def save_property(
    session: Session,
    code: str,
    *,
    name: str | None = None,
    numbers: tuple[str, ...] | None = None,
    duty_numbers: tuple[str, ...] | None = None,
    timezone: str | None = None,
    call_windows: str | None = None,
    call_days_off: str | None = None,
    ask_satisfaction: bool | None = None,
) -> Property:
    """Create the property `code`, or change what is given of it (numbers and duty numbers are replaced as a
    whole). A number another property already has is refused, naming that property. Call windows and days
    off are checked as the follow-up calls read them; an empty text clears the property's own (the settings'
    apply again), days off "none" means every day may be called. `ask_satisfaction` None keeps what is stored.
    Flushes only."""
    code = _check_code(code)
    found = session.scalars(
        select(Property).where(Property.code == code).options(selectinload(Property.numbers))
    ).one_or_none()
    if found is None:
        if not name:
            raise PropertyError(f"property {code!r} is new: give its name (--name), as the greeting says it")
        found = Property(code=code, duty_numbers=[], numbers=[])
        session.add(found)
    if name is not None:
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH:
            raise PropertyError(f"the name must be 1–{MAX_NAME_LENGTH} characters (e.g. 幸福家园)")
        found.name = name
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except Exception:
            raise PropertyError(f"time zone {timezone!r} is not known (e.g. Asia/Shanghai)") from None
        found.timezone = timezone
    if call_windows is not None:
        found.call_windows = _check_calendar_text(call_windows, "--call-windows", parse_windows)
    if call_days_off is not None:
        none = call_days_off.strip().lower() == NO_DAYS_OFF
        found.call_days_off = "" if none else _check_calendar_text(call_days_off, "--days-off", _check_days_off)
    if ask_satisfaction is not None:
        found.ask_satisfaction = ask_satisfaction
    if duty_numbers is not None:
        found.duty_numbers = [_check_number(number, "duty number") for number in duty_numbers]
    if numbers is not None:
        wanted = [_check_number(number, "number") for number in dict.fromkeys(numbers)]
        taken = session.execute(
            select(PropertyNumber.number, Property.code)
            .join(Property)
            .where(PropertyNumber.number.in_(wanted), Property.code != code)
        ).all()
        if taken:
            raise PropertyError(
                "; ".join(f"{number} is already the number of property {other!r}" for number, other in taken)
            )
        kept = {number.number: number for number in found.numbers}
        found.numbers = [kept.get(number) or PropertyNumber(number=number) for number in wanted]
    session.flush()
    return found
