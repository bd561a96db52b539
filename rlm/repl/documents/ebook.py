"""EPUB e-books (2 and 3): the chapters in reading order, titled from the table of contents.

The package is a zip: ``META-INF/container.xml`` names the OPF file, whose spine orders
the XHTML chapters; each is read as HTML (``markup``). Files a DRM scheme encrypted are
named and skipped (font obfuscation is not encryption of text).
"""

from __future__ import annotations

import posixpath
import urllib.parse
from typing import Any

from . import markup
from .packages import Package

_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_NCX = "{http://www.daisy.org/z3986/2005/ncx/}"
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"
_XHTML = "{http://www.w3.org/1999/xhtml}"
_EPUB = "{http://www.idpf.org/2007/ops}"
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def extract(data: bytes) -> dict[str, Any]:
    pkg = Package(data)
    container = pkg.xml("META-INF/container.xml")
    rootfile = container.find(f".//{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise ValueError("META-INF/container.xml names no package file")
    opf_name = rootfile.get("full-path") or ""
    opf = pkg.xml(opf_name)
    folder = posixpath.dirname(opf_name)
    manifest = {item.get("id"): item for item in opf.iter(f"{_OPF}item")}
    titles = _toc_titles(pkg, opf, manifest, folder)
    encrypted = _encrypted(pkg)
    parts, labels, headings, skipped, images = [], [], [], [], 0
    for ref in opf.iter(f"{_OPF}itemref"):
        item = manifest.get(ref.get("idref"))
        if item is None or "html" not in (item.get("media-type") or ""):
            continue
        name = _join(folder, item.get("href") or "")
        if name in encrypted:
            skipped.append(f"{name}: encrypted (DRM), not readable")
            continue
        if name not in pkg.names:
            skipped.append(f"{name}: missing from the book")
            continue
        text, found, pictures = markup.to_text(markup.content(markup.parse(pkg.read(name))))
        images += pictures
        if not text.strip():
            continue
        headings += found
        title = titles.get(name) or (found[0].lstrip("# ") if found else posixpath.basename(name))
        parts.append(text)
        labels.append(f"chapter {len(parts)}: {title}")
    if images:
        skipped.append(f"{images} images (their content is not text; alt text is kept)")
    if not parts and encrypted:
        raise ValueError("encrypted (DRM): no chapter is readable")
    meta = opf.find(f"{_OPF}metadata")
    info: dict[str, Any] = {"chapters": len(parts)}
    if meta is not None:
        for key in ("title", "creator", "language"):
            value = meta.findtext(f"{{http://purl.org/dc/elements/1.1/}}{key}")
            if value:
                info[key] = " ".join(value.split())
    return {"kind": "epub", "unit": "chapter", "parts": parts, "labels": labels, "headings": headings,
            "skipped": skipped, "info": info}


def _join(folder: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(folder, urllib.parse.unquote(href.split("#", 1)[0])))


def _toc_titles(pkg: Package, opf: Any, manifest: dict[Any, Any], folder: str) -> dict[str, str]:
    """Chapter file -> its title in the EPUB 3 nav document or the EPUB 2 NCX."""
    titles: dict[str, str] = {}
    for item in manifest.values():
        href = _join(folder, item.get("href") or "")
        if "nav" in (item.get("properties") or "").split() and href in pkg.names:
            nav_folder = posixpath.dirname(href)
            for a in markup.parse(pkg.read(href)).css("a"):
                target = _join(nav_folder, a.attributes.get("href") or "")
                titles.setdefault(target, " ".join(a.text(deep=True).split()))
            return titles
    spine = opf.find(f"{_OPF}spine")
    ncx = manifest.get(spine.get("toc")) if spine is not None else None
    if ncx is not None:
        name = _join(folder, ncx.get("href") or "")
        if name in pkg.names:
            ncx_folder = posixpath.dirname(name)
            for point in pkg.xml(name).iter(f"{_NCX}navPoint"):
                content = point.find(f"{_NCX}content")
                label = point.findtext(f"{_NCX}navLabel/{_NCX}text") or ""
                if content is not None and label.strip():
                    titles.setdefault(_join(ncx_folder, content.get("src") or ""), " ".join(label.split()))
    return titles


def _encrypted(pkg: Package) -> set[str]:
    """Members encrypted by a DRM scheme (META-INF/encryption.xml), fonts' obfuscation aside."""
    if "META-INF/encryption.xml" not in pkg.names:
        return set()
    found = set()
    for data in pkg.xml("META-INF/encryption.xml").iter(f"{_ENC}EncryptedData"):
        method = data.find(f"{_ENC}EncryptionMethod")
        ref = data.find(f".//{_ENC}CipherReference")
        if ref is not None and (method is None or method.get("Algorithm") not in _FONT_OBFUSCATION):
            found.add(posixpath.normpath(urllib.parse.unquote(ref.get("URI") or "")))
    return found
