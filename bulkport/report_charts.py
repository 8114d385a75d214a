"""Inline SVG charts for the HTML report (:mod:`bulkport.report_html`): drawn here, in
Python, so the page needs no script and opens offline.

Every label goes through :func:`esc`; sizes are in the SVG's own units (the page scales it
to its width).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 1100
FINISHED_COLOUR, FINISHED_FILL = "#2563eb", "#bfdbfe"
FAILED_COLOUR, FAILED_FILL = "#dc2626", "#fecaca"
BYTES_COLOUR, BYTES_FILL = "#0f766e", "#99f6e4"
RETRY_COLOUR = "#d97706"
P50_COLOUR, P95_COLOUR, MAX_COLOUR = "#7c3aed", "#c4b5fd", "#1f2937"
_GRID, _AXIS = "#e5e7eb", "#9ca3af"
_TIME_STEPS = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
               7200, 14400, 28800, 86400)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def nice_scale(peak: float, ticks: int = 4) -> tuple[float, float]:
    """``(top, step)``: an axis from 0 to ``top`` >= ``peak`` in round steps."""
    if peak <= 0:
        return 1.0, 0.25
    raw = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.ceil(peak / step - 1e-9) * step, step


def short_number(value: float) -> str:
    """An axis label: 1200 → 1.2k."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def elapsed_label(seconds: float, end: float) -> str:
    """A time axis label, in the unit the run's length calls for."""
    if end <= 120:
        return f"{seconds:g} s"
    if end <= 7200:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}"


def elapsed_unit(end: float) -> str:
    return "seconds" if end <= 120 else ("min:s" if end <= 7200 else "h:min")


def _time_step(end: float) -> float:
    return next((float(s) for s in _TIME_STEPS if end / s <= 8), end / 8)


@dataclass(frozen=True)
class Series:
    """One step line of a time chart: a value per bucket (already a rate)."""

    name: str
    rates: Sequence[float]
    stroke: str
    fill: str


@dataclass(frozen=True)
class Frame:
    """Where the plot area is inside the SVG, and how values map onto it."""

    left: float
    top: float
    width: float
    height: float
    x_end: float
    y_top: float

    def x(self, value: float) -> float:
        return self.left + self.width * value / self.x_end

    def y(self, value: float) -> float:
        return self.top + self.height * (1 - value / self.y_top)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _step_path(frame: Frame, edges: Sequence[float], rates: Sequence[float]) -> tuple[str, str]:
    """The outline (``d`` of the line) and the area under it, as step shapes over buckets."""
    line = []
    for i, rate in enumerate(rates):
        y = _f(frame.y(rate))
        line.append(f"{'M' if i == 0 else 'L'}{_f(frame.x(edges[i]))},{y}")
        line.append(f"L{_f(frame.x(edges[i + 1]))},{y}")
    base = _f(frame.y(0))
    outline = "".join(line)
    area = (f"M{_f(frame.x(edges[0]))},{base}L" + outline[1:]
            + f"L{_f(frame.x(edges[-1]))},{base}Z")
    return outline, area


def _axes(frame: Frame, y_step: float, y_label: str, x_label: str,
          y_format: Callable[[float], str]) -> list[str]:
    parts = []
    ticks = round(frame.y_top / y_step)
    for i in range(ticks + 1):
        value = i * y_step
        y = _f(frame.y(value))
        parts.append(f'<line x1="{_f(frame.left)}" x2="{_f(frame.left + frame.width)}" '
                     f'y1="{y}" y2="{y}" stroke="{_GRID}"/>')
        parts.append(f'<text x="{_f(frame.left - 8)}" y="{y}" text-anchor="end" '
                     f'dominant-baseline="middle">{esc(y_format(value))}</text>')
    step = _time_step(frame.x_end)
    t = 0.0
    base = frame.top + frame.height
    while t <= frame.x_end + 1e-9:
        x = _f(frame.x(t))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{_f(base)}" y2="{_f(base + 5)}" '
                     f'stroke="{_AXIS}"/>')
        parts.append(f'<text x="{x}" y="{_f(base + 18)}" text-anchor="middle">'
                     f'{esc(elapsed_label(round(t, 3), frame.x_end))}</text>')
        t += step
    parts.append(f'<line x1="{_f(frame.left)}" x2="{_f(frame.left + frame.width)}" '
                 f'y1="{_f(base)}" y2="{_f(base)}" stroke="{_AXIS}"/>')
    middle = _f(frame.top + frame.height / 2)
    parts.append(f'<text class="axis-title" x="14" y="{middle}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {middle})">{esc(y_label)}</text>')
    parts.append(f'<text class="axis-title" x="{_f(frame.left + frame.width / 2)}" '
                 f'y="{_f(base + 36)}" text-anchor="middle">{esc(x_label)}</text>')
    return parts


