"""Call windows: a resident is never called at meal times, at night or on a day off."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.followup.windows import DEFAULT_CALL_WINDOWS, CallWindowError, call_calendar, parse_days_off, parse_windows

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture
def calendar():
    return call_calendar(DEFAULT_CALL_WINDOWS, "sun,2026-12-25", "Asia/Shanghai")


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        ("2026-12-01 10:00", None),
        ("2026-12-01 11:30", "现在是用餐时间(11:30-13:30),打电话到居民住家应避免吃饭的时间"),
        ("2026-12-01 18:00", "现在是用餐时间(17:30-19:30),打电话到居民住家应避免吃饭的时间"),
        ("2026-12-01 07:00", "现在是休息时间,不宜打电话到居民住家"),
        ("2026-12-01 22:00", "现在是休息时间,不宜打电话到居民住家"),
        ("2026-12-06 10:00", "今天是休息日,不宜打电话到居民住家"),
    ],
)
def test_why_a_resident_should_not_be_called_now(calendar, moment, why):
    """What the console's call-back button warns (meal times, night, days off)."""
    assert calendar.why_not_now(local(moment)) == why


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        ("2026-12-01 08:59", False),  # before the morning
        ("2026-12-01 09:00", True),
        ("2026-12-01 11:29", True),
        ("2026-12-01 11:30", False),  # lunch
        ("2026-12-01 12:00", False),
        ("2026-12-01 13:30", True),
        ("2026-12-01 17:30", False),  # dinner
        ("2026-12-01 19:30", True),
        ("2026-12-01 20:30", False),  # night
        ("2026-12-06 10:00", False),  # a Sunday
        ("2026-12-25 10:00", False),  # a date off
    ],
)
def test_calls_only_within_windows(calendar, moment, allowed):
    assert calendar.within_window(local(moment)) is allowed


@pytest.mark.parametrize(
    ("due", "placed"),
    [
        ("2026-12-01 12:00", "2026-12-01 13:30"),  # due at lunch: after it
        ("2026-12-01 10:15", "2026-12-01 10:15"),  # inside a window: at once
        ("2026-12-01 18:00", "2026-12-01 19:30"),
        ("2026-12-01 21:00", "2026-12-02 09:00"),  # night: next morning
        ("2026-12-05 21:00", "2026-12-07 09:00"),  # Saturday night: Sunday is off
        ("2026-12-24 21:00", "2026-12-26 09:00"),  # the 25th is off
    ],
)
def test_next_allowed_moment(calendar, due, placed):
    assert calendar.next_allowed(local(due)) == local(placed).astimezone(UTC)


def test_the_property_time_zone_decides():
    urumqi = call_calendar(DEFAULT_CALL_WINDOWS, "", "Asia/Urumqi")  # two hours behind Shanghai
    assert not urumqi.within_window(local("2026-12-01 09:30"))  # 07:30 there
    assert urumqi.within_window(local("2026-12-01 11:30"))  # 09:30 there


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("9:00-11:30", "is not HH:MM-HH:MM"),
        ("11:30-09:00", "must end after it starts"),
        ("09:00-12:00,11:00-13:00", "overlap"),
        ("09:00-11:30,", "is not HH:MM-HH:MM"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(text, problem):
    with pytest.raises(CallWindowError, match=problem):
        parse_windows(text)


def test_days_off_take_weekdays_and_dates():
    assert parse_days_off("sat, Sunday,2027-02-17") == (frozenset({5, 6}), frozenset({date(2027, 2, 17)}))
    with pytest.raises(CallWindowError, match="neither a weekday"):
        parse_days_off("holiday")


def test_a_calendar_with_no_working_day_says_so():
    never = call_calendar(DEFAULT_CALL_WINDOWS, "mon,tue,wed,thu,fri,sat,sun", "Asia/Shanghai")
    with pytest.raises(CallWindowError, match="every day is a day off"):
        never.next_allowed(local("2026-12-01 10:00"))


def test_the_settings_refuse_windows_that_cannot_be_used(settings_environ):
    from ivr.config import ConfigError, load_settings

    assert load_settings(settings_environ).call_windows == DEFAULT_CALL_WINDOWS
    with pytest.raises(ConfigError, match=r"IVR_CALL_WINDOWS / IVR_CALL_DAYS_OFF: .* overlap"):
        load_settings({**settings_environ, "IVR_CALL_WINDOWS": "09:00-12:00,11:00-13:00"})
    with pytest.raises(ConfigError, match="neither a weekday"):
        load_settings({**settings_environ, "IVR_CALL_DAYS_OFF": "someday"})


def test_the_follow_up_delay_is_whole_minutes_up_to_a_week(settings_environ):
    from ivr.config import ConfigError, load_settings

    assert load_settings(settings_environ).follow_up_delay_minutes == 0
    assert load_settings({**settings_environ, "IVR_FOLLOW_UP_DELAY_MINUTES": "1440"}).follow_up_delay_minutes == 1440
    for bad in ("-5", "1.5", "10081", "a day"):
        with pytest.raises(ConfigError, match="IVR_FOLLOW_UP_DELAY_MINUTES must be a whole number"):
            load_settings({**settings_environ, "IVR_FOLLOW_UP_DELAY_MINUTES": bad})
