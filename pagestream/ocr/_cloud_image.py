"""Encode a page image for a cloud OCR request, downscaling until it fits the service's limits."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from pagestream.ocr.errors import UnreadablePageError

#: after this many shrink steps we give up: the page is pathological (noise that PNG cannot compress)
_MAX_SHRINK_STEPS = 6


@dataclass(frozen=True)
class EncodedImage:
    """Bytes to upload and the pixel size they encode; ``scale`` = uploaded width / original width."""

    data: bytes
    width: int
    height: int
    scale: float


def _uploadable(image: Image.Image) -> Image.Image:
    """Convert modes the services may reject (palette, alpha, 16-bit, CMYK, 1-bit) to L or RGB."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "I", "I;16", "F", "LA"):
        return image.convert("L")
    return image.convert("RGB")


def encode_within(
    image: Image.Image,
    *,
    max_bytes: int,
    max_pixels: int | None = None,
    max_side: int | None = None,
    fmt: str = "PNG",
) -> EncodedImage:
    """Encode ``image`` as ``fmt`` no larger than ``max_bytes``, shrinking it (never enlarging) if needed."""
    width, height = image.size
    if width < 1 or height < 1:
        raise UnreadablePageError(f"page image is empty ({width}x{height}); re-render the page")
    scale = 1.0
    if max_pixels and width * height > max_pixels:
        scale = min(scale, math.sqrt(max_pixels / (width * height)))
    if max_side and max(width, height) > max_side:
        scale = min(scale, max_side / max(width, height))
    source = _uploadable(image)
    for _ in range(_MAX_SHRINK_STEPS):
        w, h = max(1, int(width * scale)), max(1, int(height * scale))
        candidate = source if (w, h) == (width, height) else source.resize((w, h), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        try:
            candidate.save(buf, format=fmt, optimize=fmt == "PNG")
        except (OSError, ValueError) as e:
            raise UnreadablePageError(f"cannot encode the page image as {fmt}: {e}") from e
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return EncodedImage(data=data, width=w, height=h, scale=w / width)
        # Encoded size scales roughly with pixel count; aim 10 % under the limit.
        scale *= math.sqrt(max_bytes / len(data)) * 0.9
    raise UnreadablePageError(
        f"page image stays above {max_bytes} bytes even after downscaling; render it at a lower dpi"
    )
