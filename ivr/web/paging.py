"""Pages of a long list (the queue, search results, the audit): which rows of how many, and the neighbouring
pages. A count is exact, or — where counting every match would cost more than showing the page — capped: then
the page says so (超过 N 条) and offers the next page. Nothing is ever cut off without a word."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

PAGE_SIZE = 50
COUNT_STEP = 1000  # a capped count goes as far as the first multiple of this that covers the page shown

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page:
    """One page: rows `first`–`last` of `total` (of more than `total` when `more`), and the links either side."""

    number: int
    shown: int  # rows on this page
    total: int
    more: bool  # counting stopped at `total`: there are more
    previous_url: str | None
    next_url: str | None
    size: int = PAGE_SIZE

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when nothing matches)."""
        return (self.number - 1) * self.size + 1 if self.shown else 0

    @property
    def last(self) -> int:
        return self.first + self.shown - 1 if self.shown else 0

    @property
    def pages(self) -> int:
        """How many pages (as far as counted when `more`)."""
        return last_page(self.total, self.size)

    @property
    def summary(self) -> str:
        """What the page says about itself: 显示第 1–50 条,共 120 条 (or 超过 1000 条, or 共 0 条)."""
        if not self.shown:
            return "共 0 条"
        counted = f"超过 {self.total} 条" if self.more else f"共 {self.total} 条"
        return f"显示第 {self.first}–{self.last} 条,{counted}"


def requested_page(raw: str | None) -> int:
    """The page asked for (`?page=`, from 1); anything else is the first."""
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


def last_page(total: int, size: int = PAGE_SIZE) -> int:
    """The last page of `total` rows (1 when there are none)."""
    return max(1, -(-total // size))


def offset(number: int, size: int = PAGE_SIZE) -> int:
    """How many rows come before page `number`."""
    return (number - 1) * size


def count_cap(number: int, size: int = PAGE_SIZE) -> int:
    """How far a capped count goes for page `number`: pages 1–20 count to 1,000, pages 21–40 to 2,000, …"""
    return -(-(number * size) // COUNT_STEP) * COUNT_STEP


def page(number: int, shown: int, total: int, url: Callable[[int], str], *, more: bool = False) -> Page:
    """Page `number` (already within `last_page(total)`), showing `shown` of `total` rows (at least `total` when
    `more`); `url(n)` links page n."""
    has_next = more or number * PAGE_SIZE < total
    return Page(
        number=number,
        shown=shown,
        total=total,
        more=more,
        previous_url=url(number - 1) if number > 1 else None,
        next_url=url(number + 1) if has_next else None,
    )


def page_of_found(
    found: Sequence[Row], requested: int, cap: int, url: Callable[[int], str]
) -> tuple[Page, Sequence[Row]]:
    """The page asked for out of `found`, the first `cap` + 1 matches in order (`count_cap(requested)`): counted
    exactly up to the cap, as 超过 `cap` past it. A page past the last shows the last."""
    more = len(found) > cap
    total = cap if more else len(found)
    number = min(requested, last_page(total))
    rows = found[offset(number) : offset(number) + PAGE_SIZE]
    return page(number, len(rows), total, url, more=more), rows
