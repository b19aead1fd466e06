"""Deterministic text pages with known text: scanned-looking images, born-digital and broken PDFs.

No downloads: fonts come from the reportlab wheel (Bitstream Vera), randomness from seeded RNGs.
"""

from __future__ import annotations

import io
import random
from functools import cache
from pathlib import Path

import reportlab
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont
from reportlab.lib.pagesizes import letter
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

FONT_DIR = Path(reportlab.__file__).parent / "fonts"
FONT_REGULAR = FONT_DIR / "Vera.ttf"
FONT_BOLD = FONT_DIR / "VeraBd.ttf"

LETTER_LINES: tuple[str, ...] = (
    "Northwind Engineering Ltd.",
    "14 Harbour Street, Portsmouth PO1 3AX",
    "",
    "12 March 2026",
    "",
    "Dear Ms. Alvarez,",
    "",
    "Thank you for sending the revised foundation drawings for the library",
    "extension. We reviewed sheets S-101 through S-304 and the soil report",
    "dated 2 February. The bearing capacity assumed in the calculations is",
    "consistent with the borehole results, and the proposed pad footings",
    "are adequate for the column loads shown on the schedule.",
    "",
    "Two points need attention before the drawings are issued for tender.",
    "First, the retaining wall along grid line C should be checked for the",
    "surcharge from the delivery yard. Second, the slab thickness on sheet",
    "S-201 does not match the specification, which calls for 200 mm.",
    "",
    "Please let us know when the updated set is available. We expect to",
    "complete our review within five working days of receiving it.",
    "",
    "Yours sincerely,",
    "",
    "Jonathan Reeve, Chartered Structural Engineer",
)

REPORT_PAGES: tuple[tuple[str, ...], ...] = (
    (
        "Quarterly Operations Report",
        "Prepared for the Board of Directors, Second Quarter 2026",
        "Summary",
        "Revenue grew by eleven percent compared with the first quarter,",
        "driven mainly by the document processing service. Operating costs",
        "remained flat because the new scanning centre replaced two older sites.",
    ),
    (
        "Customer Activity",
        "The number of active customers rose from 1,240 to 1,388. Average",
        "monthly volume per customer was 4,310 pages, of which 62 percent were",
        "born-digital documents that needed no optical character recognition.",
        "Support requests fell by a fifth after the status page was introduced.",
    ),
    (
        "Outlook",
        "We expect volumes to keep growing through the third quarter. The main",
        "risks are the cost of cloud recognition services and the delivery time",
        "of new scanners. A detailed budget will be presented in September.",
    ),
)


@cache
def font(size_px: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """The bundled Vera font at a pixel size."""
    return ImageFont.truetype(str(FONT_BOLD if bold else FONT_REGULAR), size_px)


def register_pdf_fonts() -> None:
    """Register Vera / Vera-Bold with reportlab (idempotent)."""
    if "Vera" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("Vera", str(FONT_REGULAR)))
        pdfmetrics.registerFont(TTFont("Vera-Bold", str(FONT_BOLD)))


