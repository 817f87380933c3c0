"""The resident registry: parse the property's CSV, replace its registry with it, edit one resident, and look a
caller's number up.

Functions here take a SQLAlchemy `Session` and only `flush()`; the command or request that calls them commits
once. A phone is kept as Twilio sends `From` (E.164, e.g. +8613912345678), so a call's number is looked up as
it comes, in one query on the (property_id, phone) index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ivr.csv_files import RowFields, halfwidth, parse_rows, read_text
from ivr.fees.ledger import normalise_room
from ivr.models import Call, Resident
from ivr.tickets.rooms import parse_room_code

CSV_COLUMNS = ("room", "name", "phone")
MAX_NAME_LENGTH = 64  # Resident.name is String(64)

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")  # \s includes the ideographic space U+3000
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# A mainland landline after its area code's 0: Beijing 10 and the 2X cities with 8-digit numbers, the
# three-digit area codes with 7 or 8; a local number never starts with 0 or 1.
_LANDLINE = re.compile(r"(?:10|2[0-9])[2-9][0-9]{7}|[3-9][0-9]{2}[2-9][0-9]{6,7}")
_E164_DIGITS = re.compile(r"[1-9][0-9]{7,14}")


class ResidentImportError(Exception):
    """A registry CSV that cannot be imported; `problems` lists every `(line_number, message)` found."""

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the resident file; nothing imported")


class ResidentError(ValueError):
    """A console edit of the registry that cannot be made; the message (in Chinese) says why."""


@dataclass(frozen=True)
class ResidentRow:
    """One validated, normalised line of a registry CSV; `line` is its spreadsheet row number."""

    line: int
    room: str
    name: str | None
    phone: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.room, self.phone)


@dataclass(frozen=True)
class RegistrySummary:
    """What replacing a property's registry did, in residents (one per room and phone)."""

    added: int
    renamed: int
    unchanged: int
    removed: int

    @property
    def total(self) -> int:
        """How many the registry holds now."""
        return self.added + self.renamed + self.unchanged


# --- normalising single values ------------------------------------------------------------------


def normalise_phone(text: str) -> str:
    """A phone as Twilio sends it in `From` (E.164): 13912345678, 139 1234 5678 and +86 139-1234-5678 are
    +8613912345678, the landline 021-62345678 is +862162345678, a number with another country code is kept;
    ValueError for what cannot be a phone (a landline without its area code among them)."""
    raw = halfwidth(text).strip()
    if not raw:
        raise ValueError("phone is empty")
    if "e+" in raw.lower():
        raise ValueError(f"phone {raw!r} was shortened by the spreadsheet: format the column as text, export again")
    compact = _PHONE_SEPARATORS.sub("", raw)
    if compact.startswith(("+", "00")):
        international = compact.removeprefix("+") if compact.startswith("+") else compact[2:]
        if international.startswith("86"):
            national = _mainland(international[2:].removeprefix("0"))  # '+86 (0)21 …' is written too
        elif _E164_DIGITS.fullmatch(international):
            return f"+{international}"
        else:
            national = None
    elif compact.startswith("86") and _MOBILE.fullmatch(compact[2:]):
        national = compact[2:]
    elif _MOBILE.fullmatch(compact):
        national = compact
    elif compact.startswith("0"):
        national = _mainland(compact[1:])
    elif compact.isdigit() and 7 <= len(compact) <= 8:
        raise ValueError(f"phone {raw!r} needs its area code, like 021-62345678")
    else:
        national = None
    if national is None:
        raise ValueError(f"phone {raw!r} is not a mobile like 13912345678 or a landline like 021-62345678")
    return f"+86{national}"


def _mainland(national: str) -> str | None:
    """The national number (no leading 0) when it is a mainland mobile or landline."""
    return national if _MOBILE.fullmatch(national) or _LANDLINE.fullmatch(national) else None


def caller_phone(number: str | None) -> str | None:
    """The registry's form of a call's From, or None when it is no phone (withheld, a SIP address)."""
    try:
        return normalise_phone(number or "")
    except ValueError:
        return None