def time_chart(chart_id: str, edges: Sequence[float], series: Sequence[Series], *,
               y_label: str, y_format: Callable[[float], str] = short_number,
               height: int = 260) -> str:
    """Step areas of ``series`` (rates per bucket, bucket ``i`` from ``edges[i]`` to
    ``edges[i + 1]`` seconds), drawn in order, on one scale."""
    peak = max((max(s.rates, default=0.0) for s in series), default=0.0)
    y_top, y_step = nice_scale(peak)
    frame = Frame(left=84, top=12, width=WIDTH - 84 - 28, height=height - 12 - 48,
                  x_end=edges[-1] or 1.0, y_top=y_top)
    parts = [f'<svg id="{esc(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {height}" '
             f'role="img" aria-label="{esc(y_label)} over time">']
    parts += _axes(frame, y_step, y_label, f"elapsed time ({elapsed_unit(frame.x_end)})",
                   y_format)
    for s in series:
        outline, area = _step_path(frame, edges, s.rates)
        parts.append(f'<path class="area" data-series="{esc(s.name)}" d="{area}" '
                     f'fill="{s.fill}"/>')
        parts.append(f'<path class="line" d="{outline}" fill="none" stroke="{s.stroke}" '
                     'stroke-width="2" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class HostBar:
    """One host's row in :func:`host_chart`."""

    host: str
    requests: int
    retries: int
    p50: float | None  # ms; None when no attempt was answered
    p95: float | None
    max: float | None


def _label(host: str, limit: int = 34) -> str:
    return host if len(host) <= limit else host[:limit - 1] + "…"


def _log_ms(value: float, low: float, high: float) -> float:
    """Where ``value`` ms sits between the decades ``low`` and ``high`` (0..1)."""
    return (math.log10(max(value, 10 ** low)) - low) / (high - low)


def _ms_label(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def host_chart(chart_id: str, hosts: Sequence[HostBar]) -> str:
    """Two panels, a row per host: requests (the retried part in another colour) and
    latency (p50 and p95 bars, the max as a tick) on a log scale."""
    row, top, label_w = 30, 34, 250
    gap = 70
    panel = (WIDTH - label_w - gap - 30) / 2  # room on the right for the last axis label
    height = top + row * len(hosts) + 34
    most = max((h.requests for h in hosts), default=0)
    req_top, req_step = nice_scale(float(most))
    answered = [h for h in hosts if h.max is not None]
    # Decades around the values, the lowest p50 well inside (its bar must show).
    low = math.floor(math.log10(max(0.1, min((h.p50 or 1.0) for h in answered) / 3))) \
        if answered else 0
    high = max(low + 1, math.ceil(math.log10(max((h.max or 1.0) for h in answered)))) \
        if answered else 3
    left2 = label_w + panel + gap
    parts = [f'<svg id="{esc(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {height}" '
             'role="img" aria-label="requests and latency per host">',
             f'<text class="axis-title" x="{label_w}" y="14">requests '
             f'(<tspan fill="{RETRY_COLOUR}">retried</tspan>)</text>',
             f'<text class="axis-title" x="{_f(left2)}" y="14">latency until the reply: '
             f'<tspan fill="{P50_COLOUR}">p50</tspan>, p95, max (log scale)</text>']
    base = top + row * len(hosts)
    for i in range(round(req_top / req_step) + 1):
        x = _f(label_w + panel * i * req_step / req_top)
        parts.append(f'<line x1="{x}" x2="{x}" y1="{top - 6}" y2="{base}" stroke="{_GRID}"/>'
                     f'<text x="{x}" y="{base + 16}" text-anchor="middle">'
                     f'{esc(short_number(i * req_step))}</text>')
    for decade in range(low, high + 1):
        x = _f(left2 + panel * (decade - low) / (high - low))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{top - 6}" y2="{base}" stroke="{_GRID}"/>'
                     f'<text x="{x}" y="{base + 16}" text-anchor="middle">'
                     f'{esc(_ms_label(10.0 ** decade))}</text>')
    for i, h in enumerate(hosts):
        y = top + row * i
        parts.append(f'<g class="host" data-host="{esc(h.host)}">'
                     f'<text x="{label_w - 10}" y="{y + row / 2 - 3}" text-anchor="end" '
                     f'dominant-baseline="middle"><title>{esc(h.host)}</title>'
                     f'{esc(_label(h.host))}</text>')
        width = panel * h.requests / req_top
        retried = panel * min(h.retries, h.requests) / req_top
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{_f(width)}" height="{row - 14}" '
                     f'fill="{FINISHED_COLOUR}"/>')
        if retried:
            parts.append(f'<rect x="{_f(label_w + width - retried)}" y="{y + 4}" '
                         f'width="{_f(max(retried, 1.5))}" height="{row - 14}" '
                         f'fill="{RETRY_COLOUR}"/>')
        if h.p50 is not None and h.p95 is not None and h.max is not None:
            p50, p95, peak = (left2 + panel * _log_ms(v, low, high)
                              for v in (h.p50, h.p95, h.max))
            parts.append(f'<rect x="{_f(left2)}" y="{y + 4}" width="{_f(p95 - left2)}" '
                         f'height="{row - 14}" fill="{P95_COLOUR}"/>'
                         f'<rect x="{_f(left2)}" y="{y + 4}" width="{_f(p50 - left2)}" '
                         f'height="{row - 14}" fill="{P50_COLOUR}"/>'
                         f'<line x1="{_f(peak)}" x2="{_f(peak)}" y1="{y + 1}" y2="{y + row - 7}" '
                         f'stroke="{MAX_COLOUR}" stroke-width="2"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