def text_page_image(
    lines: tuple[str, ...] | list[str],
    *,
    dpi: int = 300,
    size_in: tuple[float, float] = (8.5, 11.0),
    font_pt: float = 11.0,
    margin_in: float = 1.0,
) -> Image.Image:
    """A clean grayscale page with ``lines`` typeset top-left at ``dpi``."""
    width, height = int(size_in[0] * dpi), int(size_in[1] * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size_px = max(6, round(font_pt * dpi / 72))
    leading = round(size_px * 1.45)
    x = y = int(margin_in * dpi)
    for line in lines:
        if line:
            draw.text((x, y), line, font=font(size_px), fill=0)
        y += leading
    return image


def add_scan_effects(
    image: Image.Image, *, seed: int = 0, rotate_degrees: float = 0.0, noise: float = 0.004, blur: float = 0.6
) -> Image.Image:
    """Make a clean page look scanned: slight rotation, blur, gray paper, speckle noise (deterministic)."""
    rng = random.Random(seed)
    out = image.convert("L")
    if rotate_degrees:
        out = out.rotate(rotate_degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    if blur:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    # Paper is not white and toner is not black.
    out = out.point(lambda v: 28 + v * (236 - 28) // 255)
    if noise:
        raw = Image.frombytes("L", out.size, rng.randbytes(out.width * out.height))
        dark_cut = int(255 * noise / 2)
        specks_dark = raw.point(lambda v: 40 if v < dark_cut else 255)
        specks_light = raw.point(lambda v: 255 if v > 255 - dark_cut else 0)
        out = ImageChops.lighter(ImageChops.darker(out, specks_dark), specks_light)
    return out


def scanned_letter(seed: int = 7) -> tuple[Image.Image, str]:
    """A 300 dpi letter page, rotated ~1°, noisy; returns the image and its text."""
    clean = text_page_image(LETTER_LINES, dpi=300, font_pt=11)
    return add_scan_effects(clean, seed=seed, rotate_degrees=1.0), "\n".join(ln for ln in LETTER_LINES if ln)


def png_bytes(image: Image.Image, dpi: int | None = None) -> bytes:
    """Encode an image as PNG (optionally recording its dpi)."""
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, **({"dpi": (dpi, dpi)} if dpi else {}))
    return buf.getvalue()


def _deterministic_canvas(buf: io.BytesIO, pagesize: tuple[float, float]) -> canvas.Canvas:
    c = canvas.Canvas(buf, pagesize=pagesize, invariant=1, pageCompression=1)
    c.setAuthor("pagestream")
    c.setTitle("pagestream test document")
    return c


def born_digital_pdf() -> tuple[bytes, list[str]]:
    """A 3-page letter-size PDF with a real text layer; returns bytes and each page's text."""
    register_pdf_fonts()
    buf = io.BytesIO()
    c = _deterministic_canvas(buf, letter)
    texts = []
    for number, lines in enumerate(REPORT_PAGES, start=1):
        y = 720.0
        c.setFont("Vera-Bold", 18)
        c.drawString(72, y, lines[0])
        y -= 36
        c.setFont("Vera", 11)
        for line in lines[1:]:
            c.drawString(72, y, line)
            y -= 16
        c.setFont("Vera", 9)
        c.drawString(72, 40, f"Page {number} of {len(REPORT_PAGES)}")
        c.showPage()
        texts.append("\n".join([*lines, f"Page {number} of {len(REPORT_PAGES)}"]))
    c.save()
    return buf.getvalue(), texts


def _image_page_pdf(image: Image.Image, draw_text: str | None, garbage: bool) -> bytes:
    register_pdf_fonts()
    buf = io.BytesIO()
    c = _deterministic_canvas(buf, letter)
    png = io.BytesIO()
    image.save(png, "PNG")
    png.seek(0)
    from reportlab.lib.utils import ImageReader

    c.drawImage(ImageReader(png), 0, 0, width=letter[0], height=letter[1])
    if garbage:
        # An invisible "OCR" layer whose glyphs map to nothing: pdfium reads U+FFFD.
        t = c.beginText(72, 700)
        t.setTextRenderMode(3)
        t.setFont("Vera", 11)
        rng = random.Random(3)
        for _ in range(20):
            t.textLine(
                "".join(chr(0xE000 + rng.randrange(200)) if rng.random() > 0.15 else " " for _ in range(60))
            )
        c.drawText(t)
    if draw_text:
        c.setFont("Vera", 8)
        c.drawString(36, 20, draw_text)
    c.showPage()
    c.save()
    return buf.getvalue()


def garbage_text_layer_pdf() -> tuple[bytes, str]:
    """A scanned page (image) whose invisible text layer is unmapped garbage; returns bytes and real text."""
    lines = LETTER_LINES[:12]
    image = text_page_image(lines, dpi=200, font_pt=12)
    return _image_page_pdf(image, None, garbage=True), "\n".join(ln for ln in lines if ln)


def image_only_pdf_with_stamp() -> tuple[bytes, str]:
    """A scanned page (full-page image) with only a tiny real text stamp; returns bytes and image text."""
    lines = LETTER_LINES[6:14]
    image = text_page_image(lines, dpi=200, font_pt=12)
    return _image_page_pdf(image, "Scanned 2026-03-12", garbage=False), "\n".join(ln for ln in lines if ln)


def normalize_text(text: str) -> str:
    """Collapse whitespace and unify quotes, for comparing recognized text with ground truth."""
    table = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-"})
    return " ".join(text.translate(table).split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance / reference length, after ``normalize_text``."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hc in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (rc != hc))
        previous = current
    return previous[-1] / len(ref)
