"""Charts for the audit report as inline SVG (no scripts): bar charts drawn with matplotlib,
a reliability diagram and a confusion table written directly."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from html import escape
from typing import Any


def _matplotlib() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "judgecal", "font.size": 9})
    import matplotlib.pyplot as plt

    return plt


def _inline_svg(figure: Any, chart_id: str, title: str) -> str:
    """The figure as an inline ``<svg>`` with our id, class and accessible title."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    return svg.replace(
        "<svg ",
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(title)}" ',
        1,
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
    """Horizontal bars with optional 95% intervals: rows of (label, value, ci_low, ci_high),
    drawn with matplotlib. Bars start at 0 (a magnitude), so a negative value extends left
    of the zero line; the axis spans ``low``..``high`` widened to every value shown, with
    ticks at round values. ``marks`` draws dashed reference lines (a baseline, indifference).
    Undefined values are listed as "n/a"."""
    plt = _matplotlib()
    labels = [label for label, *_ in rows]
    values = [math.nan if v is None else float(v) for _, v, _, _ in rows]
    shown = [v for v in values if not math.isnan(v)]
    shown += [
        float(c) for _, _, lo, hi in rows for c in (lo, hi) if c is not None and not math.isnan(c)
    ]
    left = min([low, 0.0, *shown])
    right = max([high, *shown])
    figure, axes = plt.subplots(figsize=(6.4, 0.32 * max(2, len(rows)) + 0.8))
    positions = list(range(len(rows)))[::-1]
    bars = [0.0 if math.isnan(v) else v for v in values]
    axes.barh(positions, bars, color="#4a78b5", height=0.6)
    for y, (_, value, ci_low, ci_high) in zip(positions, rows, strict=True):
        if value is None or math.isnan(value):
            axes.text(0, y, " n/a", va="center", color="#888")
            continue
        if (
            ci_low is not None
            and ci_high is not None
            and not math.isnan(ci_low)
            and not math.isnan(ci_high)
        ):
            axes.plot([ci_low, ci_high], [y, y], color="#111", linewidth=1.5)
        axes.text(value, y, f" {value:.3f}", va="center", fontsize=8)
    for label, value in marks:
        axes.axvline(value, color="#c0392b", linestyle="--", linewidth=1)
        axes.text(value, len(rows) - 0.4, label, color="#c0392b", ha="center", fontsize=8)
    axes.axvline(0, color="#555", linewidth=0.8)
    axes.set_xlim(left - 0.02, right + 0.12)
    axes.set_yticks(positions, labels)
    axes.set_title(title, fontsize=9, loc="left")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    svg = _inline_svg(figure, chart_id, title)
    plt.close(figure)
    return svg


def scatter_chart(
    points: Sequence[tuple[float, float, str, bool]], *, x_label: str, y_label: str
) -> str:
    """Cost against agreement, one labelled point per judge; the Pareto front (points marked
    True) joined by a line."""
    plt = _matplotlib()
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for x, y, label, front in points:
        axes.scatter([x], [y], color="#c0392b" if front else "#4a78b5", zorder=3)
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    pareto = sorted((x, y) for x, y, _, on in points if on)
    if len(pareto) > 1:
        axes.plot([x for x, _ in pareto], [y for _, y in pareto], color="#c0392b", linewidth=1)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    title = "Cost and agreement per judge (Pareto front in red)"
    axes.set_title(title, fontsize=9, loc="left")
    svg = _inline_svg(figure, "cost-agreement", title)
    plt.close(figure)
    return svg


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
