"""Call windows: when a resident may be called at home — never at meal times or at night (打电话到居民住家,应避免
吃饭的时间), never on a day off. Pure functions; the outbound call is placed only `within_window` (checked where
it is placed, whatever scheduled it).

Windows are local times of the property, e.g. `09:00-11:30,13:30-17:30,19:30-20:30`; days off are weekdays
(`sat`, `sun`) and dates (`2027-02-17`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

DEFAULT_CALL_WINDOWS = "09:00-11:30,13:30-17:30,19:30-20:30"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])")
LOOK_AHEAD_DAYS = 400  # a calendar with every day off finds no window: say so instead of looping


class CallWindowError(ValueError):
    """Windows or days off that cannot be used; the message says what to write."""


@dataclass(frozen=True)
class Window:
    """A span of local time on one day, start included, end excluded."""

    start: time
    end: time

    def __str__(self) -> str:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        return f"{self.start:%H:%M}-{end}"


@dataclass(frozen=True)
class CallCalendar:
    """When calls may be placed: the day's windows, the days off, in a time zone."""

    windows: tuple[Window, ...]
    timezone: str
    weekdays_off: frozenset[int] = frozenset()  # 0 = Monday
    dates_off: frozenset[date] = frozenset()

    def is_day_off(self, day: date) -> bool:
        return day.weekday() in self.weekdays_off or day in self.dates_off

    def within_window(self, moment: datetime) -> bool:
        """Whether a call may be placed at `moment` (timezone-aware)."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        if self.is_day_off(local.date()):
            return False
        now = local.time().replace(tzinfo=None)
        return any(window.start <= now < window.end for window in self.windows)

    def window_end(self, moment: datetime) -> datetime | None:
        """The end (UTC) of the window `moment` falls in, or None when it falls in none."""
        if not self.within_window(moment):
            return None
        zone = ZoneInfo(self.timezone)
        local = moment.astimezone(zone)
        now = local.time().replace(tzinfo=None)
        window = next(window for window in self.windows if window.start <= now < window.end)
        return datetime.combine(local.date(), window.end, tzinfo=zone).astimezone(UTC)

    def why_not_now(self, moment: datetime) -> str | None:
        """None when a call may be placed at `moment`; else why not, in Chinese for the console: a day off,
        a meal time (a gap between two of the day's windows) or the night (before the first, after the last)."""
        if self.within_window(moment):
            return None
        local = moment.astimezone(ZoneInfo(self.timezone))
        if self.is_day_off(local.date()):
            return "今天是休息日,不宜打电话到居民住家"
        now = local.time().replace(tzinfo=None)
        for earlier, later in pairwise(self.windows):
            if earlier.end <= now < later.start:
                return f"现在是用餐时间({earlier.end:%H:%M}-{later.start:%H:%M}),打电话到居民住家应避免吃饭的时间"
        return "现在是休息时间,不宜打电话到居民住家"

    def next_allowed(self, moment: datetime) -> datetime:
        """`moment` if a call may be placed then, else the start of the next window (UTC)."""
        if self.within_window(moment):
            return moment.astimezone(UTC)
        zone = ZoneInfo(self.timezone)
        local = moment.astimezone(zone)
        for offset in range(LOOK_AHEAD_DAYS):
            day = local.date() + timedelta(days=offset)
            if self.is_day_off(day):
                continue
            for window in self.windows:
                start = datetime.combine(day, window.start, tzinfo=zone)
                if start > local:
                    return start.astimezone(UTC)
        raise CallWindowError(f"no call window in the next {LOOK_AHEAD_DAYS} days: every day is a day off")


def parse_windows(text: str) -> tuple[Window, ...]:
    """`09:00-11:30,13:30-17:30` → windows in order; CallWindowError for anything else."""
    windows: list[Window] = []
    for part in (piece.strip() for piece in text.split(",")):
        match = _WINDOW.fullmatch(part)
        if not match:
            raise CallWindowError(f"call window {part!r} is not HH:MM-HH:MM, e.g. 09:00-11:30")
        start = time(int(match[1]), int(match[2]))
        end = time.max if match[3] == "24" else time(int(match[3]), int(match[4]))
        if (match[3] == "24" and match[4] != "00") or end <= start:
            raise CallWindowError(f"call window {part!r} must end after it starts, on the same day")
        windows.append(Window(start, end))
    windows.sort(key=lambda window: window.start)
    for earlier, later in pairwise(windows):
        if later.start < earlier.end:
            raise CallWindowError(f"call windows {earlier} and {later} overlap")
    return tuple(windows)


def parse_days_off(text: str) -> tuple[frozenset[int], frozenset[date]]:
    """`sat,sun,2027-02-17` → (weekdays, dates); CallWindowError for anything else."""
    weekdays: set[int] = set()
    dates: set[date] = set()
    for part in (piece.strip().lower() for piece in text.split(",") if piece.strip()):
        if part[:3] in WEEKDAYS and part in (part[:3], _long_weekday(part[:3])):
            weekdays.add(WEEKDAYS.index(part[:3]))
            continue
        try:
            dates.add(date.fromisoformat(part))
        except ValueError:
            problem = f"day off {part!r} is neither a weekday (mon … sun) nor a date (2027-02-17)"
            raise CallWindowError(problem) from None
    return frozenset(weekdays), frozenset(dates)


def _long_weekday(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[short]


def call_calendar(windows: str, days_off: str, timezone: str) -> CallCalendar:
    """A calendar from the settings' (or a property's) text."""
    weekdays, dates = parse_days_off(days_off)
    return CallCalendar(parse_windows(windows), timezone, weekdays, dates)
