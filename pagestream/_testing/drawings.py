"""Generated construction drawings with known title-block fields, as vector PDFs and as scans.

Several title-block layouts (bottom-right box, right-hand strip), label wordings, sheet
numbers and scales; linework and callouts in the body as distractors. Deterministic.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Literal

import pypdfium2 as pdfium
from reportlab.pdfgen import canvas

from pagestream._testing.pages import add_scan_effects, png_bytes, register_pdf_fonts
from pagestream.layout import TitleBlock

INCH = 72.0


@dataclass(frozen=True, slots=True)
class DrawingSpec:
    """One drawing sheet to generate; ``truth()`` is what the parser must read."""

    name: str
    sheet_number: str
    sheet_title: str
    scale: str  # as printed
    layout: Literal["box", "strip"]
    number_label: str = "SHEET NO."
    title_label: str = "SHEET TITLE"
    scale_label: str = "SCALE"
    scale_inline: bool = False  # "SCALE: 1/8" = 1'-0"" on one line
    size_in: tuple[float, float] = (17.0, 11.0)
    expected_scale: str | None = None  # canonical form when it differs from ``scale``
    seed: int = 0

    def truth(self) -> TitleBlock:
        """The fields the title-block parser should return."""
        return TitleBlock(
            sheet_number=self.sheet_number,
            sheet_title=self.sheet_title,
            scale=self.expected_scale or self.scale,
        )


SPECS: tuple[DrawingSpec, ...] = (
    DrawingSpec("A-101", "A-101", "FIRST FLOOR PLAN", '1/4" = 1\'-0"', "box", seed=1),
    DrawingSpec(
        "S-301",
        "S-301",
        "FOUNDATION DETAILS",
        '3/4" = 1\'-0"',
        "strip",
        number_label="SHEET NUMBER",
        title_label="DRAWING TITLE",
        size_in=(24.0, 18.0),
        seed=2,
    ),
    DrawingSpec(
        "E2.03",
        "E2.03",
        "LIGHTING PLAN LEVEL 2",
        '1/8"=1\'-0"',
        "box",
        number_label="DRAWING NO.",
        title_label="TITLE",
        scale_inline=True,
        expected_scale='1/8" = 1\'-0"',
        seed=3,
    ),
    DrawingSpec("M-001", "M-001", "MECHANICAL SCHEDULES", "NTS", "strip", number_label="DWG NO.", seed=4),
    DrawingSpec(
        "A101",
        "A101",
        "BUILDING SECTIONS",
        "1:100",
        "box",
        number_label="SHEET",
        title_label="TITLE",
        size_in=(16.5, 11.7),
        seed=5,
    ),
    DrawingSpec(
        "P-401",
        "P-401",
        "PLUMBING RISER DIAGRAM",
        "NOT TO SCALE",
        "strip",
        title_label="DRAWING TITLE",
        scale_inline=True,
        seed=6,
    ),
    DrawingSpec(
        "A3.12",
        "A3.12",
        "ENLARGED TOILET ROOM PLANS",
        '1/2" = 1\'-0"',
        "box",
        number_label="SHEET NUMBER",
        title_label="DRAWING TITLE",
        size_in=(24.0, 18.0),
        seed=7,
    ),
)


def _body(c: canvas.Canvas, spec: DrawingSpec, body_w: float, body_h: float) -> None:
    """Walls, grid bubbles, room names, dimensions and callouts: realistic clutter."""
    rng = random.Random(spec.seed)
    m = 0.75 * INCH
    c.setLineWidth(2.5)
    x0, y0 = m + 0.8 * INCH, m + 1.0 * INCH
    w, h = body_w - 2 * m - 1.6 * INCH, body_h - 2 * m - 2.0 * INCH
    c.rect(x0, y0, w, h)
    c.setLineWidth(1.2)
    for _ in range(5):
        if rng.random() < 0.5:
            x = x0 + rng.uniform(0.2, 0.8) * w
            c.line(x, y0, x, y0 + rng.uniform(0.4, 1.0) * h)
        else:
            y = y0 + rng.uniform(0.2, 0.8) * h
            c.line(x0, y, x0 + rng.uniform(0.4, 1.0) * w, y)
    # grid lines with bubbles
    c.setLineWidth(0.4)
    c.setDash(6, 3)
    for i in range(4):
        x = x0 + i * w / 3
        c.line(x, y0 - 0.3 * INCH, x, y0 + h + 0.3 * INCH)
    c.setDash()
    c.setFont("Vera", 12)
    for i in range(4):
        x = x0 + i * w / 3
        c.circle(x, y0 + h + 0.55 * INCH, 0.22 * INCH)
        c.drawCentredString(x, y0 + h + 0.5 * INCH, str(i + 1))
    rooms = ["OFFICE", "CORRIDOR", "STORAGE", "MEETING", "LOBBY", "STAIR 1"]
    c.setFont("Vera", 10)
    for i, room in enumerate(rng.sample(rooms, 4)):
        cx = x0 + (0.15 + 0.22 * i) * w
        cy = y0 + rng.uniform(0.3, 0.7) * h
        c.drawString(cx, cy, room)
        c.drawString(cx, cy - 13, f"{100 + i + 1}")
    c.setFont("Vera", 8)
    c.drawString(x0 + 0.1 * w, y0 - 0.2 * INCH, "24'-6\"")
    c.drawString(x0 + 0.5 * w, y0 - 0.2 * INCH, "18'-0\"")
    # a detail callout referencing another sheet (must not be mistaken for this sheet's number)
    c.circle(x0 + 0.8 * w, y0 + 0.2 * h, 0.3 * INCH)
    c.line(x0 + 0.8 * w - 0.3 * INCH, y0 + 0.2 * h, x0 + 0.8 * w + 0.3 * INCH, y0 + 0.2 * h)
    c.drawCentredString(x0 + 0.8 * w, y0 + 0.2 * h + 5, "3")
    c.drawCentredString(x0 + 0.8 * w, y0 + 0.2 * h - 11, "A-501")
    # view title under the drawing
    c.setFont("Vera-Bold", 11)
    c.drawString(x0, m + 0.35 * INCH, "GENERAL NOTES")
    c.setFont("Vera", 8)
    c.drawString(x0 + 1.6 * INCH, m + 0.35 * INCH, "1. VERIFY ALL DIMENSIONS ON SITE BEFORE STARTING WORK.")


def _label_value(
    c: canvas.Canvas,
    x: float,
    top: float,
    w: float,
    h: float,
    label: str,
    value: str,
    size: float,
    inline: bool = False,
) -> None:
    c.setLineWidth(0.8)
    c.rect(x, top - h, w, h)
    if inline:
        c.setFont("Vera-Bold", size)
        c.drawString(x + 6, top - h / 2 - size / 3, f"{label}: {value}")
        return
    c.setFont("Vera", 7)
    c.drawString(x + 5, top - 10, label)
    # the value sits centred in the space under the label, clear of it
    cap = 0.75 * size
    c.setFont("Vera-Bold", size)
    c.drawString(x + 8, top - 12 - max(2.0, (h - 12 - cap) / 2) - cap, value)


def _common_cells(spec: DrawingSpec) -> list[tuple[str, str, float]]:
    return [
        ("", "NORTHWIND ARCHITECTS", 10),
        ("PROJECT", "RIVERSIDE LIBRARY EXTENSION", 9),
        ("DATE", "2026-03-12", 9),
        ("DRAWN BY", "JR", 9),
    ]


def _title_block_box(c: canvas.Canvas, spec: DrawingSpec, pw: float, ph: float) -> None:
    m = 0.5 * INCH
    w, x = 4.2 * INCH, pw - m - 4.2 * INCH
    top = m + 3.6 * INCH
    for label, value, size in _common_cells(spec)[:2]:
        _label_value(c, x, top, w, 0.42 * INCH, label, value, size)
        top -= 0.42 * INCH
    half = w / 2
    _label_value(c, x, top, half, 0.4 * INCH, "DATE", "2026-03-12", 9)
    _label_value(c, x + half, top, half, 0.4 * INCH, "DRAWN BY", "JR", 9)
    top -= 0.4 * INCH
    _label_value(c, x, top, w, 0.6 * INCH, spec.title_label, spec.sheet_title, 13)
    top -= 0.6 * INCH
    if spec.scale_inline:
        _label_value(c, x, top, w, 0.4 * INCH, spec.scale_label, spec.scale, 10, inline=True)
    else:
        _label_value(c, x, top, w, 0.45 * INCH, spec.scale_label, spec.scale, 11)
    top -= 0.45 * INCH if not spec.scale_inline else 0.4 * INCH
    _label_value(c, x, top, w, top - m, spec.number_label, spec.sheet_number, 30)


def _title_block_strip(c: canvas.Canvas, spec: DrawingSpec, pw: float, ph: float) -> None:
    m = 0.5 * INCH
    w = 2.6 * INCH
    x = pw - m - w
    c.setLineWidth(1.5)
    c.rect(x, m, w, ph - 2 * m)
    top = ph - m
    _label_value(c, x, top, w, 0.6 * INCH, "", "NORTHWIND ARCHITECTS", 10)
    top -= 0.6 * INCH
    _label_value(c, x, top, w, 0.5 * INCH, "PROJECT", "RIVERSIDE LIBRARY", 9)
    top -= 0.5 * INCH
    # revisions table (distractor dates and numbers)
    c.setFont("Vera", 7)
    c.drawString(x + 5, top - 12, "REV   DATE         DESCRIPTION")
    for i in range(3):
        c.drawString(x + 5, top - 26 - 12 * i, f"{i + 1}     2026-0{i + 1}-1{i}   ISSUED FOR REVIEW")
    top -= 1.4 * INCH
    base = m + 2.4 * INCH
    _label_value(c, x, base + 1.5 * INCH, w, 0.7 * INCH, spec.title_label, "", 11)
    # a long title may need two lines in a narrow strip
    words = spec.sheet_title.split()
    lines, line = [], ""
    for word in words:
        if len(line) + len(word) + 1 > 20 and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    c.setFont("Vera-Bold", 11)
    for i, text in enumerate(lines):
        c.drawString(x + 8, base + 1.5 * INCH - 24 - 13 * i, text)
    if spec.scale_inline:
        _label_value(c, x, base + 0.8 * INCH, w, 0.5 * INCH, spec.scale_label, spec.scale, 9, inline=True)
    else:
        _label_value(c, x, base + 0.8 * INCH, w, 0.5 * INCH, spec.scale_label, spec.scale, 10)
    _label_value(c, x, base + 0.3 * INCH, w, base + 0.3 * INCH - m, spec.number_label, spec.sheet_number, 26)


def drawing_pdf(spec: DrawingSpec) -> bytes:
    """The sheet as a one-page vector PDF with a real text layer."""
    register_pdf_fonts()
    pw, ph = spec.size_in[0] * INCH, spec.size_in[1] * INCH
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(pw, ph), invariant=1, pageCompression=1)
    c.setTitle(f"pagestream drawing {spec.name}")
    c.setLineWidth(2)
    c.rect(0.5 * INCH, 0.5 * INCH, pw - INCH, ph - INCH)
    body_w = pw - (4.8 if spec.layout == "box" else 3.2) * INCH if spec.layout == "strip" else pw
    _body(c, spec, body_w if spec.layout == "strip" else pw - 4.6 * INCH, ph)
    if spec.layout == "box":
        _title_block_box(c, spec, pw, ph)
    else:
        _title_block_strip(c, spec, pw, ph)
    c.showPage()
    c.save()
    return buf.getvalue()


def drawing_scan(spec: DrawingSpec, dpi: int = 200, rotate_degrees: float | None = None) -> bytes:
    """The sheet printed and scanned: a grayscale PNG at ``dpi`` with slight rotation and noise."""
    doc = pdfium.PdfDocument(drawing_pdf(spec))
    try:
        page = doc[0]
        image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        page.close()
    finally:
        doc.close()
    rng = random.Random(spec.seed)
    angle = rotate_degrees if rotate_degrees is not None else rng.choice((-1, 1)) * rng.uniform(0.3, 0.8)
    scanned = add_scan_effects(image, seed=spec.seed, rotate_degrees=angle, noise=0.002, blur=0.5)
    return png_bytes(scanned, dpi)


@dataclass(frozen=True, slots=True)
class GeneratedDrawing:
    """One generated document: bytes, media type and the title-block fields it carries."""

    name: str
    kind: Literal["vector", "scan"]
    data: bytes
    media_type: str
    truth: TitleBlock


def generate_drawings(
    specs: tuple[DrawingSpec, ...] = SPECS, scan_dpis: tuple[int, ...] = (200, 150)
) -> list[GeneratedDrawing]:
    """Every spec as a vector PDF and as a scan (scan dpi alternating through ``scan_dpis``)."""
    out: list[GeneratedDrawing] = []
    for i, spec in enumerate(specs):
        out.append(GeneratedDrawing(spec.name, "vector", drawing_pdf(spec), "application/pdf", spec.truth()))
        dpi = scan_dpis[i % len(scan_dpis)]
        out.append(GeneratedDrawing(spec.name, "scan", drawing_scan(spec, dpi), "image/png", spec.truth()))
    return out
