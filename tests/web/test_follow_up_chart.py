"""The geometry of the 回访 page's weekly chart: bars scaled to a count axis of whole steps, markers on 0–5."""

from __future__ import annotations

import pytest

from ivr.followup.report import FollowUpTally
from ivr.web.charts import count_step, follow_up_chart


@pytest.mark.parametrize(
    ("largest", "step"), [(0, 1), (4, 1), (5, 2), (8, 2), (9, 5), (20, 5), (21, 10), (200, 50), (201, 100)]
)
def test_the_count_axis_has_at_most_four_whole_steps(largest, step):
    assert count_step(largest) == step


def test_bars_are_scaled_to_the_axis_and_a_week_without_a_score_has_no_marker():
    busy = FollowUpTally(due=10, done=5, unreachable=2, scores=2, score_total=8)  # follow-up calls: 4.0
    quiet = FollowUpTally(call_scores=2, call_score_total=5)  # inbound calls only: 2.5
    chart = follow_up_chart([("2026-W48", busy), ("2026-W49", quiet)])

    # 640 x 240: the plot from x 40 to 600, y 28 (the top: 10, two steps of 5) to 204 (zero), 176 high.
    assert (chart.left, chart.right, chart.top, chart.baseline, chart.axis_title_y) == (40, 600, 28, 204, 16)
    assert chart.count_ticks == [(204.0, 0), (116.0, 5), (28.0, 10)]
    assert chart.score_ticks == [(168.8, 1), (133.6, 2), (98.4, 3), (63.2, 4), (28.0, 5)]
    first, second = chart.weeks
    assert (first.week, first.x, second.week, second.x) == ("2026-W48", 180.0, "2026-W49", 460.0)
    assert [(bar.css, bar.label, bar.value, bar.height, bar.y) for bar in first.bars] == [
        ("due", "应回访", 10, 176.0, 28.0),
        ("done", "已回访", 5, 88.0, 116.0),
        ("unreachable", "未接通", 2, 35.2, 168.8),
    ]
    assert [(bar.x, bar.width) for bar in first.bars] == [(79.2, 67.2), (146.4, 67.2), (213.6, 67.2)]
    assert [bar.height for bar in second.bars] == [0.0, 0.0, 0.0]
    follow_ups, inbound = chart.lines
    assert (follow_ups.label, [(m.x, m.y, m.value) for m in follow_ups.markers]) == ("回访满意度", [(180.0, 63.2, 4.0)])
    assert (inbound.label, inbound.points) == ("来电满意度", "460.0,116.0")
    assert chart.legend == [
        ("due", "应回访"),
        ("done", "已回访"),
        ("unreachable", "未接通"),
        ("follow-up", "回访满意度"),
        ("inbound", "来电满意度"),
    ]


def test_weeks_with_nothing_still_have_an_axis():
    chart = follow_up_chart([("2026-W49", FollowUpTally())])
    assert chart.count_ticks == [(204.0, 0), (28.0, 1)]
    assert [bar.height for bar in chart.weeks[0].bars] == [0.0, 0.0, 0.0]
    assert [line.markers for line in chart.lines] == [[], []]


def test_the_axis_top_is_a_whole_step_above_the_largest_figure():
    chart = follow_up_chart([("2026-W49", FollowUpTally(due=7, done=3))])  # steps of 2, up to 8
    assert [count for _, count in chart.count_ticks] == [0, 2, 4, 6, 8]
    assert [bar.height for bar in chart.weeks[0].bars] == [154.0, 66.0, 0.0]  # 7/8 and 3/8 of 176
