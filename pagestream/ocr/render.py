"""Open documents from bytes and render one page as a grayscale image within a pixel budget.

PDFs go through pypdfium2; images through Pillow. Page numbers are 1-based. Multi-page TIFFs
have one page per frame; animated GIF/WebP are one page (the first frame): their frames are
animation, not pages.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageOps, UnidentifiedImageError

from pagestream.ocr.errors import UnreadablePageError

DocumentKind = Literal["pdf", "image"]

PDF_MEDIA_TYPES = frozenset({"application/pdf", "application/x-pdf"})
IMAGE_MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/tiff",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
    }
)
#: Default decompression-bomb limit: 4× the default page budget of 60 MP.
DEFAULT_MAX_SOURCE_PIXELS = 240_000_000
#: Formats whose frames are pages (the others: first frame only).
_MULTIPAGE_FORMATS = frozenset({"TIFF"})


class EncryptedDocumentError(UnreadablePageError):
    """The PDF is password-protected and no (or a wrong) password was given; resubmit with one."""

    reason = "encrypted_document"


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A rendered page: grayscale ``image``, its effective ``dpi_used`` (``None`` if unknown) and
    ``scale``: image pixels per source unit (PDF point, or pixel of the source image)."""

    image: Image.Image
    dpi_used: float | None
    scale: float


def document_kind(data: bytes, media_type: str) -> DocumentKind:
    """``"pdf"`` or ``"image"`` from the media type, sniffing the bytes when it is generic."""
    mt = (media_type or "").split(";")[0].strip().lower()
    if mt in PDF_MEDIA_TYPES:
        return "pdf"
    if mt in IMAGE_MEDIA_TYPES:
        return "image"
    if data[:1024].lstrip().startswith(b"%PDF") or b"%PDF-" in data[:1024]:
        return "pdf"
    return "image"


# --- PDF ---
def open_pdf(data: bytes, password: str | None = None) -> pdfium.PdfDocument:
    """Open a PDF from bytes; ``EncryptedDocumentError`` on a missing or wrong password."""
    try:
        return pdfium.PdfDocument(data, password=password)
    except pdfium.PdfiumError as e:
        if getattr(e, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            if password:
                raise EncryptedDocumentError(
                    "the password given for this encrypted PDF is wrong; resubmit with the correct password"
                ) from e
            raise EncryptedDocumentError("PDF is encrypted; resubmit with `password`") from e
        raise UnreadablePageError(
            f"not a readable PDF ({e}); check the file is not truncated or corrupt"
        ) from e


@contextmanager
def pdf_page(data: bytes, page_number: int, password: str | None = None) -> Iterator[pdfium.PdfPage]:
    """Open one page (1-based) of a PDF, closing page and document afterwards."""
    doc = open_pdf(data, password)
    try:
        count = len(doc)
        if not 1 <= page_number <= count:
            raise UnreadablePageError(f"page {page_number} does not exist: the PDF has {count} page(s)")
        page = doc[page_number - 1]
        try:
            yield page
        finally:
            page.close()
    finally:
        doc.close()


def fit_scale(width: float, height: float, scale: float, max_pixels: int) -> float:
    """Largest scale ≤ ``scale`` at which a ``width``×``height`` page stays within ``max_pixels``."""
    area = max(width, 1e-6) * max(height, 1e-6)
    if area * scale * scale <= max_pixels:
        return scale
    return math.sqrt(max_pixels / area) * 0.999


def render_pdf_page(page: pdfium.PdfPage, dpi: float = 300, max_pixels: int = 60_000_000) -> RenderedPage:
    """Render an open PDF page in grayscale at ``dpi``, lowered so the page fits ``max_pixels``."""
    width, height = page.get_size()
    if width <= 0 or height <= 0:
        raise UnreadablePageError("the PDF page has an empty media box")
    scale = fit_scale(width, height, dpi / 72.0, max_pixels)
    try:
        bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=True)
        image = bitmap.to_pil()
    except (pdfium.PdfiumError, MemoryError) as e:
        raise UnreadablePageError(f"the PDF page could not be rendered: {e}") from e
    if image.mode != "L":
        image = image.convert("L")
    return RenderedPage(image=image, dpi_used=scale * 72.0, scale=scale)


