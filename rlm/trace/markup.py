"""What every HTML view of runs shares: escaping untrusted text, and showing or saving a view."""

from __future__ import annotations

import html
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any


def escape(value: Any) -> str:
    """Text as HTML, quotes included: model text, code output and prompts are untrusted."""
    return html.escape(str(value), quote=True)


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
