"""Zip packages (DOCX, PPTX, XLSX, EPUB) read member by member, never past a size cap.

A zip's directory may lie about sizes, so a member is read through its decompressor and
reading stops at the cap: a zip bomb costs at most ``MAX_MEMBER`` bytes of memory and
yields a one-line reason. XML is parsed by lxml with entities, DTDs and the network off.
Standard library and lxml.
"""

from __future__ import annotations

import functools
import io
import posixpath
import zipfile
from typing import Any

#: The most one member may expand to, and all of a package's members together.
MAX_MEMBER = 256 * 2**20
MAX_TOTAL = 1024 * 2**20
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"


class Package:
    """An open zip package with a budget of expanded bytes."""

    def __init__(self, data: bytes) -> None:
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ValueError(f"not a readable zip package ({exc}); the file may be truncated or damaged") from None
        self.names = set(self.zip.namelist())
        self.read_bytes = 0

    def read(self, name: str) -> bytes:
        """A member's bytes, at most ``MAX_MEMBER``; a bigger one is a ``ValueError`` naming it."""
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise ValueError(f"{name} is missing from the package") from None
        if info.flag_bits & 0x1:
            raise ValueError("encrypted: the package needs a password")
        limit = min(MAX_MEMBER, MAX_TOTAL - self.read_bytes)
        if info.file_size > limit:
            raise ValueError(f"a zip bomb? {name} would expand to {info.file_size / 2**20:,.0f} MB "
                             f"(over the {limit // 2**20} MB read per package)")
        try:
            with self.zip.open(info) as member:
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # a damaged or truncated member
            raise ValueError(f"{name} is damaged ({exc})") from None
        if len(data) > limit:
            raise ValueError(f"a zip bomb? {name} expands past {limit // 2**20} MB (its header said "
                             f"{info.file_size:,} bytes)")
        self.read_bytes += len(data)
        return data

    def xml(self, name: str) -> Any:
        """A member parsed as XML (no entities, no DTD, no network)."""
        from lxml import etree

        try:
            return etree.fromstring(self.read(name), _parser())
        except etree.XMLSyntaxError as exc:
            if "unknown error" in str(exc) or "memory" in str(exc).lower():  # libxml2's malloc failed
                raise MemoryError from None
            raise ValueError(f"{name} is not well-formed XML ({str(exc)[:120]})") from None

    def rels(self, name: str) -> dict[str, str]:
        """A part's relationships: id -> the target's member name."""
        folder, base = posixpath.split(name)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        if rels_name not in self.names:
            return {}
        found = {}
        for rel in self.xml(rels_name).iter(_RELS):
            target = rel.get("Target") or ""
            if rel.get("TargetMode") == "External":
                continue
            path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            found[rel.get("Id") or ""] = path
        return found


@functools.cache
def _parser() -> Any:
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cell text as a Markdown table (the first row as its header)."""
    rows = [[" ".join(c.split()).replace("|", "\\|") for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    lines = ["| " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)
