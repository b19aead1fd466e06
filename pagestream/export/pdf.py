"""Searchable PDF from the stored layout: no OCR is run again.

- PDF input: every page is kept as it is (same objects, same size, same ``/Rotate``); a page
  that was OCRed gets an invisible text layer (render mode 3) grafted on top, a word at each
  stored word box, so it is selectable and searchable in any viewer. Born-digital pages
  (their own text layer was used) and pages without a result are left untouched.
- Image input (PNG, JPEG, TIFF, …): one page per image page, the original pixels drawn at the
  image's resolution (300 dpi if it declares none), with the same invisible text layer.
- A page the engine had to turn to read it (scanned sideways) is shown turned upright, by its
  ``/Rotate`` alone, the way OCRmyPDF's ``--rotate-pages`` does: the text layer then reads in
  order in every viewer and extractor.

The text layer is written with reportlab in an embedded subset of Bitstream Vera (shipped in
the reportlab wheel) with a ToUnicode map, so extraction gives back the stored characters.
Characters outside Vera's repertoire (Latin-1 and a little more; e.g. CJK) are left out of the
layer; hOCR, ALTO and the JSON layout keep them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageOps

from pagestream.export.errors import ExportError, SourceUnreadableError
from pagestream.export.geometry import Affine, AnalysedToPage, invert
from pagestream.export.source import SourceDocument
from pagestream.layout import Line, PageLayout
from pagestream.ocr import render
from pagestream.ocr.errors import UnreadablePageError

FONT_NAME = "PagestreamText"
#: resolution assumed for an image that declares none (a typical scan)
DEFAULT_IMAGE_DPI = 300.0
#: the baseline sits this share of the line height above the line box's bottom (descenders)
_DESCENT = 0.2


@cache
def _font() -> str:
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    pdfmetrics.registerFont(TTFont(FONT_NAME, str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")))
    return FONT_NAME


def _text_width(text: str) -> float:
    from reportlab.pdfbase import pdfmetrics

    return pdfmetrics.stringWidth(text, _font(), 1.0) or 0.5 * len(text)


def _draw_text_layer(canvas: object, layout: PageLayout, page_width: float, page_height: float) -> int:
    """Draw ``layout``'s words invisibly on a reportlab canvas of the displayed page; the word count."""
    to_page = AnalysedToPage.for_layout(layout, page_width, page_height)
    text = canvas.beginText()  # type: ignore[attr-defined]
    text.setTextRenderMode(3)
    text.setFont(_font(), 1.0)
    drawn = 0
    for block in layout.blocks:
        for line in block.lines:
            drawn += _draw_line(text, line, to_page)
    canvas.drawText(text)  # type: ignore[attr-defined]
    return drawn


def _draw_line(text: object, line: Line, to_page: AnalysedToPage) -> int:
    words = [w for w in line.words if w.text.strip()]
    if not words:
        return 0
    # one baseline and size per line, so viewers and pdftotext keep the line's words together
    top, bottom = line.box.y0, line.box.y1
    size = max(1.0, bottom - top)
    baseline = bottom - _DESCENT * size
    drawn = 0
    for i, word in enumerate(words):
        x0, x1 = word.box.x0, max(word.box.x1, word.box.x0 + 1.0)
        ox, oy = to_page.point(x0, baseline)
        ex, ey = to_page.point(x1, baseline)
        tx, ty = to_page.point(x0, baseline - size)
        # a space after every word but the last: extraction then separates words by itself
        content = word.text.strip() + (" " if i < len(words) - 1 else "")
        natural = _text_width(word.text.strip())
        ax, ay = (ex - ox) / natural, (ey - oy) / natural
        cx, cy = tx - ox, ty - oy
        if not all(map(math.isfinite, (ax, ay, cx, cy, ox, oy))):
            continue
        text.setTextTransform(ax, ay, cx, cy, ox, oy)  # type: ignore[attr-defined]
        text.textOut(content)  # type: ignore[attr-defined]
        drawn += 1
    return drawn


def _new_canvas(buf: io.BytesIO) -> object:
    from reportlab.pdfgen import canvas

    # reportlab starts every page by selecting its initial font: make it ours, or the page
    # would name a font (Helvetica) that pdfium drops from the grafted layer as unused
    c = canvas.Canvas(buf, pageCompression=1, invariant=1, initialFontName=_font(), initialFontSize=1)
    c.setCreator("pagestream")
    c.setProducer("pagestream")
    return c


def _display_to_user(page: pdfium.PdfPage) -> Affine:
    """Points of the displayed page (origin bottom-left) → the page's user space (``/Rotate``, crop box)."""
    left, bottom, right, top = page.get_cropbox()
    w, h = right - left, top - bottom
    rotation = page.get_rotation() % 360
    disp_h = w if rotation in (90, 270) else h

    def forward(x: float, y: float) -> tuple[float, float]:
        ux, uy = x - left, y - bottom
        if rotation == 90:
            dx, dy = uy, ux
        elif rotation == 180:
            dx, dy = w - ux, uy
        elif rotation == 270:
            dx, dy = h - uy, w - ux
        else:
            dx, dy = ux, h - uy
        return dx, disp_h - dy  # top-left origin → bottom-left origin

    o, e1, e2 = forward(0, 0), forward(1, 0), forward(0, 1)
    user_to_display: Affine = (e1[0] - o[0], e1[1] - o[1], e2[0] - o[0], e2[1] - o[1], o[0], o[1])
    return invert(user_to_display)


