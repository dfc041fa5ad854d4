"""A small chart for the contact sheet: API calls, failures and spend over the run, as the function
counted them (``figures.Moment``).

Three panels side by side, each its running total as a step line. The lines are inline SVG
stretched to the panel's width; every text is HTML beside them, so nothing is distorted at any
width and the page still needs no script.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backdrop.figures import Moment

# The drawing's own units: the SVG stretches to its panel, the stroke does not.
_WIDTH, _HEIGHT, _TOP = 300.0, 64.0, 4.0


@dataclass(frozen=True)
class _Series:
    name: str
    css: str
    value: Callable[[Moment], float]
    shown: Callable[[float], str]


_SERIES = (
    _Series("API calls", "calls", lambda moment: moment.calls, lambda total: f"{total:.0f}"),
    _Series("Failures", "failures", lambda moment: moment.failed, lambda total: f"{total:.0f}"),
    _Series("Estimated spend", "spend", lambda moment: moment.spend_usd, lambda total: f"${total:.3f}"),
)


def render_run_chart(timeline: Sequence[Moment]) -> str:
    """The chart's HTML, or nothing when the run counted nothing."""
    if not timeline:
        return ""
    start = min(moment.at for moment in timeline)
    span = max(max(moment.at for moment in timeline) - start, 1.0)
    ordered = sorted(timeline, key=lambda moment: moment.at)
    panels = "\n".join(_panel(series, ordered, start, span) for series in _SERIES)
    return f"""  <section class="chart" aria-label="The run, as the function counted it">
{panels}
  </section>"""


def _panel(series: _Series, timeline: list[Moment], start: float, span: float) -> str:
    points, total = [(0.0, 0.0)], 0.0
    for moment in timeline:
        total += series.value(moment)
        points.append((moment.at - start, total))
    points.append((span, total))
    highest = max(value for _, value in points)
    line = _step_path(points, span, highest)
    name, shown = html.escape(series.name), html.escape(series.shown(total))
    label = f"{name} over the run: {shown} in {span:.1f} s"
    return f"""    <div class="series {series.css}">
      <div class="series-head"><span>{name}</span><strong>{shown}</strong></div>
      <svg viewBox="0 0 {_WIDTH:g} {_HEIGHT:g}" preserveAspectRatio="none" role="img" aria-label="{label}">
        <path class="area" d="{line} L{_WIDTH:g},{_HEIGHT:g} L0,{_HEIGHT:g} Z"/>
        <path class="line" d="{line}" vector-effect="non-scaling-stroke"/>
      </svg>
      <div class="axis"><span>0 s</span><span>{span:.1f} s</span></div>
    </div>"""


def _step_path(points: list[tuple[float, float]], span: float, highest: float) -> str:
    """A running total only ever steps: flat until the moment it changed, then up (or down)."""

    def x(seconds: float) -> str:
        return f"{_WIDTH * seconds / span:.1f}"

    def y(value: float) -> str:
        share = value / highest if highest > 0 else 0.0
        return f"{_HEIGHT - (_HEIGHT - _TOP) * share:.1f}"

    path = [f"M{x(points[0][0])},{y(points[0][1])}"]
    for (then, before), (seconds, value) in itertools.pairwise(points):
        if seconds > then:
            path.append(f"L{x(seconds)},{y(before)}")
        if value != before:
            path.append(f"L{x(seconds)},{y(value)}")
    return " ".join(path)


CHART_CSS = """
  .chart { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 200px), 1fr));
           gap: 12px; margin-bottom: 24px; max-width: 960px; }
  .series { background: var(--paper); border: 1px solid var(--line); border-radius: 8px;
            padding: 10px 12px 8px; min-width: 0; }
  .series-head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px;
                 color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; }
  .series-head strong { color: var(--ink); font-size: 18px; letter-spacing: 0; text-transform: none;
                        font-variant-numeric: tabular-nums; }
  .series svg { display: block; width: 100%; height: 64px; margin-top: 6px; }
  .series .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
  .series .area { stroke: none; opacity: 0.14; }
  .series.calls .line { stroke: #2f6fd6; } .series.calls .area { fill: #2f6fd6; }
  .series.failures .line { stroke: var(--bad); } .series.failures .area { fill: var(--bad); }
  .series.spend .line { stroke: var(--good); } .series.spend .area { fill: var(--good); }
  .axis { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px;
          font-variant-numeric: tabular-nums; margin-top: 2px; }
"""