# --- images ---
@contextmanager
def _open_image(data: bytes, max_source_pixels: int) -> Iterator[Image.Image]:
    # Pillow's decompression-bomb guard is process-wide (warns above MAX_IMAGE_PIXELS, errors
    # above 2×). Keep it on, derived from our budget, and refuse above the limit ourselves.
    Image.MAX_IMAGE_PIXELS = max(1, max_source_pixels)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise UnreadablePageError(
            f"image is too large to decode safely (limit {max_source_pixels} pixels); {e}"
        ) from e
    except UnidentifiedImageError as e:
        raise UnreadablePageError(
            "not a readable image: unsupported format or corrupt data (PDF, PNG, JPEG, TIFF, GIF, WebP, BMP)"
        ) from e
    except (OSError, ValueError, SyntaxError) as e:
        raise UnreadablePageError(f"not a readable image: {e}") from e
    try:
        if image.width * image.height > max_source_pixels:
            raise UnreadablePageError(
                f"image is {image.width}×{image.height} pixels, more than the {max_source_pixels} allowed"
            )
        yield image
    finally:
        image.close()


def _frame_count(image: Image.Image) -> int:
    if image.format in _MULTIPAGE_FORMATS:
        return max(1, int(getattr(image, "n_frames", 1)))
    return 1


def _to_gray(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L") if image.mode != "L" else image


def _render_image(data: bytes, page_number: int, max_pixels: int, max_source_pixels: int) -> RenderedPage:
    with _open_image(data, max_source_pixels) as image:
        count = _frame_count(image)
        if not 1 <= page_number <= count:
            raise UnreadablePageError(f"page {page_number} does not exist: the image has {count} page(s)")
        try:
            if page_number > 1:
                image.seek(page_number - 1)
            source_w, source_h = image.size
            scale = fit_scale(source_w, source_h, 1.0, max_pixels)
            if scale < 1.0 and image.format == "JPEG":
                # Decode a reduced JPEG directly (DCT scaling): never holds the full-size pixels.
                image.draft("L", (int(source_w * scale), int(source_h * scale)))
            frame = image.copy() if image.format in _MULTIPAGE_FORMATS else image
            frame.load()
            xdpi = frame.info.get("dpi", (0, 0))[0] if isinstance(frame.info.get("dpi"), tuple) else 0
            frame = ImageOps.exif_transpose(frame) or frame
            gray = _to_gray(frame)
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise UnreadablePageError(f"the image could not be decoded: {e}") from e
        except Image.DecompressionBombError as e:
            raise UnreadablePageError(f"image is too large to decode safely: {e}") from e
        if gray.width * gray.height > max_pixels:
            factor = fit_scale(gray.width, gray.height, 1.0, max_pixels)
            gray = gray.resize(
                (max(1, int(gray.width * factor)), max(1, int(gray.height * factor))),
                Image.Resampling.LANCZOS,
            )
        scale = max(gray.width, gray.height) / max(source_w, source_h)
        dpi_used = float(xdpi) * scale if xdpi and 100 <= float(xdpi) <= 2400 else None
        return RenderedPage(image=gray, dpi_used=dpi_used, scale=scale)


# --- public entry points ---
def page_count(data: bytes, media_type: str, password: str | None = None) -> int:
    """Number of pages in a PDF or image document (TIFF frames count; GIF/WebP animation does not)."""
    if document_kind(data, media_type) == "pdf":
        doc = open_pdf(data, password)
        try:
            return len(doc)
        finally:
            doc.close()
    with _open_image(data, DEFAULT_MAX_SOURCE_PIXELS) as image:
        return _frame_count(image)


def render_page(
    data: bytes,
    media_type: str,
    page_number: int,
    dpi: float = 300,
    max_pixels: int = 60_000_000,
    password: str | None = None,
    *,
    max_source_pixels: int | None = None,
) -> RenderedPage:
    """Render page ``page_number`` (1-based) in grayscale, never above ``max_pixels`` pixels.

    PDF pages render at ``dpi``, lowered for pages too big for the budget; images larger than
    the budget are downscaled. Images declaring more than ``max_source_pixels`` (default 4×
    the budget) are refused as decompression bombs (``UnreadablePageError``).
    """
    if document_kind(data, media_type) == "pdf":
        with pdf_page(data, page_number, password) as page:
            return render_pdf_page(page, dpi, max_pixels)
    return _render_image(data, page_number, max_pixels, max_source_pixels or 4 * max_pixels)
