"""What the finance office's and the registry's spreadsheets (CSV) have in common: their text in UTF-8 or
GBK, blank rows, a header naming its columns in any order, full-width characters typed with a Chinese IME,
rows numbered as the spreadsheet shows them, duplicates by key, and all or nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R", bound="KeyedRow")

# Full-width ASCII (U+FF01..U+FF5E: digits, '－', '／', '．', '，', letters) typed with a Chinese IME.
# Only this block is folded, not all of NFKC, so look-alikes such as '﹣' or '—' are still rejected.
HALFWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def halfwidth(text: str) -> str:
    return text.translate(HALFWIDTH)


def read_text(source: str | bytes | IO[str] | IO[bytes], error: type[Exception]) -> str:
    """The file's text: bytes are tried as UTF-8 (with or without BOM), then GB18030 (covers GBK); otherwise
    `error` with the problem on line 1."""
    raw = source if isinstance(source, str | bytes) else source.read()
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise error([(1, "the file is neither UTF-8 nor GBK/GB18030 text")])


def is_blank(cells: Sequence[str]) -> bool:
    # Excel writes trailing rows of bare commas; they are as empty as a blank line.
    return all(not cell.strip() for cell in cells)


def header_columns(cells: Sequence[str], expected: Sequence[str]) -> tuple[dict[str, int] | None, str | None]:
    """Where each expected column is (any order), or the problem with the header."""
    names = [halfwidth(cell).strip().lower() for cell in cells]
    while names and not names[-1]:
        names.pop()
    missing = [column for column in expected if column not in names]
    unknown = [name or "(empty)" for name in names if name not in expected]
    repeated = sorted({name for name in names if name in expected and names.count(name) > 1})
    if not (missing or unknown or repeated):
        return {name: names.index(name) for name in expected}, None
    details = []
    if missing:
        details.append("missing " + ", ".join(missing))
    if unknown:
        details.append("unknown " + ", ".join(unknown))
    if repeated:
        details.append("repeated " + ", ".join(repeated))
    return None, f"header must be {','.join(expected)} (any order): {'; '.join(details)}"


class KeyedRow(Protocol):
    """A parsed data row: at most one row of a file may have its key (its cells that make it this row)."""

    @property
    def key(self) -> tuple[str, ...]: ...


class RowFields:
    """One data row's cells by column name; `take` parses one, keeping each problem instead of stopping at the
    first, so a line's every problem is listed at once."""

    def __init__(self, cells: Mapping[str, str]) -> None:
        self.cells = cells
        self.problems: list[str] = []

    def take(self, column: str, parse: Callable[[str], T]) -> T | None:
        """The column's cell parsed, or None with the ValueError's message kept in `problems`."""
        try:
            return parse(self.cells[column])
        except ValueError as exc:
            self.problems.append(str(exc))
            return None


def parse_rows(
    text: str,
    columns: Sequence[str],
    parse_row: Callable[[int, RowFields], R | None],
    error: type[Exception],
    nothing: str,
) -> list[R]:
    """Every data row of a CSV text parsed by `parse_row(line, fields)` (a row with `fields.problems` is refused),
    or `error` with every `(line, message)` found: the header's, each row's, duplicates of an earlier row's key,
    and a file without rows (`nothing` names what is missing, e.g. "fee lines")."""
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[tuple[int, str]] = []
    rows: list[R] = []
    first_line_of: dict[tuple[str, ...], int] = {}
    places: dict[str, int] | None = None

    # Rows are numbered as a spreadsheet shows them: blank lines count, a quoted multi-line cell is
    # one row. csv.reader yields one item per such record, [] for a blank line.
    try:
        for line, cells in enumerate(reader, start=1):
            if line == 1:
                places, problem = header_columns(cells, columns)
                if problem:
                    problems.append((1, problem))
                    break
                continue
            if is_blank(cells):
                continue
            assert places is not None
            fields = _row_fields(cells, places)
            if isinstance(fields, str):
                problems.append((line, fields))
                continue
            row = parse_row(line, fields)
            problems.extend((line, message) for message in fields.problems)
            if row is None or fields.problems:
                continue  # a refused line is not the one a later line would duplicate
            if row.key in first_line_of:
                problems.append((line, f"duplicate of line {first_line_of[row.key]}: {' '.join(row.key)}"))
                continue
            first_line_of[row.key] = line
            rows.append(row)
    except csv.Error as exc:
        problems.append((reader.line_num, f"unreadable CSV: {exc}"))

    if places is None and not problems:
        problems.append((1, f"the file is empty: expected a header {','.join(columns)}"))
    elif not problems and not rows:
        # Importing nothing would at best do nothing and at worst (a registry) forget everyone: surely not meant.
        problems.append((1, f"the file has a header but no {nothing}"))
    if problems:
        raise error(problems)
    return rows


def _row_fields(cells: list[str], places: dict[str, int]) -> RowFields | str:
    """The row's cells by column, or what is wrong with its number of cells (trailing empty ones are ignored)."""
    width = len(places)
    if len(cells) > width and is_blank(cells[width:]):
        cells = cells[:width]
    if len(cells) != width:
        return f"expected {width} fields, found {len(cells)}"
    return RowFields({column: cells[place] for column, place in places.items()})
