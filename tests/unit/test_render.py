"""Rendering from bytes: formats, page counts, passwords, pixel budget, decompression bombs."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from reportlab.pdfgen import canvas

from pagestream.ocr import render
from pagestream.ocr.errors import UnreadablePageError
from pagestream.ocr.render import EncryptedDocumentError


def _pdf(size_pt: tuple[float, float] = (612, 792), pages: int = 1, encrypt: str | None = None) -> bytes:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=size_pt, encrypt=encrypt)
    for i in range(pages):
        c.drawString(72, 72, f"page {i + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def _image(fmt: str, size: tuple[int, int] = (120, 80), mode: str = "RGB", **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "white" if mode != "RGBA" else (0, 0, 0, 0)).save(buf, fmt, **kw)
    return buf.getvalue()


def test_pdf_page_count_and_grayscale_render_at_dpi() -> None:
    data = _pdf(pages=3)
    assert render.page_count(data, "application/pdf") == 3
    page = render.render_page(data, "application/pdf", 2, dpi=100)
    assert page.image.mode == "L"
    assert page.image.size == (850, 1100)
    assert page.dpi_used == pytest.approx(100)


def test_pdf_is_sniffed_when_media_type_is_generic() -> None:
    assert render.page_count(_pdf(pages=2), "application/octet-stream") == 2


def test_200_inch_page_renders_within_pixel_budget() -> None:
    data = _pdf((200 * 72, 200 * 72))
    page = render.render_page(data, "application/pdf", 1, dpi=300, max_pixels=4_000_000)
    assert page.image.width * page.image.height <= 4_000_000
    assert page.dpi_used is not None and page.dpi_used < 11


def test_encrypted_pdf_needs_the_right_password() -> None:
    data = _pdf(encrypt="s3cret")
    with pytest.raises(EncryptedDocumentError, match="resubmit with `password`"):
        render.page_count(data, "application/pdf")
    with pytest.raises(EncryptedDocumentError, match="wrong"):
        render.render_page(data, "application/pdf", 1, password="nope")
    assert render.render_page(data, "application/pdf", 1, dpi=50, password="s3cret").image.mode == "L"
    assert issubclass(EncryptedDocumentError, UnreadablePageError)
    assert not EncryptedDocumentError.retryable


def test_page_out_of_range_is_unreadable() -> None:
    with pytest.raises(UnreadablePageError, match="has 1 page"):
        render.render_page(_pdf(), "application/pdf", 2)


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("TIFF", "image/tiff"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
    ],
)
def test_image_formats_render_grayscale(fmt: str, media_type: str) -> None:
    data = _image(fmt)
    assert render.page_count(data, media_type) == 1
    page = render.render_page(data, media_type, 1)
    assert page.image.mode == "L" and page.image.size == (120, 80)


def test_transparent_png_renders_on_white() -> None:
    page = render.render_page(_image("PNG", mode="RGBA"), "image/png", 1)
    assert page.image.getextrema() == (255, 255)


def test_multipage_tiff_pages_and_animated_gif_first_frame_only() -> None:
    frames = [Image.new("L", (40, 30), v) for v in (10, 120, 240)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    tiff = buf.getvalue()
    assert render.page_count(tiff, "image/tiff") == 3
    assert render.render_page(tiff, "image/tiff", 3).image.getpixel((0, 0)) == 240
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert render.page_count(buf.getvalue(), "image/gif") == 1


def test_image_over_budget_is_downscaled_and_dpi_follows() -> None:
    data = _image("PNG", (4000, 3000), mode="L", dpi=(400, 400))
    page = render.render_page(data, "image/png", 1, max_pixels=3_000_000)
    assert page.image.width * page.image.height <= 3_000_000
    assert page.scale == pytest.approx(0.5, abs=0.01)
    assert page.dpi_used == pytest.approx(200, rel=0.02)


def test_decompression_bomb_is_unreadable_not_out_of_memory() -> None:
    data = _image("PNG", (5000, 5000), mode="1")  # tiny file, 25 MP declared
    with pytest.raises(UnreadablePageError, match="too large|more than"):
        render.render_page(data, "image/png", 1, max_pixels=1_000_000, max_source_pixels=10_000_000)


def test_garbage_bytes_are_unreadable() -> None:
    with pytest.raises(UnreadablePageError):
        render.render_page(b"not an image", "image/png", 1)
    with pytest.raises(UnreadablePageError):
        render.page_count(b"%PDF-1.7 truncated", "application/pdf")
