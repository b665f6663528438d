"""Small plots for the Dagster UI, embedded in Markdown metadata as PNG data URIs."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def distribution_by_segment_png(frame: pd.DataFrame, column: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    for segment, group in frame.groupby("segment"):
        ax.hist(group[column], bins=20, range=(0, 1) if frame[column].max() <= 1 else None, histtype="step",
                label=f"{segment} ({len(group)})", linewidth=1.4)
    ax.set_title(title)
    ax.set_xlabel(column)
    ax.set_ylabel("members")
    ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)


def figure_png(fig, dpi: int | None = None) -> bytes:
    """The figure laid out and rendered as PNG bytes; the figure is closed (pyplot keeps figures otherwise)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


# The Dagster UI (1.13) draws a Markdown metadata value in the metadata table only when it is shorter than
# this many characters; a longer one (any PNG) opens behind a "[Show Markdown]" button.
UI_INLINE_MARKDOWN_CHARS = 1000


def interval_svg_markdown(rows: list[tuple[str, float, float, float]], unit: str, alt: str,
                          width: int = 400) -> str:
    """A dot-and-whisker picture of (label, estimate, low, high) rows as a Markdown image of an inline SVG,
    short enough that the UI draws it in the metadata table (UI_INLINE_MARKDOWN_CHARS): integer coordinates,
    one path for all intervals and one for all dots. Rows that would not fit are left out, last first (the alt
    text says how many are drawn). Empty when there is no row."""
    if not rows:
        return ""
    picture = _interval_svg(rows, unit, alt, width)
    drawn = len(rows)
    while len(picture) >= UI_INLINE_MARKDOWN_CHARS and drawn > 1:
        drawn -= 1
        picture = _interval_svg(rows[:drawn], unit, f"{alt} (first {drawn} of {len(rows)})", width)
    return picture


def _interval_svg(rows: list[tuple[str, float, float, float]], unit: str, alt: str, width: int) -> str:
    lo = min(0.0, *(r[2] for r in rows))
    hi = max(0.0, *(r[3] for r in rows))
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    left, right, step = 170, width - 10, 16

    def x(value: float) -> int:
        return round(left + (value - lo) / (hi - lo) * (right - left))

    height = step * len(rows) + 22
    ys = [step * i + 12 for i in range(len(rows))]
    bars = "".join(f"M{x(low)},{y}H{x(high)}" for (_, _, low, high), y in zip(rows, ys, strict=True))
    dots = "".join(f"M{x(est)},{y}h0" for (_, est, _, _), y in zip(rows, ys, strict=True))
    labels = "".join(f"<text x='0' y='{y + 4}'>{label}</text>" for (label, *_), y in zip(rows, ys, strict=True))
    base = height - 6
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
           f"font-size='10'>{labels}<path d='M{x(0)},2V{base - 10}' stroke='grey'/>"
           f"<path d='{bars}' stroke='steelblue' stroke-width='2'/>"
           f"<path d='{dots}' stroke='navy' stroke-width='7' stroke-linecap='round'/>"
           f"<text x='{x(0)}' y='{base + 4}' text-anchor='middle'>0</text>"
           f"<text x='{left}' y='{base + 4}'>{lo:+.0f}</text>"
           f"<text x='{right}' y='{base + 4}' text-anchor='end'>{hi:+.0f} {unit}</text></svg>")
    return f"![{alt}](data:image/svg+xml,{svg.replace(' ', '%20')})"
