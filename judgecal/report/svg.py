"""Small, dependency-free SVG charts for the audit report (inline, no scripts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 300
PAD_L, PAD_R, PAD_T, PAD_B = 250, 30, 20, 40


def _fmt(value: float) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


def hbar_chart(
    chart_id: str,
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    title: str,
    low: float = 0.0,
    high: float = 1.0,
    marks: Sequence[tuple[str, float]] = (),
) -> str:
    """Horizontal bars with optional intervals: rows of (label, value, ci_low, ci_high);
    ``marks`` draws dashed reference lines (e.g. the human ceiling, chance)."""
    height = PAD_T + PAD_B + 28 * max(1, len(rows))
    span = PAD_L, WIDTH - PAD_R

    def x(v: float) -> float:
        v = min(high, max(low, v))
        return span[0] + (v - low) / (high - low) * (span[1] - span[0])

    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{span[0]}" y1="{PAD_T}" x2="{span[0]}" y2="{height - PAD_B}" stroke="#888"/>',
    ]
    for tick in range(6):
        v = low + (high - low) * tick / 5
        parts.append(
            f'<text x="{x(v):.1f}" y="{height - PAD_B + 16}" font-size="11" text-anchor="middle">{v:.1f}</text>'
        )
    for i, (label, value, ci_low, ci_high) in enumerate(rows):
        y = PAD_T + 28 * i
        parts.append(
            f'<text x="{span[0] - 6}" y="{y + 15}" font-size="12" text-anchor="end">{escape(label)}</text>'
        )
        if value is None or math.isnan(value):
            parts.append(
                f'<text x="{span[0] + 4}" y="{y + 15}" font-size="11" fill="#888">n/a</text>'
            )
            continue
        parts.append(
            f'<rect x="{span[0]}" y="{y + 4}" width="{max(0.0, x(value) - span[0]):.1f}" height="16" fill="#4a78b5"><title>{escape(label)}: {_fmt(value)}</title></rect>'
        )
        if (
            ci_low is not None
            and ci_high is not None
            and not (math.isnan(ci_low) or math.isnan(ci_high))
        ):
            parts.append(
                f'<line x1="{x(ci_low):.1f}" y1="{y + 12}" x2="{x(ci_high):.1f}" y2="{y + 12}" stroke="#111" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{min(x(value) + 4, WIDTH - 4):.1f}" y="{y + 15}" font-size="11">{_fmt(value)}</text>'
        )
    for label, value in marks:
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{PAD_T}" x2="{x(value):.1f}" y2="{height - PAD_B}" stroke="#c0392b" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x(value):.1f}" y="{PAD_T - 6 if PAD_T > 12 else 10}" font-size="10" fill="#c0392b" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def reliability_diagram(
    chart_id: str, curves: dict[str, list[dict[str, float]]], *, title: str
) -> str:
    """Observed agreement against predicted probability per bin, one polyline per curve."""
    size, pad = 300, 40
    colors = ["#4a78b5", "#e67e22", "#27ae60", "#8e44ad"]

    def px(v: float) -> float:
        return pad + v * (size - 2 * pad)

    def py(v: float) -> float:
        return size - pad - v * (size - 2 * pad)

    parts = [
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {size + 160} {size}" '
        f'width="{size + 160}" height="{size}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#aaa" stroke-dasharray="4 3"/>',
        f'<rect x="{px(0)}" y="{py(1)}" width="{px(1) - px(0)}" height="{py(0) - py(1)}" fill="none" stroke="#888"/>',
        f'<text x="{size / 2}" y="{size - 8}" font-size="11" text-anchor="middle">predicted P(humans agree)</text>',
        f'<text x="12" y="{size / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {size / 2})">observed agreement</text>',
    ]
    for index, (name, curve) in enumerate(curves.items()):
        color = colors[index % len(colors)]
        points = " ".join(f"{px(b['predicted']):.1f},{py(b['observed']):.1f}" for b in curve)
        if points:
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        for b in curve:
            parts.append(
                f'<circle cx="{px(b["predicted"]):.1f}" cy="{py(b["observed"]):.1f}" r="3" fill="{color}"><title>{escape(name)}: predicted {b["predicted"]:.2f}, observed {b["observed"]:.2f}, n={b["n"]}</title></circle>'
            )
        parts.append(
            f'<text x="{size + 10}" y="{30 + 18 * index}" font-size="12" fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def confusion_table(
    table_id: str,
    labels: Sequence[str],
    predicted: Sequence[str],
    counts: dict[tuple[str, str], int],
) -> str:
    """An HTML confusion matrix (rows: humans, columns: judge), shaded by share of the row."""
    head = "".join(f"<th>judge: {escape(p)}</th>" for p in predicted)
    body = []
    for label in labels:
        total = sum(counts.get((label, p), 0) for p in predicted) or 1
        cells = []
        for p in predicted:
            n = counts.get((label, p), 0)
            shade = int(255 - 150 * n / total)
            cells.append(f'<td style="background: rgb({shade},{shade},255)">{n}</td>')
        body.append(f"<tr><th>humans: {escape(label)}</th>{''.join(cells)}</tr>")
    return (
        f'<table id="{table_id}" class="confusion"><tr><th></th>{head}</tr>{"".join(body)}</table>'
    )