def _ocr_pages(source: SourceDocument) -> dict[int, PageLayout]:
    return {
        p.page_number: p.layout
        for p in source.pages
        if p.layout is not None and p.layout.source == "ocr" and p.layout.words()
    }


def _pdf_output(source: SourceDocument, password: str | None, upright: bool) -> bytes:
    try:
        doc = render.open_pdf(source.data, password)
    except UnreadablePageError as e:
        raise SourceUnreadableError(str(e)) from e
    try:
        layouts = {n: lay for n, lay in _ocr_pages(source).items() if 1 <= n <= len(doc)}
        if layouts:
            order = sorted(layouts)
            sizes = {n: doc[n - 1].get_size() for n in order}  # displayed size (rotation applied)
            buf = io.BytesIO()
            canvas = _new_canvas(buf)
            for n in order:
                width, height = sizes[n]
                canvas.setPageSize((width, height))  # type: ignore[attr-defined]
                _draw_text_layer(canvas, layouts[n], width, height)
                canvas.showPage()  # type: ignore[attr-defined]
            canvas.save()  # type: ignore[attr-defined]
            layer_doc = pdfium.PdfDocument(buf.getvalue())
            try:
                for i, n in enumerate(order):
                    page = doc[n - 1]
                    xobject = layer_doc.page_as_xobject(i, doc)
                    layer = xobject.as_pageobject()
                    layer.transform(pdfium.PdfMatrix(*_display_to_user(page)))
                    page.insert_obj(layer)
                    page.gen_content()
                    if upright and layouts[n].rotation % 360:
                        page.set_rotation((page.get_rotation() + layouts[n].rotation) % 360)
            finally:
                layer_doc.close()
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
    finally:
        doc.close()


def _image_frames(data: bytes) -> Iterable[Image.Image]:
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, render.DEFAULT_MAX_SOURCE_PIXELS)
    try:
        image = Image.open(io.BytesIO(data))
        count = max(1, int(getattr(image, "n_frames", 1))) if image.format == "TIFF" else 1
        for i in range(count):
            image.seek(i)
            frame = ImageOps.exif_transpose(image.copy()) or image.copy()
            frame.info.setdefault("dpi", image.info.get("dpi"))
            yield frame
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise SourceUnreadableError(f"the stored image cannot be decoded: {e}") from e


def _printable(frame: Image.Image) -> Image.Image:
    if frame.mode in ("1", "L", "RGB", "CMYK"):
        return frame
    if frame.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return frame.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    rgba = frame.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _image_dpi(frame: Image.Image) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in frame.info.get("dpi") or ())  # TIFF gives IFDRational values
    except (TypeError, ValueError):
        return DEFAULT_IMAGE_DPI, DEFAULT_IMAGE_DPI
    if 50 <= x <= 4800 and 50 <= y <= 4800:
        return x, y
    return DEFAULT_IMAGE_DPI, DEFAULT_IMAGE_DPI


def _image_output(source: SourceDocument, upright: bool) -> bytes:
    from reportlab.lib.utils import ImageReader

    layouts = _ocr_pages(source)
    buf = io.BytesIO()
    canvas = _new_canvas(buf)
    for n, frame in enumerate(_image_frames(source.data), start=1):
        xdpi, ydpi = _image_dpi(frame)
        width, height = frame.width * 72.0 / xdpi, frame.height * 72.0 / ydpi
        canvas.setPageSize((width, height))  # type: ignore[attr-defined]
        canvas.drawImage(ImageReader(_printable(frame)), 0, 0, width, height)  # type: ignore[attr-defined]
        if n in layouts:
            _draw_text_layer(canvas, layouts[n], width, height)
        canvas.showPage()  # type: ignore[attr-defined]
    canvas.save()  # type: ignore[attr-defined]
    turns = {n: lay.rotation % 360 for n, lay in layouts.items() if lay.rotation % 360} if upright else {}
    if not turns:
        return buf.getvalue()
    # reportlab swaps the media box of a turned page; pdfium sets /Rotate alone
    doc = pdfium.PdfDocument(buf.getvalue())
    try:
        for n, degrees in turns.items():
            if n <= len(doc):
                doc[n - 1].set_rotation(degrees)
        out = io.BytesIO()
        doc.save(out)
        return out.getvalue()
    finally:
        doc.close()


def searchable_pdf(source: SourceDocument, *, password: str | None = None, upright: bool = True) -> bytes:
    """The document as a PDF whose OCRed pages carry an invisible, selectable text layer.

    ``upright``: a page the engine had to turn to read (``layout.rotation``) is shown turned the
    same way (its ``/Rotate`` changes; its content and media box do not). ``password`` opens an
    encrypted source PDF (the output is written unencrypted).
    """
    try:
        if render.document_kind(source.data, source.media_type) == "pdf":
            return _pdf_output(source, password, upright)
        return _image_output(source, upright)
    except (pdfium.PdfiumError, MemoryError) as e:
        raise ExportError(f"the searchable PDF could not be written: {e}") from e
