"""``PageProcessor``: one page from document bytes to a ``PageLayout``.

Text layer when the PDF has a trustworthy one (no OCR spent on born-digital pages);
otherwise render within the pixel budget → straighten small skew (engines that do not) →
repair the image where it needs it (``preprocess``: photos, uneven light, low dpi, speckle) →
recognize → map boxes back onto the page → parse the title block.
"""

from __future__ import annotations

import time

from PIL import Image

from pagestream import titleblock
from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr import render, textlayer
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.preprocess import Preprocessed, PreprocessOptions, preprocess
from pagestream.settings import Settings

#: OSD confidence below which a detected 90/180/270° turn is not trusted (Tesseract's scale).
MIN_ORIENTATION_CONFIDENCE = 2.0
#: Skews smaller than this are left alone: Tesseract reads a page tilted by half a degree as
#: well as a straight one, and turning a 300 dpi page costs a fifth of a second and some sharpness.
MIN_SKEW_DEGREES = 0.5

_TRANSPOSE_CW = {
    90: Image.Transpose.ROTATE_270,  # PIL's ROTATE_* turn counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def rotate_clockwise(image: Image.Image, degrees: int) -> Image.Image:
    """Turn ``image`` clockwise by a multiple of 90°."""
    op = _TRANSPOSE_CW.get(degrees % 360)
    return image.transpose(op) if op is not None else image


class PageProcessor:
    """Turns one page of a document into a ``PageLayout`` with one long-lived engine."""

    def __init__(
        self,
        engine: OcrEngine,
        *,
        dpi: int = 300,
        max_pixels: int = 60_000_000,
        languages: str = "eng",
        deskew: bool = True,
        orientation: bool = True,
        preprocessing: PreprocessOptions | None = None,
    ) -> None:
        self.engine = engine
        self.dpi = dpi
        self.max_pixels = max_pixels
        self.languages = languages
        #: straighten pages (``engine.estimate_skew``) where the engine does not
        self.deskew = deskew
        #: ask ``engine.detect_orientation`` about pages that read badly
        self.orientation = orientation
        #: image repair before OCR; on by default for engines that want it (Tesseract)
        self.preprocessing = preprocessing or PreprocessOptions()

    @classmethod
    def from_settings(cls, engine: OcrEngine, settings: Settings) -> PageProcessor:
        """A processor configured as the OCR workers run it (dpi, pixel budget, languages, preprocessing)."""
        return cls(
            engine,
            dpi=settings.ocr_dpi,
            max_pixels=settings.ocr_max_page_pixels,
            languages=settings.ocr_languages,
            preprocessing=PreprocessOptions.from_flags(
                settings.ocr_preprocess, settings.ocr_preprocess_disable
            ),
        )

    def start(self) -> None:
        """Start the engine (load models, connect)."""
        self.engine.start()

    def close(self) -> None:
        """Close the engine."""
        self.engine.close()

    def __enter__(self) -> PageProcessor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count_pages(self, data: bytes, media_type: str, password: str | None = None) -> int:
        """Number of pages of the document."""
        return count_pages(data, media_type, password)

    def process(
        self,
        data: bytes,
        media_type: str,
        page_number: int,
        *,
        force_ocr: bool = False,
        password: str | None = None,
        languages: str | None = None,
    ) -> PageLayout:
        """Text layer if usable (and not ``force_ocr``), else OCR; ``page_number`` is 1-based.

        ``languages`` (e.g. ``"deu+eng"``, a document's option) overrides the processor's default
        for this page; a language without installed data fails with the (non-retryable)
        ``LanguageNotInstalledError``. ``render_seconds`` covers decoding/rendering, orientation,
        deskew and preprocessing; ``ocr_seconds`` the recognition itself. Boxes are in the
        pixels of the page as rendered (turned upright and straightened, when it was), whatever
        preprocessing did to the image the engine saw.
        """
        languages = languages or self.languages
        started = time.perf_counter()
        if render.document_kind(data, media_type) == "pdf":
            with render.pdf_page(data, page_number, password) as page:
                if not force_ocr:
                    layout = textlayer.extract(page)
                    if textlayer.is_usable(layout, page):
                        layout = layout.model_copy(update={"render_seconds": time.perf_counter() - started})
                        return _with_title_block(layout)
                rendered = render.render_pdf_page(page, self.dpi, self.max_pixels)
        else:
            rendered = render.render_page(data, media_type, page_number, self.dpi, self.max_pixels)
        image, skew = self.straighten(rendered.image)
        prepared = self._preprocess(image, rendered.dpi_used)
        render_seconds = time.perf_counter() - started

        ocr_started = time.perf_counter()
        layout = self._recognize(prepared, image, languages, rendered.dpi_used)
        ocr_seconds = time.perf_counter() - ocr_started
        rotation = 0
        # Orientation detection and our own deskew cost up to half a recognition, and nearly
        # every page is upright and read well as it is: only a page that read badly is
        # turned (OSD) and straightened, then read again, and the better reading kept.
        if _reads_badly(layout):
            fix_started = time.perf_counter()
            degrees = 0
            if self.orientation:
                found, confidence = self.engine.detect_orientation(rendered.image)
                if found % 360 and confidence >= MIN_ORIENTATION_CONFIDENCE:
                    degrees = found % 360
            turned = rotate_clockwise(rendered.image, degrees)
            straight, turned_skew = self.straighten(turned, even_if_engine_corrects=True)
            if degrees or turned_skew:
                again_prepared = self._preprocess(straight, rendered.dpi_used)
                render_seconds += time.perf_counter() - fix_started
                ocr_started = time.perf_counter()
                again = self._recognize(again_prepared, straight, languages, rendered.dpi_used)
                ocr_seconds += time.perf_counter() - ocr_started
                if _score(again) > _score(layout):
                    layout, rotation, skew = again, degrees, turned_skew or again.skew_degrees
            else:
                render_seconds += time.perf_counter() - fix_started
        layout = layout.model_copy(
            update={
                "rotation": rotation,
                "skew_degrees": skew or layout.skew_degrees,
                "dpi": rendered.dpi_used,
                "render_seconds": render_seconds,
                "ocr_seconds": ocr_seconds,
            }
        )
        return _with_title_block(layout)

    def _preprocess(self, image: Image.Image, dpi: float | None) -> Preprocessed | None:
        if not (self.preprocessing.enabled and self.engine.wants_preprocessing):
            return None
        return preprocess(image, dpi, self.preprocessing)

    def _recognize(
        self, prepared: Preprocessed | None, image: Image.Image, languages: str, dpi: float | None
    ) -> PageLayout:
        """Recognize ``image`` (as prepared, when it was); boxes come back in the pixels of ``image``."""
        if prepared is None:
            return self.engine.recognize(image, languages=languages, dpi=dpi)
        layout = self.engine.recognize(prepared.image, languages=languages, dpi=prepared.dpi)
        if prepared.changed:
            layout = map_layout(layout, prepared, image.width, image.height)
        return layout.model_copy(update={"preprocessing": prepared.record})

    def straighten(
        self, image: Image.Image, *, even_if_engine_corrects: bool = False
    ) -> tuple[Image.Image, float]:
        """Remove small skew: ``(image, measured tilt in degrees, counter-clockwise positive)``.

        Skipped for engines that correct skew themselves, unless a first reading went badly.
        """
        if not self.deskew or (self.engine.corrects_skew and not even_if_engine_corrects):
            return image, 0.0
        correction = self.engine.estimate_skew(image)
        if abs(correction) < MIN_SKEW_DEGREES:
            return image, 0.0
        return image.rotate(
            correction, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
        ), -correction


#: A page whose words average below this confidence (0–100) is checked for orientation.
ORIENTATION_CHECK_BELOW_CONFIDENCE = 70.0


def _reads_badly(layout: PageLayout) -> bool:
    """Few words, or low confidence: the symptoms of a page read sideways or upside down."""
    words = layout.words()
    return len(words) < 8 or (layout.mean_confidence or 0.0) < ORIENTATION_CHECK_BELOW_CONFIDENCE


def _score(layout: PageLayout) -> float:
    """Confidence-weighted amount of text: higher for the better of two readings."""
    return sum(w.confidence * len(w.text) for w in layout.words())


def map_layout(layout: PageLayout, prepared: Preprocessed, width: int, height: int) -> PageLayout:
    """``layout`` of ``prepared.image`` with every box mapped into the ``width``×``height`` input image."""

    def box(b: Box) -> Box:
        x0, y0, x1, y1 = prepared.map_box(b.x0, b.y0, b.x1, b.y1)
        x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
        y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
        return Box.from_pixels(round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1), width, height)

    blocks = [
        Block(
            text=b.text,
            box=box(b.box),
            lines=[
                Line(
                    text=ln.text,
                    box=box(ln.box),
                    words=[Word(text=w.text, box=box(w.box), confidence=w.confidence) for w in ln.words],
                )
                for ln in b.lines
            ],
        )
        for b in layout.blocks
    ]
    return layout.model_copy(update={"blocks": blocks, "width": width, "height": height})


def _with_title_block(layout: PageLayout) -> PageLayout:
    block = titleblock.parse(layout)
    # One field alone is usually prose that mentions a sheet ("see S-201"), not a title block.
    if sum(1 for v in (block.sheet_number, block.sheet_title, block.scale) if v) >= 2:
        return layout.model_copy(update={"title_block": block})
    return layout


def count_pages(data: bytes, media_type: str, password: str | None = None) -> int:
    """Number of pages of a PDF or image document."""
    return render.page_count(data, media_type, password)
