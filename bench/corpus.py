"""Benchmark inputs, generated deterministically (no downloads): scanned pages, a born-digital PDF,
small upload images."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image
from reportlab.lib.pagesizes import letter

from pagestream._testing.pages import (
    LETTER_LINES,
    REPORT_PAGES,
    add_scan_effects,
    png_bytes,
    register_pdf_fonts,
    text_page_image,
)

#: Sentences the page generator draws body text from (the fixtures' letter and report prose).
_PROSE: tuple[str, ...] = tuple(
    line for line in (*LETTER_LINES, *(ln for page in REPORT_PAGES for ln in page[1:])) if len(line) > 30
)
_HEADINGS: tuple[str, ...] = (
    "Northwind Engineering Ltd.",
    "Quarterly Operations Report",
    "Customer Activity",
    "Outlook",
    "Site Inspection Notes",
    "Structural Review Summary",
)


def page_lines(seed: int) -> list[str]:
    """A full letter-size page of business prose (heading, date, ~30-40 body lines in paragraphs)."""
    rng = random.Random(seed)
    lines = [rng.choice(_HEADINGS), f"Reference NW-{1000 + seed}   {rng.randint(1, 28)} March 2026", ""]
    body = rng.randint(30, 38)
    while body > 0:
        paragraph = rng.randint(3, 6)
        for _ in range(min(paragraph, body)):
            lines.append(rng.choice(_PROSE))
        body -= paragraph
        lines.append("")
    lines.append(f"Page {seed + 1}")
    return lines


def scanned_page(seed: int, dpi: int = 300) -> Image.Image:
    """A realistic scanned text page at ``dpi``: 10-12 pt body, tilted up to ±1.2°, blur, gray paper, speckle."""
    rng = random.Random(1000 + seed)
    clean = text_page_image(page_lines(seed), dpi=dpi, font_pt=rng.choice((10.0, 11.0, 12.0)))
    tilt = round(rng.uniform(-1.2, 1.2), 2)
    return add_scan_effects(clean, seed=seed, rotate_degrees=tilt, noise=0.003, blur=0.5)


def write_scanned_pages(directory: Path, count: int, dpi: int = 300) -> list[Path]:
    """Write ``count`` scanned pages as grayscale PNG (with the dpi recorded); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"page-{i + 1:03d}.png"
        if not path.exists():
            path.write_bytes(png_bytes(scanned_page(i, dpi), dpi=dpi))
        paths.append(path)
    return paths


def born_digital_pdf(pages: int) -> bytes:
    """A ``pages``-page letter-size PDF with a real text layer (reportlab, Vera 11 pt)."""
    from reportlab.pdfgen import canvas

    register_pdf_fonts()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1, pageCompression=1)
    for number in range(1, pages + 1):
        lines = page_lines(number)
        y = 720.0
        c.setFont("Vera-Bold", 16)
        c.drawString(72, y, lines[0])
        y -= 30
        c.setFont("Vera", 11)
        for line in lines[1:]:
            c.drawString(72, y, line)
            y -= 15
        c.setFont("Vera", 9)
        c.drawString(72, 40, f"Page {number} of {pages}")
        c.showPage()
    c.save()
    return buf.getvalue()


def upload_image(target_bytes: int = 100_000) -> bytes:
    """A JPEG scan of a page of about ``target_bytes`` (quality searched; size within ~15 %)."""
    page = scanned_page(0, dpi=150)
    best = b""
    for quality in range(95, 10, -5):
        buf = io.BytesIO()
        page.save(buf, "JPEG", quality=quality, dpi=(150, 150))
        best = buf.getvalue()
        if len(best) <= target_bytes:
            break
    return best
