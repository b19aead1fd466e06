"""Real Tesseract on generated pages: accuracy, orientation, text layers, budgets, title blocks."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from reportlab.pdfgen import canvas

from pagestream._testing import drawings, pages
from pagestream.layout import PageLayout
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.pipeline import PageProcessor, rotate_clockwise
from pagestream.ocr.tesseract import TesseractEngine

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def processor() -> Iterator[PageProcessor]:
    with PageProcessor(TesseractEngine()) as p:
        yield p


@pytest.fixture(scope="module")
def letter() -> tuple[bytes, str]:
    image, text = pages.scanned_letter()
    return pages.png_bytes(image, 300), text


def test_upright_scan_has_low_cer(processor: PageProcessor, letter: tuple[bytes, str]) -> None:
    data, truth = letter
    layout = processor.process(data, "image/png", 1)
    error = pages.cer(truth, layout.text)
    print(f"upright CER {error:.4f}, skew {layout.skew_degrees}°, ocr {layout.ocr_seconds:.2f}s")
    assert layout.source == "ocr" and layout.rotation == 0
    assert abs(layout.skew_degrees - 1.0) < 0.3, "the ~1° scan tilt is measured and corrected"
    assert error < 0.02
    assert layout.mean_confidence and layout.mean_confidence > 80
    assert layout.render_seconds > 0 and layout.ocr_seconds > 0


@pytest.mark.parametrize("turned", [90, 180, 270])
def test_rotated_scan_is_turned_upright(processor: PageProcessor, letter: tuple[bytes, str], turned: int) -> None:
    data, truth = letter
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    rotated = pages.png_bytes(rotate_clockwise(image, turned), 300)
    layout = processor.process(rotated, "image/png", 1)
    error = pages.cer(truth, layout.text)
    print(f"turned {turned}°: applied {layout.rotation}°, CER {error:.4f}")
    # Orientation is checked only when the first reading is poor; Tesseract sometimes reads a
    # page turned 90° well by itself, and then no turn is needed. Any turn applied must be right.
    assert layout.rotation in (0, (360 - turned) % 360)
    assert error < 0.02


class _NoOcr(OcrEngine):
    name = "no-ocr"

    def version(self) -> str:
        return "0"

    def recognize(self, image: object, *, languages: str = "eng", dpi: float | None = None) -> PageLayout:
        raise AssertionError("OCR must not run on a born-digital page")


def test_born_digital_pdf_uses_text_layer_without_ocr() -> None:
    data, texts = pages.born_digital_pdf()
    processor = PageProcessor(_NoOcr())
    assert processor.count_pages(data, "application/pdf") == 3
    for number, truth in enumerate(texts, start=1):
        layout = processor.process(data, "application/pdf", number)
        assert layout.source == "text-layer" and layout.engine == "pdfium"
        assert layout.mean_confidence == 100
        assert pages.cer(truth, layout.text) < 0.01
        assert layout.words()[0].text == truth.split()[0]


def test_force_ocr_ignores_the_text_layer(processor: PageProcessor) -> None:
    data, texts = pages.born_digital_pdf()
    layout = processor.process(data, "application/pdf", 3, force_ocr=True)
    assert layout.source == "ocr"
    assert pages.cer(texts[2], layout.text) < 0.03


def test_garbage_text_layer_is_ocred(processor: PageProcessor) -> None:
    data, truth = pages.garbage_text_layer_pdf()
    layout = processor.process(data, "application/pdf", 1)
    assert layout.source == "ocr"
    assert pages.cer(truth, layout.text) < 0.03


def test_image_page_with_only_a_stamp_is_ocred(processor: PageProcessor) -> None:
    data, truth = pages.image_only_pdf_with_stamp()
    layout = processor.process(data, "application/pdf", 1)
    assert layout.source == "ocr"
    assert "foundation drawings" in layout.text


def test_200_inch_page_renders_within_pixel_budget() -> None:
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(200 * 72, 200 * 72))
    c.setFont("Helvetica", 2000)
    c.drawString(1000, 7000, "HUGE")
    c.showPage()
    c.save()
    budget = 20_000_000
    with PageProcessor(TesseractEngine(), max_pixels=budget, deskew=False) as processor:
        layout = processor.process(buf.getvalue(), "application/pdf", 1, force_ocr=True)
    assert layout.width * layout.height <= budget
    assert layout.dpi is not None and layout.dpi < 300
    assert "HUGE" in layout.text


def test_title_blocks_of_generated_drawings(processor: PageProcessor) -> None:
    results = []
    for drawing in drawings.generate_drawings():
        layout = processor.process(drawing.data, drawing.media_type, 1)
        assert layout.source == ("text-layer" if drawing.kind == "vector" else "ocr")
        got = layout.title_block
        for field in ("sheet_number", "sheet_title", "scale"):
            value = getattr(got, field) if got else None
            results.append((drawing.name, drawing.kind, field, value, getattr(drawing.truth, field)))
    exact = sum(1 for *_, value, want in results if value == want)
    score = exact / len(results)
    print(f"title-block fields exact: {exact}/{len(results)} = {score:.1%}")
    for name, kind, field, value, want in results:
        if value != want:
            print(f"  miss {name} {kind} {field}: {value!r} != {want!r}")
    assert score >= 0.95
