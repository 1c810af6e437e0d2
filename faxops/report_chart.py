"""The HTML report's chart: deliveries per time bin and in total, as an inline SVG (no script, no library)."""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

# Bin widths in hours, tried in order until the campaign's span fits in _MAX_BINS bars.
_BIN_HOURS = (1, 2, 3, 6, 12, 24, 48, 168)
_MAX_BINS = 72
esc = html.escape


def _nice_step(peak: float, ticks: int = 4) -> float:
    raw = max(peak, 1) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


@dataclass(frozen=True)
class _Frame:
    """The chart's geometry: where the plot area is and how counts and bins map onto it."""

    start: datetime  # the left edge of the first slot
    bin_hours: int
    slots: int
    pad_bins: int  # empty slots each side, so that a single bin is not the whole width
    y_max: float
    step: float
    width: int = 900
    height: int = 320
    left: int = 64
    right: int = 80
    top: int = 24
    bottom: int = 64

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def base_y(self) -> float:
        return self.top + self.plot_h

    @property
    def slot_w(self) -> float:
        return self.plot_w / self.slots


def chart(per_hour: Counter[str], zone: tzinfo) -> str:
    """Deliveries per time bin (bars, left axis) and in total (line, right axis), as an inline SVG.

    Bins widen with the campaign's span (1 hour up to a week) so the chart stays readable with one
    delivery or a hundred thousand over months; a single bin gets empty neighbours for context.
    """
    if not per_hour:
        return '<p class="muted">No deliveries recorded yet.</p>'
    counts = {datetime.fromisoformat(h.replace("Z", "+00:00")): n for h, n in per_hour.items()}
    first = min(counts)
    span_hours = (max(counts) - first).total_seconds() / 3600 + 1
    # Past 72 weeks the bins grow by whole weeks, so that the number of bars stays bounded.
    bin_hours = next((b for b in _BIN_HOURS if span_hours / b <= _MAX_BINS), 168 * math.ceil(span_hours / 168 / 72))
    bins: Counter[int] = Counter()
    for moment, n in counts.items():
        bins[int((moment - first).total_seconds() // 3600) // bin_hours] += n
    pad_bins = 1 if max(bins) < 2 else 0
    peak = max(bins.values())
    step = _nice_step(peak)
    frame = _Frame(
        start=first - timedelta(hours=bin_hours * pad_bins),
        bin_hours=bin_hours,
        slots=max(bins) + 1 + 2 * pad_bins,
        pad_bins=pad_bins,
        y_max=step * math.ceil(peak / step),
        step=step,
    )
    parts = _value_axes(frame, sum(bins.values())) + _bars_and_line(frame, bins, zone) + _time_axis(frame, zone)
    zone_name = first.astimezone(zone).tzname()
    parts.append(
        f'<text x="{frame.left + frame.plot_w / 2:.0f}" y="{frame.height - 12}" text-anchor="middle">'
        f"time ({esc(str(zone_name))})</text>"
    )
    return (
        f'<svg role="img" aria-label="Deliveries over time" viewBox="0 0 {frame.width} {frame.height}" '
        f'font-size="12" style="max-width:{frame.width}px;width:100%">{"".join(parts)}</svg>'
    )


def _value_axes(f: _Frame, total: int) -> list[str]:
    """Left axis: deliveries per bin, with gridlines; right axis: deliveries in all."""
    parts: list[str] = []
    tick = 0.0
    while tick <= f.y_max + 1e-9:  # the epsilon keeps the top tick despite float steps such as 2.5
        y = f.base_y - tick / f.y_max * f.plot_h
        parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.left + f.plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{f.left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:,.0f}</text>')
        tick += f.step
    per = {1: "hour", 24: "day", 168: "week"}.get(f.bin_hours, f"{f.bin_hours} hours")
    parts.append(
        f'<text transform="translate(16 {f.top + f.plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"delivered per {per} (bars)</text>"
    )
    for fraction in (0, 0.5, 1):
        y = f.base_y - fraction * f.plot_h
        parts.append(f'<text x="{f.left + f.plot_w + 8}" y="{y + 4:.1f}" fill="#2e7d32">{total * fraction:,.0f}</text>')
    parts.append(
        f'<text transform="translate({f.width - 14} {f.top + f.plot_h / 2:.0f}) rotate(90)" text-anchor="middle" '
        f'fill="#2e7d32">delivered in all (line)</text>'
    )
    return parts


def _bars_and_line(f: _Frame, bins: Counter[int], zone: tzinfo) -> list[str]:
    """A bar per bin (with its count as a tooltip) and the cumulative line over the bins."""
    parts: list[str] = []
    total = sum(bins.values())
    running, points = 0, []
    for i in range(f.slots):
        n = bins.get(i - f.pad_bins, 0)
        x = f.left + i * f.slot_w
        if n:
            bar = n / f.y_max * f.plot_h
            when = f.start + timedelta(hours=f.bin_hours * i)
            parts.append(
                f'<rect x="{x + f.slot_w * 0.1:.1f}" y="{f.base_y - bar:.1f}" width="{max(1.0, f.slot_w * 0.8):.1f}" '
                f'height="{bar:.1f}" fill="#a5d6a7"><title>{esc(_tick_label(when, zone, f.bin_hours))}: '
                f"{n:,} delivered</title></rect>"
            )
        # The line covers the real bins only: the padding slots have no deliveries to add up.
        if 0 <= i - f.pad_bins <= max(bins):
            running += n
            points.append((x + f.slot_w / 2, f.base_y - running / total * f.plot_h))
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2e7d32" stroke-width="2"/>')
    if len(points) <= 60:  # beyond that the dots merge into a thick line
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2e7d32"/>' for x, y in points)
    return parts


def _time_axis(f: _Frame, zone: tzinfo) -> list[str]:
    """A labelled tick every few bins, in the campaign's time zone."""
    parts = [f'<line x1="{f.left}" y1="{f.base_y}" x2="{f.left + f.plot_w}" y2="{f.base_y}" stroke="#999"/>']
    every = max(1, math.ceil(f.slots / 6))
    for i in range(0, f.slots + 1, every):
        x = f.left + i * f.slot_w
        when = f.start + timedelta(hours=f.bin_hours * i)
        parts.append(f'<line x1="{x:.1f}" y1="{f.base_y}" x2="{x:.1f}" y2="{f.base_y + 5}" stroke="#999"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{f.base_y + 20}" text-anchor="middle">{esc(_tick_label(when, zone))}</text>'
        )
    return parts


def _tick_label(moment: datetime, zone: tzinfo, bin_hours: int = 1) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %d %b}" if bin_hours >= 24 else f"{local:%d %b %H:%M}"


# --- the page --------------------------------------------------------------------------------------------
