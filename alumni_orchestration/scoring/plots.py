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