def registry_room(text: str) -> str:
    """A room as the line keeps it (`3-2-501`, building and unit without leading zeros) and a caller can key
    it; ValueError otherwise."""
    room = parse_room_code(normalise_room(text))
    if room is None or room.building == 0 or room.unit == 0 or int(room.number) == 0:
        raise ValueError(
            f"room {text.strip()!r} is not 楼栋-单元-房号 like 3-2-501 (up to 3, 2 and 5 digits, none of them 0)"
        )
    return room.code


def _parse_name(text: str) -> str | None:
    name = " ".join(text.split())
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    return name or None


def room_order(room: str) -> tuple[int, int, int, str]:
    """Rooms as people count them: 3-2-501 before 10-1-101 (not as text sorts them)."""
    building, unit, number = room.split("-")
    return (int(building), int(unit), int(number), number)


# --- the CSV ------------------------------------------------------------------------------------


def _parse_row(line: int, fields: RowFields) -> ResidentRow | None:
    room = fields.take("room", registry_room)
    name = fields.take("name", _parse_name)  # None for an empty name too; a bad one is in `fields.problems`
    phone = fields.take("phone", normalise_phone)
    if room is None or phone is None:
        return None
    return ResidentRow(line, room, name, phone)


def parse_resident_csv(source: str | bytes | IO[str] | IO[bytes]) -> list[ResidentRow]:
    """Parse and validate a whole registry CSV (room,name,phone; one line per room and phone); raise
    ResidentImportError listing every problem by line."""
    text = read_text(source, ResidentImportError)
    return parse_rows(text, CSV_COLUMNS, _parse_row, ResidentImportError, nothing="residents")


# --- the database -------------------------------------------------------------------------------


def replace_registry(session: Session, property_id: int, rows: Iterable[ResidentRow]) -> RegistrySummary:
    """Make the property's registry what `rows` say (the property's current list): residents not in it are
    removed, names follow it, new ones are added. Flushes; the caller commits (only if parsing was clean)."""
    wanted = {row.key: row for row in rows}
    existing = {
        (resident.room, resident.phone): resident
        for resident in session.scalars(select(Resident).where(Resident.property_id == property_id))
    }
    added = renamed = unchanged = removed = 0
    for key, resident in existing.items():
        if key not in wanted:
            session.delete(resident)
            removed += 1
    for key, row in wanted.items():
        found = existing.get(key)
        if found is None:
            session.add(Resident(property_id=property_id, room=row.room, name=row.name, phone=row.phone))
            added += 1
        elif found.name != row.name:
            found.name, found.updated_by = row.name, None  # None: the import
            renamed += 1
        else:
            unchanged += 1
    session.flush()
    return RegistrySummary(added=added, renamed=renamed, unchanged=unchanged, removed=removed)


def registered_rooms(session: Session, property_id: int, phone: str) -> list[str]:
    """The rooms of the property this phone is registered for, in counting order (one query on the
    (property_id, phone) index)."""
    # The name comes too, unused: asked for the room alone, SQLite takes the unique (property_id, room, phone)
    # index as covering the query and reads every row of the property in it, not the phone's.
    found = session.execute(
        select(Resident.room, Resident.name).where(Resident.property_id == property_id, Resident.phone == phone)
    ).all()
    return sorted({room for room, _ in found}, key=room_order)


def residents_of_phone(session: Session, property_id: int, phone: str | None) -> list[Resident]:
    """Who the property's registry says this number is (one row per room), in counting order."""
    number = caller_phone(phone)
    if number is None:
        return []
    found = session.scalars(select(Resident).where(Resident.property_id == property_id, Resident.phone == number))
    return sorted(found, key=lambda resident: room_order(resident.room))


def find_residents(
    session: Session, property_id: int, *, room: str | None = None, search: str | None = None
) -> list[Resident]:
    """The property's residents, in counting order of room then phone: of one room, or those whose room, name
    or phone contains `search`."""
    query = select(Resident).where(Resident.property_id == property_id)
    if room:
        query = query.where(Resident.room == room)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(*(column.like(pattern, escape="\\") for column in (Resident.room, Resident.name, Resident.phone)))
        )
    return sorted(session.scalars(query), key=lambda resident: (room_order(resident.room), resident.phone))


