"""Google Cloud Vision ``DOCUMENT_TEXT_DETECTION`` as an ``OcrEngine``.

One synchronous ``images:annotate`` request per page image (never ``files:annotate`` or the
async GCS flow: pages are already split and rendered by the pipeline).

Mapping of ``fullTextAnnotation`` (Page → Block → Paragraph → Word → Symbol) to our layout:

- a Vision *Block* becomes our ``Block`` (non-text blocks without paragraphs are skipped);
- a Vision *Paragraph* is split into our ``Line`` objects at the detected breaks that end a
  visual line (``EOL_SURE_SPACE``, ``LINE_BREAK``, ``HYPHEN`` on a word's last symbol), because
  a Vision paragraph usually spans several printed lines and our ``Line`` means one printed line;
- a Vision *Word* becomes our ``Word``; its text is the concatenation of its symbols;
- boxes come from ``boundingBox.vertices`` (pixels of the uploaded image, a missing ``x``/``y``
  means 0) or, when there are no vertices, ``normalizedVertices``; they are scaled back to the
  pixels of the image passed to ``recognize`` when it had to be downscaled for upload;
- confidences 0–1 become 0–100; line and block boxes are the union of their words' boxes.

Limits respected: image file ≤ 20 MB (we re-encode/downscale below ``max_image_bytes``; the
gRPC transport sends raw bytes, so the REST 10 MB JSON/base64 limit does not apply); very large
images are downscaled by us above ``max_pixels`` (default 75 MP, a conservative bound — Vision
may downsample huge images itself) so the box mapping stays exact; 1,800 requests/min per
project (throttling surfaces as a retryable ``EngineUnavailableError``).
"""

from __future__ import annotations

import time
from typing import Any

from PIL import Image

from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr import _google_vision
from pagestream.ocr._cloud_image import encode_within
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError

#: Vision's per-image request limit is 20 MB; stay under it with margin for the request envelope
DEFAULT_MAX_IMAGE_BYTES = 19 * 1024 * 1024
#: above this we downscale ourselves (conservative; keeps boxes exact if Vision would downsample)
DEFAULT_MAX_PIXELS = 75_000_000

#: breaks on a word's last symbol that end a printed line
_LINE_ENDING_BREAKS = frozenset({"EOL_SURE_SPACE", "LINE_BREAK", "HYPHEN"})

#: Tesseract language codes (our ``languages`` argument) → BCP-47 hints for Vision
_TESSERACT_TO_BCP47 = {
    "eng": "en",
    "deu": "de",
    "fra": "fr",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "pol": "pl",
    "ces": "cs",
    "swe": "sv",
    "dan": "da",
    "nor": "no",
    "fin": "fi",
    "rus": "ru",
    "ukr": "uk",
    "ell": "el",
    "tur": "tr",
    "ara": "ar",
    "heb": "he",
    "hin": "hi",
    "jpn": "ja",
    "kor": "ko",
    "chi_sim": "zh",
    "chi_tra": "zh-Hant",
    "vie": "vi",
    "tha": "th",
}


def language_hints(languages: str) -> list[str]:
    """Translate ``eng+deu`` into Vision hints ``["en", "de"]``; unknown codes are left to auto-detection."""
    hints: list[str] = []
    for code in languages.split("+"):
        hint = _TESSERACT_TO_BCP47.get(code.strip())
        if hint and hint not in hints:
            hints.append(hint)
    return hints


