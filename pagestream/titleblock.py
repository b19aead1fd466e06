"""Read a construction drawing's title block (sheet number, sheet title, scale) from a ``PageLayout``.

Works on text-layer and OCR layouts alike: it uses labels (``SHEET NO.``, ``DRAWING TITLE``,
``SCALE`` …) and word positions (title blocks sit bottom-right or in a right-hand strip; the
sheet number is usually the largest text there), and tolerates OCR noise in quotes and digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pagestream.layout import Box, PageLayout, TitleBlock

_QUOTES = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "″": '"',
        "〃": '"',
        "‘": "'",
        "’": "'",
        "′": "'",
        "`": "'",
        "´": "'",
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
    }
)

_TITLE_LABEL = re.compile(r"^(?:SHEET\s+TITLE|DRAWING\s+TITLE|DWG\.?\s+TITLE|TITLE)\s*[:.]?\s*", re.I)
_NUMBER_LABEL = re.compile(
    r"^(?:SHEET\s*(?:NO\b\.?|NUMBER|NUM\b\.?|#)|DRAWING\s*(?:NO\b\.?|NUMBER|#)|DWG\.?\s*(?:NO\b\.?|NUMBER|#))"
    r"\s*[:.]?\s*",
    re.I,
)
_BARE_SHEET_LABEL = re.compile(r"^SHEET\s*[:.]?\s*$", re.I)
_SCALE_LABEL = re.compile(r"^SCALE\s*[:.;]?\s*", re.I)
_OTHER_LABEL = re.compile(
    r"^(?:DATE|DRAWN\s+BY|CHECKED(?:\s+BY)?|PROJECT(?:\s+(?:NO\.?|NUMBER))?|JOB\s+NO\.?|REV(?:ISION)?S?|"
    r"CLIENT|OWNER|ISSUE|APPROVED(?:\s+BY)?)\b",
    re.I,
)

_SHEET_NUMBER = re.compile(r"^([A-Z]{1,2})([-.]?)([0-9OIl|]{1,3})(\.[0-9OIl|]{1,3})?([A-Z])?$")

_IMPERIAL = re.compile(
    r"(\d+(?:\s+\d+/\d+|/\d+)?)\s*\"\s*=\s*(\d+)\s*(?:'\s*-?|-)\s*(\d+(?:\s+\d+/\d+|/\d+)?)\s*\""
)
_ENGINEERING = re.compile(r"(\d+)\s*\"\s*=\s*(\d+)\s*'(?!\s*-?\s*\d)")
_METRIC = re.compile(r"(?<![\d/])1\s*:\s*(\d{1,5})(?!\d)")
_NTS = re.compile(r"\bN\.?\s?T\.?\s?S\b\.?", re.I)
_NOT_TO_SCALE = re.compile(r"\bNOT\s+TO\s+SCALE\b", re.I)
_AS_NOTED = re.compile(r"\bAS\s+(?:NOTED|SHOWN|INDICATED)\b", re.I)


def normalize(text: str) -> str:
    """Unify OCR's quote and dash variants (``1/4”`` and ``1/4''`` become ``1/4"``)."""
    return text.translate(_QUOTES).replace("''", '"')


@dataclass(slots=True)
class _Line:
    text: str
    box: Box
    height: float  # tallest word, in normalized page height

    @property
    def cx(self) -> float:
        return (self.box.nx0 + self.box.nx1) / 2

    @property
    def cy(self) -> float:
        return (self.box.ny0 + self.box.ny1) / 2


def _in_title_region(line: _Line) -> bool:
    return (line.cx > 0.6 and line.cy > 0.55) or line.cx > 0.78


def _lines(layout: PageLayout) -> list[_Line]:
    out = []
    for block in layout.blocks:
        for line in block.lines:
            text = normalize(line.text).strip()
            if not text:
                continue
            height = max((w.box.ny1 - w.box.ny0 for w in line.words), default=line.box.ny1 - line.box.ny0)
            out.append(_Line(text, line.box, height))
    return out


def parse_scale(text: str) -> str | None:
    """The drawing scale in ``text`` in a canonical spelling (``1/4" = 1'-0"``, ``1:100``, ``NTS``)."""
    text = normalize(text)
    if m := _IMPERIAL.search(text):
        return f'{m.group(1)}" = {m.group(2)}\'-{m.group(3)}"'
    if m := _ENGINEERING.search(text):
        return f"{m.group(1)}\" = {m.group(2)}'"
    if m := _METRIC.search(text):
        return f"1:{m.group(1)}"
    if _NOT_TO_SCALE.search(text):
        return "NOT TO SCALE"
    if _NTS.search(text):
        return "NTS"
    if m := _AS_NOTED.search(text):
        return " ".join(m.group(0).upper().split())
    return None