def count_residents(session: Session, property_id: int) -> int:
    return session.scalar(select(func.count()).where(Resident.property_id == property_id)) or 0


def add_resident(session: Session, property_id: int, room: str, name: str, phone: str, actor: str) -> Resident:
    """An admin registers a phone for a room; ResidentError when the room or phone is not one, or the pair is
    registered already."""
    try:
        room = registry_room(room)
    except ValueError:
        raise ResidentError(f"房号“{room.strip()}”格式不正确,请按 楼栋-单元-房号 填写,例如 3-2-501") from None
    try:
        phone = normalise_phone(phone)
    except ValueError:
        raise ResidentError(
            f"电话“{phone.strip()}”不是有效号码:手机如 13912345678,固定电话请带区号,如 021-62345678"
        ) from None
    try:
        cleaned = _parse_name(name)
    except ValueError:
        raise ResidentError(f"姓名不能超过{MAX_NAME_LENGTH}个字") from None
    taken = session.scalar(
        select(Resident.id).where(Resident.property_id == property_id, Resident.room == room, Resident.phone == phone)
    )
    if taken is not None:
        raise ResidentError(f"{room} 已登记电话 {phone}")
    resident = Resident(property_id=property_id, room=room, name=cleaned, phone=phone, updated_by=actor)
    session.add(resident)
    session.flush()
    return resident


def rename_resident(resident: Resident, name: str, actor: str) -> None:
    """An admin corrects a resident's name (empty: no name on record)."""
    try:
        resident.name = _parse_name(name)
    except ValueError:
        raise ResidentError(f"姓名不能超过{MAX_NAME_LENGTH}个字") from None
    resident.updated_by = actor


def remove_resident(session: Session, resident: Resident) -> None:
    """An admin removes a phone from a room (the line stops offering that room to it)."""
    session.delete(resident)
    session.flush()


# --- what a call knows of its caller ------------------------------------------------------------
#
# Looked up once per call, when the line first needs it, and kept in the call's state (Call.counters, a JSON
# map of names to numbers: each registered room is a key, its value its place in the offer), so the later
# webhooks of the call read it from the call's own row.

_LOOKED_UP = "registry_rooms"  # present once looked up: how many rooms the caller's number has here
_ROOM_KEY = "registry_room:"  # + a registered room → its place (1, 2, …)
ROOM_FROM_REGISTRY = "room_from_registry"  # 1 while the call's room is one the caller took from the registry


def caller_rooms(session: Session, call: Call) -> list[str]:
    """The rooms of the call's property its caller's number is registered for, in counting order (none for a
    withheld number); looked up on the first ask of the call, read from the call afterwards."""
    counters = call.counters or {}
    if _LOOKED_UP in counters:
        kept = [(place, key.removeprefix(_ROOM_KEY)) for key, place in counters.items() if key.startswith(_ROOM_KEY)]
        return [room for _, room in sorted(kept)]
    phone = caller_phone(call.from_number)
    rooms = registered_rooms(session, call.property_id, phone) if phone else []
    call.counters = {  # reassigned: JSON columns do not track in-place changes
        **counters,
        _LOOKED_UP: len(rooms),
        **{f"{_ROOM_KEY}{room}": place for place, room in enumerate(rooms, start=1)},
    }
    return rooms


def caller_registered_for(session: Session, call: Call, room: str | None) -> bool:
    """Whether the caller's number is registered for this room of the call's property."""
    return bool(room) and room in caller_rooms(session, call)


def set_room_from_registry(call: Call, from_registry: bool) -> None:
    """Remember whether the call's room is the one the caller took from the registry (the ticket says so)."""
    if bool((call.counters or {}).get(ROOM_FROM_REGISTRY)) == from_registry:
        return  # unchanged: the JSON column is not rewritten
    counters = {key: value for key, value in (call.counters or {}).items() if key != ROOM_FROM_REGISTRY}
    if from_registry:
        counters[ROOM_FROM_REGISTRY] = 1
    call.counters = counters


def room_from_registry(call: Call) -> bool:
    """Whether the call's room came from the registry (offered for the caller's number and accepted)."""
    return bool(call.room) and bool((call.counters or {}).get(ROOM_FROM_REGISTRY))
