"""The overview's pictures: inline SVG drawn on the server, no JavaScript.

Each function returns :class:`markupsafe.Markup` built only from numbers it formats
itself and text it escapes, so a provider's name can never become markup. Colours are
SVG presentation attributes (the Content-Security-Policy forbids inline styles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 180
_LEFT, _BOTTOM, _TOP = 48, 22, 8
PALETTE = {
    "accepted": "#2e7d32",
    "spooled": "#7cb342",
    "duplicate": "#1e88e5",
    "dead_lettered": "#e53935",
    "rejected": "#fb8c00",
    "unavailable": "#8e24aa",
    "error": "#424242",
    "p50": "#1e88e5",
    "p99": "#e53935",
    "spool": "#8e24aa",
}
_OTHER = ("#00897b", "#6d4c41", "#5e35b1", "#c0ca33", "#546e7a")


def colour(name: str, index: int = 0) -> str:
    return PALETTE.get(name, _OTHER[index % len(_OTHER)])


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    while step > value:
        step /= 10
    top = step
    while top < value:
        top += step
    return top


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _frame(top: float, labels: Sequence[str], unit: str) -> list[str]:
    plot_h = HEIGHT - _BOTTOM - _TOP
    parts = [
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{WIDTH}" y2="{_TOP + plot_h}" '
        'stroke="#999" stroke-width="1"/>',
    ]
    for step in (0.5, 1.0):
        y = _TOP + plot_h * (1 - step)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" stroke="#ddd" '
            'stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
            f"{escape(_number(top * step))}{escape(unit)}</text>"
        )
    if labels:
        plot_w = WIDTH - _LEFT
        for index in sorted({0, len(labels) // 2, len(labels) - 1}):
            x = _LEFT + plot_w * (index + 0.5) / len(labels)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10">'
                f"{escape(labels[index])}</text>"
            )
    return parts


def _svg(parts: list[str], title: str) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def stacked_bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], unit: str = ""
) -> Markup:
    """One bar per label, the series stacked in order (their names are the legend)."""
    count = len(labels)
    totals = [sum(values[i] for values in series.values()) for i in range(count)]
    top = _nice_max(max(totals, default=0))
    parts = _frame(top, labels, unit)
    plot_w, plot_h = WIDTH - _LEFT, HEIGHT - _BOTTOM - _TOP
    bar_w = plot_w / max(count, 1)
    for i in range(count):
        base = 0.0
        for index, (name, values) in enumerate(series.items()):
            value = values[i]
            if value <= 0:
                continue
            height = plot_h * value / top
            y = _TOP + plot_h * (1 - base / top) - height
            parts.append(
                f'<rect x="{_LEFT + i * bar_w + 1:.1f}" y="{y:.1f}" '
                f'width="{max(bar_w - 2, 1):.1f}" height="{height:.1f}" '
                f'fill="{colour(name, index)}"><title>{escape(labels[i])} {escape(name)}: '
                f"{escape(_number(value))}</title></rect>"
            )
            base += value
    return _svg(parts, title)


def lines(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], unit: str = ""
) -> Markup:
    """One polyline per series; a None is a gap (no data), not a zero."""
    values = [v for points in series.values() for v in points if v is not None]
    top = _nice_max(max(values, default=0))
    parts = _frame(top, labels, unit)
    plot_w, plot_h = WIDTH - _LEFT, HEIGHT - _BOTTOM - _TOP
    count = max(len(labels), 1)
    for index, (name, points) in enumerate(series.items()):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(points):
            if value is None:
                runs.append([])
                continue
            x = _LEFT + plot_w * (i + 0.5) / count
            y = _TOP + plot_h * (1 - value / top)
            runs[-1].append(f"{x:.1f},{y:.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour(name, index)}"/>')
            elif run:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" '
                    f'stroke="{colour(name, index)}" stroke-width="2"/>'
                )
    return _svg(parts, title)
