"""Fee ledger operations: parse the finance office's CSV, upsert it, and say what a room owes.

Functions here take a SQLAlchemy `Session` and only `flush()`; the command or request that calls them
commits once. No Flask imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import IO

import cn2an
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.csv_files import RowFields, halfwidth, parse_rows, read_text
from ivr.db import utcnow
from ivr.models import DEFAULT_PROPERTY_ID, FeeItem

CSV_COLUMNS = ("room", "fee_type", "period", "amount_due", "due_date")
MAX_TEXT_LENGTH = 32  # fee_type and period columns are String(32)
MAX_AMOUNT = Decimal("9999999999.99")  # Numeric(12, 2)
CENT = Decimal("0.01")

_ROOM_RE = re.compile(r"[0-9]+-[0-9]+-[0-9]+")
_AMOUNT_RE = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})")
_CHUNK = 500  # rooms per IN (...) query, well under SQLite's bound-parameter limit


class FeeImportError(Exception):
    """A fee CSV that cannot be imported; `problems` lists every `(line_number, message)` found."""

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the fee file; nothing imported")


@dataclass(frozen=True)
class FeeRow:
    """One validated, normalised data row of a fee CSV; `line` is its spreadsheet row number."""

    line: int
    room: str
    fee_type: str
    period: str
    amount_due: Decimal
    due_date: date

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.room, self.fee_type, self.period)


@dataclass(frozen=True)
class ImportSummary:
    """How many ledger lines an import created and how many it overwrote."""

    inserted: int
    updated: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated


@dataclass(frozen=True)
class OwedLine:
    """One fee a room still owes."""

    fee_type: str
    period: str
    amount_due: Decimal
    due_date: date


@dataclass(frozen=True)
class RoomBalance:
    """What a room owes: the unpaid lines (earliest due first) and their total."""

    room: str
    lines: tuple[OwedLine, ...]
    total: Decimal

    @property
    def owes_nothing(self) -> bool:
        return not self.lines


# --- normalising single values ------------------------------------------------------------------


def normalise_room(text: str) -> str:
    """`楼栋-单元-房号` as ASCII digits and hyphens ('３－２－５０１ ' -> '3-2-501'); ValueError otherwise."""
    room = "".join(halfwidth(text).split())  # drops every space, the ideographic U+3000 too
    if not _ROOM_RE.fullmatch(room):
        raise ValueError(f"room {text.strip()!r} is not 楼栋-单元-房号 digits like 3-2-501")
    return room


def _parse_amount(text: str) -> Decimal:
    value = halfwidth(text).strip()
    if not value:
        raise ValueError("amount_due is empty")
    negative = value.startswith("-")
    if not _AMOUNT_RE.fullmatch(value.removeprefix("-")):
        raise ValueError(f"amount_due {text.strip()!r} is not a number like 356.50 or 1,200.00")
    if negative:
        raise ValueError(f"amount_due {text.strip()!r} is negative")
    amount = Decimal(value.replace(",", ""))
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount_due {text.strip()!r} has more than 2 decimal places")
    if amount > MAX_AMOUNT:
        raise ValueError(f"amount_due {text.strip()!r} is too large")
    return amount.quantize(CENT)


def _parse_due_date(text: str) -> date:
    value = halfwidth(text).strip()
    if not value:
        raise ValueError("due_date is empty")
    match = _DATE_RE.fullmatch(value)
    if not match:
        raise ValueError(f"due_date {text.strip()!r} is not a date like 2026-11-30 or 2026/11/30")
    try:
        return date(int(match[1]), int(match[3]), int(match[4]))
    except ValueError:
        raise ValueError(f"due_date {text.strip()!r} is not a real date") from None


def _parse_label(text: str, column: str, *, fold_width: bool) -> str:
    value = (halfwidth(text) if fold_width else text).strip()
    if not value:
        raise ValueError(f"{column} is empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"{column} {value!r} is longer than {MAX_TEXT_LENGTH} characters")
    return value


# --- the CSV ------------------------------------------------------------------------------------


def _parse_row(line: int, fields: RowFields) -> FeeRow | None:
    room = fields.take("room", normalise_room)
    fee_type = fields.take("fee_type", lambda text: _parse_label(text, "fee_type", fold_width=False))
    period = fields.take("period", lambda text: _parse_label(text, "period", fold_width=True))
    amount_due = fields.take("amount_due", _parse_amount)
    due_date = fields.take("due_date", _parse_due_date)
    if room is None or fee_type is None or period is None or amount_due is None or due_date is None:
        return None
    return FeeRow(line, room, fee_type, period, amount_due, due_date)


def parse_fee_csv(source: str | bytes | IO[str] | IO[bytes]) -> list[FeeRow]:
    """Parse and validate a whole fee CSV; raise FeeImportError listing every problem by line."""
    text = read_text(source, FeeImportError)
    return parse_rows(text, CSV_COLUMNS, _parse_row, FeeImportError, nothing="fee lines")


# --- the database -------------------------------------------------------------------------------


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_fee_rows(session: Session, rows: Iterable[FeeRow], property_id: int = DEFAULT_PROPERTY_ID) -> ImportSummary:
    """Upsert rows into the property's ledger on (room, fee_type, period); flushes, the caller commits (only if
    parsing was clean)."""
    rows = list(rows)
    existing: dict[tuple[str, str, str], FeeItem] = {}
    # Select-then-write rather than INSERT ... ON CONFLICT: the same code on SQLite and PostgreSQL.
    for rooms in _chunks(sorted({row.room for row in rows}), _CHUNK):
        in_ledger = select(FeeItem).where(FeeItem.property_id == property_id, FeeItem.room.in_(rooms))
        for item in session.scalars(in_ledger):
            existing[(item.room, item.fee_type, item.period)] = item

    inserted = updated = 0
    now = utcnow()
    for row in rows:
        found = existing.get(row.key)
        if found is None:
            item = FeeItem(property_id=property_id, room=row.room, fee_type=row.fee_type, period=row.period)
            session.add(item)
            existing[row.key] = item
            inserted += 1
        else:
            item = found
            updated += 1
        item.amount_due = row.amount_due
        item.due_date = row.due_date
        item.imported_at = now
    session.flush()
    return ImportSummary(inserted=inserted, updated=updated)


def room_balance(session: Session, room: str, property_id: int = DEFAULT_PROPERTY_ID) -> RoomBalance | None:
    """What `room` of the property owes (lines with amount_due > 0, earliest due first), or None if it has no
    lines."""
    try:
        room = normalise_room(room)
    except ValueError:
        return None  # the import only stores well-formed rooms, so this one cannot be in the ledger
    items = session.scalars(select(FeeItem).where(FeeItem.property_id == property_id, FeeItem.room == room)).all()
    if not items:
        return None
    # Sorted here, not in SQL: PostgreSQL collations order Chinese fee types differently from SQLite.
    owed = tuple(
        sorted(
            (
                OwedLine(
                    fee_type=item.fee_type,
                    period=item.period,
                    amount_due=Decimal(item.amount_due).quantize(CENT),
                    due_date=item.due_date,
                )
                for item in items
                if item.amount_due > 0
            ),
            key=lambda line: (line.due_date, line.fee_type, line.period),
        )
    )
    total = sum((line.amount_due for line in owed), Decimal("0.00"))
    return RoomBalance(room=room, lines=owed, total=total)


# --- saying it ----------------------------------------------------------------------------------


def format_amount_cn(amount: Decimal) -> str:
    """An amount as a Mandarin TTS should say it: 356.50 -> 三百五十六元五角, 10.07 -> 十元零七分."""
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"cannot say amount {amount}")
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount {amount} has more than 2 decimal places")
    cents = int(amount.quantize(CENT) * 100)
    yuan, jiao, fen = cents // 100, cents // 10 % 10, cents % 10
    if cents == 0:
        return "零元"
    parts = []
    if yuan:
        parts.append(f"{cn2an.an2cn(str(yuan))}元")
    if jiao:
        parts.append(f"{cn2an.an2cn(str(jiao))}角")
    if fen:
        # 零 marks the skipped 角 between 元 and 分 (十元零七分); with no 元 there is nothing to bridge.
        if yuan and not jiao:
            parts.append("零")
        parts.append(f"{cn2an.an2cn(str(fen))}分")
    return "".join(parts)


def format_date_cn(day: date) -> str:
    """A date as written and read in Chinese: 2026-11-30 -> 2026年11月30日."""
    return f"{day.year}年{day.month}月{day.day}日"
