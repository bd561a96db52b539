"""A call's images in the view: a thumbnail where the trace kept one, and what the image's header says.

The host never decodes an image: a thumbnail is the image itself (``rlm.lm.vision.Thumbs``),
which the browser scales into a ``THUMB_PX`` box. Only a PNG or JPEG base64 ``data:`` URL
is drawn, whatever a trace read from disk holds.
"""

from __future__ import annotations

import re
from typing import Any

from .markup import escape as _e

#: Thumbnails fit this box (CSS pixels); the browser scales the image, the host never decodes it.
THUMB_PX = 160
#: The only thumbnails drawn: a PNG or JPEG as base64 (a trace read from disk could hold anything).
_THUMB = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/]+={0,2}")


def images_html(detail: dict[str, Any]) -> str:
    """A call's images: each its thumbnail (when the trace kept one) and what its header says."""
    images = [i for i in detail.get("images") or () if isinstance(i, dict)]
    if not images:
        return ""
    figures = []
    for k, image in enumerate(images):
        width, height = int(image.get("width") or 0), int(image.get("height") or 0)
        caption = (f'{str(image.get("format") or "").upper()} · {width:,}×{height:,} px · '
                   f'{_size(int(image.get("bytes") or 0))} · {int(image.get("tokens") or 0):,} tokens')
        thumb = image.get("thumb")
        if isinstance(thumb, str) and _THUMB.fullmatch(thumb) and width and height:
            scale = min(1.0, THUMB_PX / max(width, height))
            picture = (f'<img src="{_e(thumb)}" width="{max(1, round(width * scale))}" '
                       f'height="{max(1, round(height * scale))}" alt="image {k + 1}" loading="lazy">')
        else:
            picture = '<span class="rlm-image-none">no thumbnail kept</span>'
        figures.append(f'<figure class="rlm-image" title="sha256 {_e(image.get("sha256") or "")}…">{picture}'
                       f"<figcaption>{_e(caption)}</figcaption></figure>")
    detail_note = f' · detail "{_e(detail["detail"])}"' if detail.get("detail") else ""
    return (f'<div class="rlm-detail-images"><b>{len(images)} image{"s" if len(images) != 1 else ""}</b>'
            f'{detail_note}<div>{"".join(figures)}</div></div>')


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} B"
    return f"{n / 1024:,.0f} KiB" if n < 2**20 else f"{n / 2**20:,.1f} MiB"


class Thumbnails:
    """Each image's thumbnail, kept once by its hash, and put back where a view draws the image.

    A trace carries an image's thumbnail at its first call only (``rlm.lm.vision.Thumbs``),
    so a call's details keep its images without thumbnails and look them up here.
    """

    def __init__(self) -> None:
        self.by_hash: dict[str, str] = {}

    def take(self, data: dict[str, Any]) -> dict[str, Any]:
        """A call's ``images`` (without their thumbnails, which are kept here) and ``detail``; {} with none."""
        images = data.get("images")
        if not isinstance(images, list) or not images:
            return {}
        kept = []
        for image in images:
            if not isinstance(image, dict):
                continue
            thumb = image.get("thumb")
            if isinstance(thumb, str) and image.get("sha256"):
                self.by_hash.setdefault(str(image["sha256"]), thumb)
            kept.append({k: v for k, v in image.items() if k != "thumb"})
        return {"images": kept, "detail": data.get("detail")}

    def attach(self, item: dict[str, Any], shown: set[str] | None = None) -> dict[str, Any]:
        """``item`` with each image's thumbnail; with ``shown``, only those not shown before (for a record)."""
        images = []
        for image in item.get("images") or ():
            key = str(image.get("sha256"))
            thumb = self.by_hash.get(key)
            if thumb is not None and (shown is None or key not in shown):
                image = dict(image, thumb=thumb)
                if shown is not None:
                    shown.add(key)
            images.append(image)
        return dict(item, images=images) if images else item
