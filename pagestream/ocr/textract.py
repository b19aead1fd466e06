"""AWS Textract text detection as an ``OcrEngine``: one ``DetectDocumentText`` call per page image.

Limits: one page, ≤ 10 MB of bytes (we re-encode/downscale to fit), JPEG/PNG; we also cap the
longest side at 10,000 px. Textract supports Latin-script text (English, German, French,
Spanish, Italian, Portuguese); the ``languages`` argument is ignored.

The module is the adapter only: raw calls and error translation are in ``_textract``, the block
→ ``PageLayout`` mapping in ``textract_layout``, and the async multi-page flow for PDFs in S3
(start, poll, collect) in ``textract_async``.
"""

from __future__ import annotations

import time
from typing import Any

from PIL import Image

from pagestream.layout import PageLayout
from pagestream.ocr import _textract
from pagestream.ocr._cloud_image import encode_within
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.ocr.textract_layout import ENGINE, layout_from_blocks

#: DetectDocumentText accepts at most 10 MB of document bytes
SYNC_MAX_BYTES = 10 * 1024 * 1024
#: conservative cap on the longest side of an uploaded page image
SYNC_MAX_SIDE = 10_000


class TextractEngine(OcrEngine):
    """OCR through AWS Textract ``DetectDocumentText``; credentials and region from the boto3 chain."""

    name = ENGINE
    corrects_skew = True  # the service reads tilted pages; no local deskew needed

    def __init__(
        self,
        *,
        client: Any | None = None,
        region_name: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_image_bytes: int = SYNC_MAX_BYTES,
    ) -> None:
        """Configure only; ``client`` (a boto3 Textract client) may be injected, else made in ``start()``."""
        if read_timeout <= 0 or connect_timeout <= 0:
            raise EngineConfigurationError("Textract timeouts must be positive: every call is bounded")
        self._client = client
        self._owns_client = client is None
        self._region = region_name
        self._config = _textract.bounded_config(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts
        )
        self._max_image_bytes = min(max_image_bytes, SYNC_MAX_BYTES)
        self._model_version: str | None = None
        self._closed = False

    @property
    def client(self) -> Any:
        """The boto3 client (created by ``start()`` unless injected)."""
        if self._client is None:
            self.start()
        return self._client

    def start(self) -> None:
        """Create the client from the default chain; it connects on the first call."""
        if self._closed:
            raise EngineConfigurationError("TextractEngine was closed; create a new one")
        if self._client is None:
            self._client = _textract.create_client(region_name=self._region, config=self._config)

    def close(self) -> None:
        """Drop the connection pool of a client we created; the engine is unusable afterwards."""
        client, self._client = self._client, None
        self._closed = True
        if self._owns_client and client is not None and hasattr(client, "close"):
            client.close()

    def version(self) -> str:
        """``textract <model version>`` once known from a response, else the boto3 version."""
        if self._model_version:
            return f"textract {self._model_version}"
        return f"textract (boto3 {_textract.library_version()})"

    def recognize(
        self, image: Image.Image, *, languages: str = "eng", dpi: float | None = None
    ) -> PageLayout:
        """Send ``image`` as PNG to DetectDocumentText and map its blocks to a ``PageLayout``."""
        encoded = encode_within(image, max_bytes=self._max_image_bytes, max_side=SYNC_MAX_SIDE)
        started = time.monotonic()
        response = _textract.call(self.client.detect_document_text, Document={"Bytes": encoded.data})
        elapsed = time.monotonic() - started
        self._model_version = response.get("DetectDocumentTextModelVersion") or self._model_version
        layout = layout_from_blocks(
            response.get("Blocks", []), width=image.width, height=image.height, engine_version=self.version()
        )
        return layout.model_copy(update={"dpi": dpi, "ocr_seconds": elapsed})