def parse_sheet_number(token: str) -> str | None:
    """``token`` as a sheet number (``A-101``, ``E2.03``, ``A101``), fixing OCR's O/0 and l/1 in digits."""
    token = normalize(token).strip(".,:;()[]")
    m = _SHEET_NUMBER.match(token)
    if not m:
        return None
    prefix, sep, digits, sub, suffix = m.groups()
    fix = str.maketrans({"O": "0", "I": "1", "l": "1", "|": "1"})
    digits = digits.translate(fix)
    sub = (sub or "").translate(fix)
    if not any(c.isdigit() for c in token):
        return None
    return f"{prefix}{sep}{digits}{sub}{suffix or ''}"


def _label(line: _Line) -> tuple[str, str] | None:
    """``(kind, inline remainder)`` when ``line`` starts with a title-block label."""
    text = line.text
    if m := _TITLE_LABEL.match(text):
        return "title", text[m.end() :].strip()
    if m := _NUMBER_LABEL.match(text):
        return "number", text[m.end() :].strip()
    if _BARE_SHEET_LABEL.match(text):
        return "number", ""
    if m := _SCALE_LABEL.match(text):
        return "scale", text[m.end() :].strip()
    if _OTHER_LABEL.match(text) and len(text.split()) <= 3:
        return "other", ""
    return None


def _below(label: _Line, lines: list[_Line], labels: dict[int, tuple[str, str]]) -> list[_Line]:
    """The lines under ``label`` in its cell: nearest first, stopping at the next label or a gap."""
    max_gap = max(12 * label.height, 0.02)
    column = [
        ln
        for ln in lines
        if ln is not label
        and ln.box.ny0 >= label.box.ny1 - 0.3 * label.height
        and ln.box.ny0 - label.box.ny1 < max_gap
        and label.box.nx0 - 0.03 <= ln.box.nx0 <= label.box.nx0 + 0.08
    ]
    column.sort(key=lambda ln: ln.box.ny0)
    out: list[_Line] = []
    for ln in column:
        if id(ln) in labels:
            break
        if out and ln.box.ny0 - out[-1].box.ny1 > 1.2 * max(out[-1].height, ln.height):
            break
        out.append(ln)
    return out


def _rank(line: _Line) -> tuple[bool, float, float]:
    # prefer labels in the title-block region, then the lowest, then the rightmost
    return _in_title_region(line), line.cy, line.cx


def parse(layout: PageLayout) -> TitleBlock:
    """Sheet number, sheet title and scale of a drawing page; fields not found are ``None``."""
    lines = _lines(layout)
    labels: dict[int, tuple[str, str]] = {}
    for ln in lines:
        found = _label(ln)
        if found:
            labels[id(ln)] = found
    by_kind: dict[str, list[_Line]] = {"title": [], "number": [], "scale": []}
    for ln in lines:
        kind = labels.get(id(ln), ("", ""))[0]
        if kind in by_kind:
            by_kind[kind].append(ln)
    for kind in by_kind:
        by_kind[kind].sort(key=_rank, reverse=True)

    def values(kind: str) -> list[list[str]]:
        """For each label of ``kind`` (best first): its inline remainder or the lines below it."""
        out = []
        for ln in by_kind[kind]:
            inline = labels[id(ln)][1]
            out.append([inline] if inline else [v.text for v in _below(ln, lines, labels)])
        return out

    # --- sheet number ---
    sheet_number = None
    for texts in values("number"):
        for token in " ".join(texts).split():
            if sheet_number := parse_sheet_number(token):
                break
        if sheet_number:
            break
    if sheet_number is None:
        candidates = []
        for ln in lines:
            if id(ln) in labels and labels[id(ln)][0] != "number":
                continue
            for token in ln.text.split():
                if number := parse_sheet_number(token):
                    candidates.append((_in_title_region(ln), ln.height, ln.cy, number))
        if candidates:
            sheet_number = max(candidates)[3]

    # --- scale ---
    scale = None
    for texts in values("scale"):
        if scale := parse_scale(" ".join(texts)):
            break
    if scale is None:
        scales = [(_in_title_region(ln), ln.cy, s) for ln in lines if (s := parse_scale(ln.text))]
        if scales:
            scale = max(scales)[2]

    # --- sheet title ---
    sheet_title = None
    for texts in values("title"):
        title = " ".join(" ".join(texts).split())
        if title and not parse_sheet_number(title):
            sheet_title = title
            break
    return TitleBlock(sheet_number=sheet_number, sheet_title=sheet_title, scale=scale)
