"""Reconciled versus divergent per day as a server-rendered SVG (no script, fits the page's CSP)."""

from __future__ import annotations

from markupsafe import Markup, escape

from reconciliation.screens import ChartDay

WIDTH = 760
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 14, 40
SERIES = (
    ("reconciled", "Conciliadas", "#1e7b4f"),
    ("divergent", "Divergentes", "#c0392b"),
    ("pending", "Pendentes", "#b9c3ce"),
)


def _nice_step(value: int) -> int:
    """A round step so that four steps cover `value` (1, 2, 5, 10, 20, 25, 50, ...)."""
    target = max(1, -(-value // 4))
    magnitude = 1
    while True:
        for factor in (1, 2, 5, 10):
            if factor * magnitude >= target:
                return factor * magnitude
        magnitude *= 10


def _label(day: ChartDay) -> str:
    def plural(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    return (
        f"{day.day:%d/%m/%Y}: {plural(day.reconciled, 'conciliada', 'conciliadas')}, "
        f"{plural(day.divergent, 'divergente', 'divergentes')}, "
        f"{plural(day.pending, 'pendente', 'pendentes')}"
    )


def render(days: list[ChartDay]) -> Markup:
    """Stacked bars per day (reconciled at the bottom, then divergent, then pending), a y axis,
    day labels and a legend; every day group carries its numbers in `<title>` and data attributes."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = _nice_step(max((d.total for d in days), default=0))
    top_value = 4 * step
    slot = plot_w / max(1, len(days))
    bar_w = max(4.0, min(36.0, slot * 0.6))
    parts = [
        f'<svg class="recon-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="chart-title chart-desc">',
        '<title id="chart-title">Conciliadas e divergentes por dia</title>',
        f'<desc id="chart-desc">{escape("; ".join(_label(d) for d in days))}</desc>',
    ]
    for tick in range(5):
        value = step * tick
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#dde3ea" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6878">{value}</text>'
        )
    every = max(1, -(-len(days) // 16))  # at most ~16 day labels
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar_w) / 2
        base = TOP + plot_h
        parts.append(
            f'<g class="chart-day" data-day="{day.day.isoformat()}" data-reconciled="{day.reconciled}" '
            f'data-divergent="{day.divergent}" data-pending="{day.pending}">'
            f"<title>{escape(_label(day))}</title>"
        )
        for key, _label_text, color in SERIES:
            count = getattr(day, key)
            if not count:
                continue
            h = plot_h * count / top_value
            base -= h
            parts.append(
                f'<rect class="bar bar-{key}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{color}" data-series="{key}" data-count="{count}"/>'
            )
        parts.append("</g>")
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" font-size="11" '
                f'fill="#5b6878">{day.day:%d/%m}</text>'
            )
    legend_x = LEFT
    for _key, text, color in SERIES:
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" font-size="11" fill="#1d2733">{text}</text>'
        )
        legend_x += 110
    parts.append("</svg>")
    return Markup("".join(parts))
