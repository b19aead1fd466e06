"""``TesseractEngine``: the default local engine, adapting ``_tesseract`` to the ``OcrEngine`` contract."""

from __future__ import annotations

import time
from typing import ClassVar

import tesserocr
from PIL import Image

from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr._tesseract import RawWord, TessApi, library_version, resolve_osd, resolve_tessdata
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError, OcrError, PageTimeoutError

#: OSD works on the text's shape, not on its fine detail: bigger images only cost time.
_OSD_MAX_SIDE = 1600  # OSD needs letter shapes, not 300 dpi detail; a third of the pixels
#: Language sets other than the engine's default kept loaded at once (documents may ask for any).
MAX_EXTRA_LANGUAGE_SETS = 3


class TesseractEngine(OcrEngine):
    """Tesseract through tesserocr: one API (and one OSD API) per engine, reused for every page."""

    name: ClassVar[str] = "tesseract"
    #: Tesseract's layout analysis measures and compensates skew itself
    corrects_skew: ClassVar[bool] = True
    #: Tesseract thresholds globally and wants ~300 dpi text: photos and faxes need repair first
    wants_preprocessing: ClassVar[bool] = True

    def __init__(
        self, languages: str = "eng", tessdata: str | None = None, *, timeout_seconds: float | None = None
    ) -> None:
        self.languages = languages
        self.tessdata = tessdata
        self.timeout_seconds = timeout_seconds
        self._api: TessApi | None = None
        self._extra: dict[str, TessApi] = {}
        self._osd: TessApi | None = None
        self._tessdata_resolved: str | None = None
        self._closed = False

    # --- lifecycle ---
    def start(self) -> None:
        """Load the language model once; raises ``EngineConfigurationError`` when data is missing."""
        if self._closed:
            raise EngineConfigurationError("TesseractEngine was closed; create a new one")
        if self._api is not None:
            return
        self._tessdata_resolved = resolve_tessdata(self.tessdata, self.languages)
        self._api = TessApi(self._tessdata_resolved, self.languages, tesserocr.PSM.AUTO)

    def close(self) -> None:
        """Release every Tesseract API; the engine is unusable afterwards."""
        self._closed = True
        for api in (self._api, self._osd, *self._extra.values()):
            if api is not None:
                api.end()
        self._api = self._osd = None
        self._extra.clear()

    def version(self) -> str:
        """``tesseract <version>`` of the bundled library."""
        version = self._api.version() if self._api is not None else library_version()
        return f"tesseract {version}"

    # --- recognition ---
    def recognize(
        self, image: Image.Image, *, languages: str = "eng", dpi: float | None = None
    ) -> PageLayout:
        """Recognize an upright page image into blocks, lines and words (pixel boxes of ``image``)."""
        api = self._api_for(languages)
        started = time.perf_counter()
        try:
            api.set_image(image, dpi)
            timeout_ms = int(self.timeout_seconds * 1000) if self.timeout_seconds else 0
            if not api.recognize(timeout_ms):
                raise PageTimeoutError(f"Tesseract did not finish the page within {self.timeout_seconds} s")
            raw = api.words()
            skew = api.skew_degrees()
        except (RuntimeError, ValueError) as e:
            raise OcrError(f"Tesseract failed on the page: {e}") from e
        finally:
            api.clear()
        layout = layout_from_words(raw, image.width, image.height)
        return layout.model_copy(
            update={
                "dpi": dpi,
                "skew_degrees": skew,
                "engine": self.name,
                "engine_version": self.version(),
                "ocr_seconds": time.perf_counter() - started,
            }
        )

    def _api_for(self, languages: str) -> TessApi:
        if self._api is None:
            self.start()
        if self._api is None or self._tessdata_resolved is None:  # start() sets both or raises
            raise RuntimeError("TesseractEngine not started")
        if not languages or languages == self.languages:
            return self._api
        api = self._extra.pop(languages, None)
        if api is None:
            # Another language set (per document): load it once too (its data must sit in the
            # same tessdata). A few are kept, least recently used dropped: each holds a model.
            tessdata = resolve_tessdata(self.tessdata or self._tessdata_resolved, languages)
            api = TessApi(tessdata, languages, tesserocr.PSM.AUTO)
            while len(self._extra) >= MAX_EXTRA_LANGUAGE_SETS:
                self._extra.pop(next(iter(self._extra))).end()
        self._extra[languages] = api  # most recently used last
        return api

    def detect_orientation(self, image: Image.Image) -> tuple[int, float]:
        """Clockwise degrees (0/90/180/270) that make ``image`` upright, and OSD's confidence.

        Pages with too little text defeat OSD; they get ``(0, 0.0)`` (leave as is).
        """
        if self._closed:
            raise EngineConfigurationError("TesseractEngine was closed; create a new one")
        if self._osd is None:
            if self._tessdata_resolved is None:
                self._tessdata_resolved = resolve_tessdata(self.tessdata, self.languages)
            resolve_osd(self._tessdata_resolved)
            self._osd = TessApi(self._tessdata_resolved, "osd", tesserocr.PSM.OSD_ONLY)
        if max(image.size) > _OSD_MAX_SIDE:
            factor = _OSD_MAX_SIDE / max(image.size)
            image = image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))))
        try:
            self._osd.set_image(image, None)
            result = self._osd.detect_orientation()
        finally:
            self._osd.clear()
        if not result:
            return 0, 0.0
        orient = int(result.get("orient_deg", 0)) % 360
        return (360 - orient) % 360, float(result.get("orient_conf", 0.0))


def layout_from_words(words: list[RawWord], width: int, height: int) -> PageLayout:
    """Group Tesseract's numbered words into a ``PageLayout`` (text = lines joined by newlines)."""
    blocks: list[Block] = []
    by_block: dict[int, dict[int, list[RawWord]]] = {}
    for w in words:
        by_block.setdefault(w.block, {}).setdefault(w.line, []).append(w)

    def box(items: list[RawWord]) -> Box:
        return Box.from_pixels(
            min(i.x0 for i in items),
            min(i.y0 for i in items),
            max(i.x1 for i in items),
            max(i.y1 for i in items),
            width,
            height,
        )

    for lines in by_block.values():
        out_lines = [
            Line(
                text=" ".join(w.text for w in ws),
                box=box(ws),
                words=[
                    Word(
                        text=w.text,
                        box=Box.from_pixels(w.x0, w.y0, w.x1, w.y1, width, height),
                        confidence=min(100.0, max(0.0, w.confidence)),
                    )
                    for w in ws
                ],
            )
            for ws in lines.values()
        ]
        all_words = [w for ws in lines.values() for w in ws]
        blocks.append(Block(text="\n".join(ln.text for ln in out_lines), box=box(all_words), lines=out_lines))
    confidences = [min(100.0, max(0.0, w.confidence)) for w in words]
    return PageLayout(
        text="\n".join(b.text for b in blocks),
        width=width,
        height=height,
        rotation=0,
        source="ocr",
        engine=TesseractEngine.name,
        engine_version="",
        mean_confidence=sum(confidences) / len(confidences) if confidences else None,
        blocks=blocks,
    )
