"""Rooms (房号) as callers key them (`3*2*501#`) and as staff read them (`3-2-501`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivr.spoken import count_spoken, digits_spoken

_KEYED = re.compile(r"^(\d{1,3})\*(\d{1,2})\*(\d{1,5})#?$")
_STORED = re.compile(r"^(\d{1,3})-(\d{1,2})-(\d{1,5})$")


@dataclass(frozen=True)
class Room:
    """楼栋, 单元 and 房号 of a flat."""

    building: int
    unit: int
    number: str  # kept as keyed: '0501' and '501' are different doors in some estates

    @property
    def code(self) -> str:
        """The stored form, `楼栋-单元-房号`, e.g. `3-2-501`."""
        return f"{self.building}-{self.unit}-{self.number}"

    @property
    def spoken(self) -> str:
        """How the line reads it back: `3栋2单元501室` as 三栋二单元五零一室."""
        return f"{count_spoken(self.building)}栋{count_spoken(self.unit)}单元{digits_spoken(self.number)}室"

    @property
    def written(self) -> str:
        return f"{self.building}栋{self.unit}单元{self.number}室"


def parse_keyed_room(digits: str) -> Room | None:
    """A room from keypad input like `3*2*501#`; None when it is not that shape or has zeros."""
    match = _KEYED.match(digits.strip())
    if not match:
        return None
    building, unit, number = int(match[1]), int(match[2]), match[3]
    if building == 0 or unit == 0 or int(number) == 0:
        return None
    return Room(building, unit, number)


def parse_room_code(code: str) -> Room | None:
    """A room from its stored form `3-2-501`."""
    match = _STORED.match(code.strip())
    return Room(int(match[1]), int(match[2]), match[3]) if match else None
