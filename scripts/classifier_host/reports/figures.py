"""Pictures in the HTML pages: matplotlib off-screen, each chart or image embedded as a data URI, so a
page is one file that opens anywhere."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import IO

DPI = 110


def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no display on servers and CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(save: Callable[[IO[bytes]], object], media: str) -> str:
    """An image embedded in a page: `save(buffer)` writes it, `media` is its type (image/png...)."""
    buffer = io.BytesIO()
    save(buffer)
    return f"data:{media};base64," + base64.b64encode(buffer.getvalue()).decode()


def save_png(fig, path) -> None:
    """A matplotlib figure as a PNG file beside other outputs (not a page); the figure is closed."""
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)


def png(fig) -> str:
    """A matplotlib figure as a PNG data URI, cropped to what it draws; the figure is closed (a page
    draws many, and pyplot keeps every open one)."""
    uri = data_uri(lambda out: fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight"), "image/png")
    pyplot().close(fig)
    return uri
