"""Benchmark inputs, generated deterministically (no downloads): scanned pages, a born-digital PDF,
small upload images."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image
from reportlab.lib.pagesizes import letter

from pagestream._testing.pages import (
    LETTER_LINES,
    REPORT_PAGES,
    add_scan_effects,
    normalize_text,
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


#: The page's size and margins as ``text_page_image`` lays it out (inches).
_PAGE_HEIGHT_IN = 11.0
_TOP_MARGIN_IN = 1.0
#: Text stops this far above the bottom edge: nothing is cut off, so the page's text is known exactly.
_BOTTOM_MARGIN_IN = 0.6


def _font_pt(seed: int) -> float:
    return random.Random(1000 + seed).choice((10.0, 11.0, 12.0))


def fitted_lines(seed: int, dpi: int = 300) -> list[str]:
    """``page_lines(seed)`` as far as they fit on the page above its bottom margin (a 12 pt page
    holds fewer lines than a 10 pt one): exactly the lines ``scanned_page`` draws."""
    size_px = max(6, round(_font_pt(seed) * dpi / 72))
    leading = round(size_px * 1.45)
    room = int((_PAGE_HEIGHT_IN - _TOP_MARGIN_IN - _BOTTOM_MARGIN_IN) * dpi)
    lines = page_lines(seed)
    return lines[: max(1, (room - size_px) // leading + 1)]


def page_text(seed: int) -> str:
    """The text printed on ``scanned_page(seed)``, one line per line: the reference for CER."""
    return "\n".join(line for line in fitted_lines(seed) if line)


def scanned_page(seed: int, dpi: int = 300) -> Image.Image:
    """A realistic scanned text page at ``dpi``: 10-12 pt body, tilted up to ±1.2°, blur, gray paper, speckle."""
    rng = random.Random(1000 + seed)
    font_pt = rng.choice((10.0, 11.0, 12.0))
    clean = text_page_image(fitted_lines(seed, dpi), dpi=dpi, font_pt=font_pt, margin_in=_TOP_MARGIN_IN)
    tilt = round(rng.uniform(-1.2, 1.2), 2)
    return add_scan_effects(clean, seed=seed, rotate_degrees=tilt, noise=0.003, blur=0.5)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (Levenshtein distance / reference length, after ``normalize_text``), as
    ``pagestream._testing.pages.cer`` computes it, vectorized: a page is ~2,500 characters, and the
    pure-Python table of 6 million cells per page would take longer than reading the page.

    Each row of the edit table is ``min(deletion, substitution)`` followed by the insertions, which
    are a running minimum: ``row[j] = j + min_{k<=j}(row'[k] - k)``.
    """
    ref = np.frombuffer(normalize_text(reference).encode("utf-32-le"), dtype=np.uint32)
    hyp = np.frombuffer(normalize_text(hypothesis).encode("utf-32-le"), dtype=np.uint32)
    if ref.size == 0:
        return 0.0 if hyp.size == 0 else 1.0
    index = np.arange(hyp.size + 1)
    previous = index.copy()
    row = np.empty_like(previous)
    for i, char in enumerate(ref, start=1):
        row[0] = i
        np.minimum(previous[1:] + 1, previous[:-1] + (hyp != char), out=row[1:])
        previous = np.minimum.accumulate(row - index) + index
    return float(previous[-1]) / ref.size


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


def text_of(path: Path) -> str:
    """The known text of a page written by ``write_scanned_pages`` (``page-007.png`` is seed 6)."""
    return page_text(int(path.stem.rsplit("-", 1)[1]) - 1)


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