class GoogleVisionEngine(OcrEngine):
    """OCR through Google Cloud Vision; credentials from Application Default Credentials."""

    name = "google-vision"
    corrects_skew = True  # the service reads tilted pages; no local deskew needed

    def __init__(
        self,
        *,
        client: Any | None = None,
        client_options: dict[str, Any] | None = None,
        timeout_seconds: float = 30.0,
        retry_deadline_seconds: float = 60.0,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        """Configure only; ``client`` (an ``ImageAnnotatorClient``) may be injected, else made in ``start()``."""
        if timeout_seconds <= 0:
            raise EngineConfigurationError("timeout_seconds must be positive: every Vision call is bounded")
        self._client = client
        self._owns_client = client is None
        self._client_options = client_options
        self._timeout = timeout_seconds
        self._retry_deadline = retry_deadline_seconds
        self._max_image_bytes = max_image_bytes
        self._max_pixels = max_pixels
        self._closed = False

    def start(self) -> None:
        """Create the client from the default credential chain (no network until the first page)."""
        self._started()

    def _started(self) -> Any:
        """The client, created on first use."""
        if self._closed:
            raise EngineConfigurationError("GoogleVisionEngine was closed; create a new one")
        if self._client is None:
            self._client = _google_vision.create_client(self._client_options)
        return self._client

    def close(self) -> None:
        """Close the gRPC channel if we created the client; the engine is unusable afterwards."""
        client, self._client = self._client, None
        self._closed = True
        transport = getattr(client, "transport", None)
        if self._owns_client and transport is not None:
            transport.close()

    def version(self) -> str:
        """API and client library version, e.g. ``google-vision v1 (google-cloud-vision 3.16.0)``."""
        return f"google-vision v1 (google-cloud-vision {_google_vision.library_version()})"

    def recognize(
        self, image: Image.Image, *, languages: str = "eng", dpi: float | None = None
    ) -> PageLayout:
        """Send ``image`` as PNG and map the ``fullTextAnnotation`` to a ``PageLayout`` in its pixels."""
        client = self._client or self._started()
        encoded = encode_within(image, max_bytes=self._max_image_bytes, max_pixels=self._max_pixels)
        started = time.monotonic()
        response = _google_vision.detect_document_text(
            client,
            encoded.data,
            language_hints=language_hints(languages),
            timeout_seconds=self._timeout,
            retry_deadline_seconds=self._retry_deadline,
        )
        elapsed = time.monotonic() - started
        payload = type(response).to_dict(
            response, use_integers_for_enums=False, preserving_proto_field_name=False
        )
        layout = layout_from_annotation(
            payload,
            width=image.width,
            height=image.height,
            upload_size=(encoded.width, encoded.height),
            engine_version=self.version(),
        )
        return layout.model_copy(update={"dpi": dpi, "ocr_seconds": elapsed})


def _box(poly: dict[str, Any] | None, *, width: int, height: int, upload_size: tuple[int, int]) -> Box | None:
    """Axis-aligned box around a Vision ``BoundingPoly``, in pixels of the original image."""
    if not poly:
        return None
    vertices = poly.get("vertices") or []
    if vertices:
        sx, sy = width / upload_size[0], height / upload_size[1]
        xs = [float(v.get("x", 0) or 0) * sx for v in vertices]
        ys = [float(v.get("y", 0) or 0) * sy for v in vertices]
    else:
        normalized = poly.get("normalizedVertices") or poly.get("normalized_vertices") or []
        if not normalized:
            return None
        xs = [float(v.get("x", 0) or 0) * width for v in normalized]
        ys = [float(v.get("y", 0) or 0) * height for v in normalized]
    x0, x1 = max(0.0, min(xs)), min(float(width), max(xs))
    y0, y1 = max(0.0, min(ys)), min(float(height), max(ys))
    return Box.from_pixels(x0, y0, max(x0, x1), max(y0, y1), width, height)


def _break_type(symbol: dict[str, Any]) -> str:
    """The detected break after a symbol (``SPACE``, ``LINE_BREAK``…) or ``""``."""
    detected = ((symbol.get("property") or {}).get("detectedBreak") or {}).get("type")
    if detected is None:
        return ""
    if isinstance(detected, int):  # enum numbers when the dict was made with use_integers_for_enums
        names = {0: "UNKNOWN", 1: "SPACE", 2: "SURE_SPACE", 3: "EOL_SURE_SPACE", 4: "HYPHEN", 5: "LINE_BREAK"}
        return names.get(detected, "")
    return str(detected)


def _confidence(value: Any) -> float:
    """Vision 0–1 → our 0–100, clamped."""
    return round(min(100.0, max(0.0, float(value or 0.0) * 100.0)), 2)


def layout_from_annotation(
    response: dict[str, Any],
    *,
    width: int,
    height: int,
    upload_size: tuple[int, int] | None = None,
    engine_version: str,
) -> PageLayout:
    """Map an ``AnnotateImageResponse`` (JSON-style dict, camelCase) to a ``PageLayout``.

    ``upload_size`` is the pixel size Vision saw when the image was downscaled for upload.
    """
    upload = upload_size or (width, height)
    annotation = response.get("fullTextAnnotation") or {}
    blocks: list[Block] = []
    for page in annotation.get("pages") or []:
        for vblock in page.get("blocks") or []:
            lines: list[Line] = []
            for paragraph in vblock.get("paragraphs") or []:
                current: list[Word] = []
                for vword in paragraph.get("words") or []:
                    symbols = vword.get("symbols") or []
                    text = "".join(s.get("text", "") for s in symbols)
                    box = _box(vword.get("boundingBox"), width=width, height=height, upload_size=upload)
                    if text.strip() and box is not None:
                        current.append(
                            Word(text=text, box=box, confidence=_confidence(vword.get("confidence")))
                        )
                    if current and symbols and _break_type(symbols[-1]) in _LINE_ENDING_BREAKS:
                        lines.append(_line(current, width=width, height=height))
                        current = []
                if current:
                    lines.append(_line(current, width=width, height=height))
            if lines:
                blocks.append(
                    Block(
                        text="\n".join(ln.text for ln in lines),
                        box=Box.around([ln.box for ln in lines], width, height),
                        lines=lines,
                    )
                )
    words = [w for b in blocks for ln in b.lines for w in ln.words]
    return PageLayout(
        text="\n".join(b.text for b in blocks),
        width=width,
        height=height,
        rotation=0,
        source="ocr",
        engine=GoogleVisionEngine.name,
        engine_version=engine_version,
        mean_confidence=round(sum(w.confidence for w in words) / len(words), 2) if words else None,
        blocks=blocks,
    )


def _line(words: list[Word], *, width: int, height: int) -> Line:
    """A printed line from its words, in reading order."""
    return Line(
        text=" ".join(w.text for w in words),
        box=Box.around([w.box for w in words], width, height),
        words=list(words),
    )
