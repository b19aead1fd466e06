"""Read a PDF page's own text layer (pdfium) as a ``PageLayout``, and judge whether it can be trusted.

Born-digital pages skip OCR entirely. Boxes are in PDF points, origin top-left, on the page
as displayed (``/Rotate`` applied), so they line up with a rendering of the same page.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pagestream.layout import Block, Box, Line, PageLayout, Word

ENGINE = "pdfium"
#: Above this share of unmapped / replacement / private-use / control characters the layer is garbage.
MAX_BAD_CHAR_RATIO = 0.10
#: A page whose images cover more than this share of it ...
IMAGE_PAGE_COVERAGE = 0.5
#: ... and that carries fewer visible characters than this is a scan: OCR it.
MIN_CHARS_ON_IMAGE_PAGE = 50


@dataclass(slots=True)
class _Char:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def _engine_version() -> str:
    return f"pdfium {pdfium.version.PDFIUM_INFO}"


class _PageGeometry:
    """Maps PDF user-space points to top-left-origin points of the page as displayed."""

    def __init__(self, page: pdfium.PdfPage) -> None:
        left, bottom, right, top = page.get_cropbox()
        self.left, self.bottom = left, bottom
        self.w, self.h = right - left, top - bottom
        self.rotation = page.get_rotation() % 360
        self.width, self.height = (self.h, self.w) if self.rotation in (90, 270) else (self.w, self.h)

    def point(self, x: float, y: float) -> tuple[float, float]:
        ux, uy = x - self.left, y - self.bottom
        if self.rotation == 90:
            return uy, ux
        if self.rotation == 180:
            return self.w - ux, uy
        if self.rotation == 270:
            return self.h - uy, self.w - ux
        return ux, self.h - uy

    def box(self, left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
        xa, ya = self.point(left, bottom)
        xb, yb = self.point(right, top)
        return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def _unit(raw: object, i: int) -> int:
    return int(pdfium_c.FPDFText_GetUnicode(raw, i))


def _chars(textpage: pdfium.PdfTextPage, geometry: _PageGeometry) -> list[_Char | None]:
    """Characters in content order; ``None`` marks a line break, ``' '`` a word break.

    PDFium reports UTF-16 code units: a character outside the BMP (emoji, math letters) comes
    as a high and a low surrogate at two indices; they are joined into the one character, its
    box the union of both. What cannot be valid text is dropped, never passed on: lone
    surrogates (a broken ToUnicode map) and NUL. The text is always encodable UTF-8.
    """
    out: list[_Char | None] = []
    raw = textpage.raw
    count = textpage.count_chars()
    i = 0
    while i < count:
        code = _unit(raw, i)
        index = i
        i += 1
        if 0xD800 <= code <= 0xDBFF:
            low = _unit(raw, i) if i < count else 0
            if not 0xDC00 <= low <= 0xDFFF:
                continue  # a high surrogate without its pair: no character to recover
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            boxes = [_box(textpage, geometry, index), _box(textpage, geometry, i)]
            i += 1
            real = [b for b in boxes if b[2] > b[0] or b[3] > b[1]] or boxes
            x0, y0, x1, y1 = (
                min(b[0] for b in real),
                min(b[1] for b in real),
                max(b[2] for b in real),
                max(b[3] for b in real),
            )
            out.append(_Char(chr(code), x0, y0, x1, y1))
            continue
        if code == 0 or 0xDC00 <= code <= 0xDFFF:
            continue  # NUL or a low surrogate on its own
        ch = chr(code) if code < 0x110000 else "\ufffd"
        if ch in "\r\n":
            if out and out[-1] is not None:
                out.append(None)
            continue
        if ch.isspace():
            out.append(_Char(" ", 0, 0, 0, 0))
            continue
        out.append(_Char(ch, *_box(textpage, geometry, index)))
    return out


def _box(textpage: pdfium.PdfTextPage, geometry: _PageGeometry, i: int) -> tuple[float, float, float, float]:
    return geometry.box(*textpage.get_charbox(i, loose=True))


def _group_lines(chars: list[_Char | None]) -> list[list[list[_Char]]]:
    """Split characters into lines of words, breaking on generated breaks, gaps and jumps."""
    lines: list[list[list[_Char]]] = []
    words: list[list[_Char]] = []
    word: list[_Char] = []
    prev: _Char | None = None

    def end_word() -> None:
        nonlocal word
        if word:
            words.append(word)
            word = []

    def end_line() -> None:
        nonlocal words, prev
        end_word()
        if words:
            lines.append(words)
            words = []
        prev = None

    for c in chars:
        if c is None:
            end_line()
            continue
        if c.text == " ":
            end_word()
            continue
        if prev is not None:
            height = max(prev.y1 - prev.y0, c.y1 - c.y0, 1e-3)
            same_row = abs((prev.y0 + prev.y1) / 2 - (c.y0 + c.y1) / 2) < 0.5 * height
            if not same_row or c.x0 < prev.x0 - 0.5 * height:
                end_line()
            elif c.x0 - prev.x1 > 0.25 * height:
                end_word()
        word.append(c)
        prev = c
    end_line()
    return lines


def _bbox(items: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (
        min(i[0] for i in items),
        min(i[1] for i in items),
        max(i[2] for i in items),
        max(i[3] for i in items),
    )


def extract(page: pdfium.PdfPage) -> PageLayout:
    """The page's text layer as blocks → lines → words (points, confidence 100)."""
    geometry = _PageGeometry(page)
    width, height = geometry.width, geometry.height
    textpage = page.get_textpage()
    try:
        lines = _group_lines(_chars(textpage, geometry))
    finally:
        textpage.close()

    def box(b: tuple[float, float, float, float]) -> Box:
        return Box.from_pixels(*b, width, height)

    built: list[tuple[Line, tuple[float, float, float, float]]] = []
    for line_words in lines:
        words = []
        boxes = []
        for chars in line_words:
            b = _bbox([(c.x0, c.y0, c.x1, c.y1) for c in chars])
            boxes.append(b)
            words.append(Word(text="".join(c.text for c in chars), box=box(b), confidence=100.0))
        lb = _bbox(boxes)
        built.append((Line(text=" ".join(w.text for w in words), box=box(lb), words=words), lb))

    # Consecutive lines that are close vertically and overlap horizontally form a block.
    groups: list[list[tuple[Line, tuple[float, float, float, float]]]] = []
    for line, lb in built:
        if groups:
            _, pb = groups[-1][-1]
            line_h = max(lb[3] - lb[1], pb[3] - pb[1], 1e-3)
            overlaps = min(lb[2], pb[2]) > max(lb[0], pb[0])
            if overlaps and 0 <= lb[1] - pb[3] < 1.0 * line_h:
                groups[-1].append((line, lb))
                continue
        groups.append([(line, lb)])
    blocks = [
        Block(
            text="\n".join(ln.text for ln, _ in g),
            box=box(_bbox([b for _, b in g])),
            lines=[ln for ln, _ in g],
        )
        for g in groups
    ]
    return PageLayout(
        text="\n".join(b.text for b in blocks),
        width=int(round(width)),
        height=int(round(height)),
        dpi=72.0,
        rotation=0,
        source="text-layer",
        engine=ENGINE,
        engine_version=_engine_version(),
        mean_confidence=100.0 if blocks else None,
        blocks=blocks,
    )


