"""A page as the engine saw it, as PNG, for the viewer: the word boxes of the layout (normalized
``nx0…ny1``) fall on the words of this image."""

from __future__ import annotations

import io

from PIL import Image

from pagestream.export.errors import SourceUnreadableError
from pagestream.layout import PageLayout
from pagestream.ocr import render
from pagestream.ocr.errors import UnreadablePageError
from pagestream.ocr.pipeline import rotate_clockwise


def page_image(
    data: bytes,
    media_type: str,
    page_number: int,
    layout: PageLayout | None,
    *,
    max_width: int = 1400,
    password: str | None = None,
) -> bytes:
    """PNG of page ``page_number`` (1-based), at most ``max_width`` pixels wide, turned and
    straightened as in ``layout`` (when given) so its boxes line up."""
    width_hint = max(200, min(max_width, 4000))
    try:
        rendered = render.render_page(
            data, media_type, page_number, dpi=150, max_pixels=width_hint * width_hint * 2, password=password
        )
    except UnreadablePageError as e:
        raise SourceUnreadableError(str(e)) from e
    image = rendered.image
    if layout is not None and layout.source == "ocr":
        image = rotate_clockwise(image, layout.rotation)
        w, h = image.size
        # straightened before recognition (see export.geometry): do the same
        if abs(layout.skew_degrees) >= 0.05 and layout.width and layout.height:
            turned = image.rotate(
                -layout.skew_degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
            )
            if abs(turned.width / turned.height - layout.width / layout.height) < abs(
                w / h - layout.width / layout.height
            ):
                image = turned
    if image.width > width_hint:
        image = image.resize(
            (width_hint, max(1, round(image.height * width_hint / image.width))), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()
