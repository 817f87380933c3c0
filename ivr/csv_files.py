"""What the finance office's and the registry's spreadsheets (CSV) have in common: their text in UTF-8 or
GBK, blank rows, a header naming its columns in any order, full-width characters typed with a Chinese IME."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

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