def _is_bad_char(ch: str) -> bool:
    if ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    return cat in ("Co", "Cs", "Cn") or (cat == "Cc" and ch not in "\t\n\r")


def _unmapped_count(page: pdfium.PdfPage) -> int:
    textpage = page.get_textpage()
    try:
        return sum(
            1
            for i in range(textpage.count_chars())
            if pdfium_c.FPDFText_HasUnicodeMapError(textpage.raw, i) == 1
        )
    finally:
        textpage.close()


def image_coverage(page: pdfium.PdfPage) -> float:
    """Share (0–1) of the page covered by image objects (overlaps counted once per image)."""
    left, bottom, right, top = page.get_cropbox()
    area = max((right - left) * (top - bottom), 1e-6)
    covered = 0.0
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3):
        x0, y0, x1, y1 = obj.get_bounds()
        w = max(0.0, min(x1, right) - max(x0, left))
        h = max(0.0, min(y1, top) - max(y0, bottom))
        covered += w * h
    return min(1.0, covered / area)


def is_usable(layout: PageLayout, page: pdfium.PdfPage) -> bool:
    """Whether the text layer can stand in for OCR of ``page``.

    No: when it is empty; when more than 10% of its characters are unmapped glyphs,
    replacement, private-use or control characters; or when the page is mostly an image
    and carries almost no text (a scan with a stray caption or stamp).
    """
    chars = [c for c in layout.text if not c.isspace()]
    if not chars:
        return False
    bad = sum(1 for c in chars if _is_bad_char(c)) + _unmapped_count(page)
    if bad / len(chars) > MAX_BAD_CHAR_RATIO:
        return False
    # A mostly-image page with a stray caption or stamp is a scan: OCR it.
    return not (len(chars) < MIN_CHARS_ON_IMAGE_PAGE and image_coverage(page) > IMAGE_PAGE_COVERAGE)
