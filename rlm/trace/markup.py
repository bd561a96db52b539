"""What every HTML view of runs shares: escaping untrusted text, the page around it, showing and saving it."""

from __future__ import annotations

import html
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any


def escape(value: Any) -> str:
    """Text as HTML, quotes included: model text, code output and prompts are untrusted."""
    return html.escape(str(value), quote=True)


def page(fragment: str, title: str) -> str:
    """A standalone HTML document around a fragment: no script, no external resource, so it opens offline."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"</head><body>{fragment}</body></html>\n"
    )


def short_number(n: float) -> str:
    """A count as a view shows it: ``12,345``, ``123.5k``, ``4.2M``."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= 10 * size:
            return f"{n / size:.1f}{suffix}"
    return f"{int(n):,}"


def short_seconds(s: float | None) -> str:
    """A duration as a view shows it: ``4.2 s``, ``3m07s``; a dash when unknown."""
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    minutes, secs = divmod(int(s), 60)
    return f"{minutes}m{secs:02d}s"


class HtmlView:
    """A view that displays itself in a notebook and saves as one page that opens offline."""

    @abstractmethod
    def to_html(self, *, standalone: bool = False) -> str:
        """The view as an HTML fragment, or as a whole page that opens offline (``standalone``)."""

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the standalone page; returns the path."""
        target = Path(path)
        target.write_text(self.to_html(standalone=True), encoding="utf-8")
        return target

    def _repr_html_(self) -> str:
        return self.to_html()
