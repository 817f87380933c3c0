"""The geometry of the console's weekly follow-up chart (回访周报): bars of due, done and unreachable per week
and the two average satisfactions as lines. The page draws it as inline SVG from these numbers: the console
runs offline and its CSP allows no inline script, and numbers computed here are tested here, not in a template."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ivr.followup.report import FollowUpTally

# Each bar of a week: its CSS class, its label, its figure.
BAR_SERIES: tuple[tuple[str, str, Callable[[FollowUpTally], int]], ...] = (
    ("due", "应回访", lambda tally: tally.due),
    ("done", "已回访", lambda tally: tally.done),
    ("unreachable", "未接通", lambda tally: tally.unreachable),
)
# Each line: its CSS class, its label, its figure (None: no score that week, no marker).
SCORE_SERIES: tuple[tuple[str, str, Callable[[FollowUpTally], float | None]], ...] = (
    ("follow-up", "回访满意度", lambda tally: tally.average_satisfaction),
    ("inbound", "来电满意度", lambda tally: tally.average_call_satisfaction),
)
TOP_SCORE = 5  # the keypad's best
MAX_TICKS = 4  # count axis: at most this many steps above zero


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    css: str
    label: str


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    value: float


@dataclass(frozen=True)
class ScoreLine:
    css: str
    label: str
    markers: list[Marker]

    @property
    def points(self) -> str:
        """The polyline's points (the weeks with a score, joined across weeks without one)."""
        return " ".join(f"{marker.x},{marker.y}" for marker in self.markers)


@dataclass(frozen=True)
class WeekBars:
    week: str
    x: float  # the middle of the week's bars: its label and its markers
    bars: list[Bar]


@dataclass(frozen=True)
class FollowUpChart:
    width: int
    height: int
    left: int  # the plot's edges: counts are labelled left of `left`, scores right of `right`
    right: int
    top: int
    baseline: int  # y of zero
    count_ticks: list[tuple[float, int]]  # y, count
    score_ticks: list[tuple[float, int]]  # y, score
    weeks: list[WeekBars]
    lines: list[ScoreLine]

    @property
    def axis_title_y(self) -> int:
        """Where the axes' titles (工单数 left, 满意度 right) sit: above the plot, at its outer edges."""
        return self.top - 12

    @property
    def legend(self) -> list[tuple[str, str]]:
        """Each bar and line: its CSS class (its colour) and label."""
        return [(css, label) for css, label, _ in BAR_SERIES] + [(line.css, line.label) for line in self.lines]


def count_step(largest: int) -> int:
    """The count axis's step: 1, 2 or 5 times a power of ten, the smallest with at most MAX_TICKS steps up to
    `largest`, so the ticks are whole and few."""
    step, factors = 1, (1, 2, 5)
    while True:
        for factor in factors:
            if largest <= step * factor * MAX_TICKS:
                return step * factor
        step *= 10


def follow_up_chart(weeks: Sequence[tuple[str, FollowUpTally]], width: int = 640, height: int = 240) -> FollowUpChart:
    """Coordinates (SVG user units, one decimal) for the weeks in order: three bars a week, scaled to the count
    axis (0 to a whole number of steps above the largest figure), and a marker per average on the 0–5 axis."""
    left, right_margin, top, bottom = 40, 40, 28, 36  # room for the axes' labels and titles
    right, baseline = width - right_margin, height - bottom
    plot_w, plot_h = right - left, baseline - top
    largest = max((figure(tally) for _, tally in weeks for _, _, figure in BAR_SERIES), default=0)
    step = count_step(largest)
    ceiling = step * max(-(-largest // step), 1)
    slot = plot_w / max(len(weeks), 1)
    bar_w = slot * 0.72 / len(BAR_SERIES)

    def y_of_count(count: int) -> float:
        return round(baseline - count / ceiling * plot_h, 1)

    def y_of_score(score: float) -> float:
        return round(baseline - score / TOP_SCORE * plot_h, 1)

    columns = []
    for index, (week, tally) in enumerate(weeks):
        first_x = left + index * slot + (slot - bar_w * len(BAR_SERIES)) / 2
        bars = [
            Bar(
                round(first_x + n * bar_w, 1),
                y_of_count(figure(tally)),
                round(bar_w, 1),
                round(figure(tally) / ceiling * plot_h, 1),
                figure(tally),
                css,
                label,
            )
            for n, (css, label, figure) in enumerate(BAR_SERIES)
        ]
        columns.append(WeekBars(week, round(left + (index + 0.5) * slot, 1), bars))
    lines = [
        ScoreLine(
            css,
            label,
            [
                Marker(column.x, y_of_score(score), score)
                for column, (_, tally) in zip(columns, weeks, strict=True)
                if (score := figure(tally)) is not None
            ],
        )
        for css, label, figure in SCORE_SERIES
    ]
    return FollowUpChart(
        width,
        height,
        left,
        right,
        top,
        baseline,
        [(y_of_count(count), count) for count in range(0, ceiling + 1, step)],
        [(y_of_score(score), score) for score in range(1, TOP_SCORE + 1)],
        columns,
        lines,
    )
