"""Text layers with characters outside the BMP: PDFium's UTF-16 units become real characters."""

from __future__ import annotations

import pytest

from pagestream._testing.textlayers import NON_BMP_LINES, non_bmp_text_pdf
from pagestream.ocr import render, textlayer
from pagestream.ocr.pipeline import PageProcessor
from pagestream.ocr.tesseract import TesseractEngine


def _extract(data: bytes) -> tuple[str, bool]:
    with render.pdf_page(data, 1) as page:
        layout = textlayer.extract(page)
        return layout.text, textlayer.is_usable(layout, page)


def test_emoji_and_math_letters_round_trip_exactly() -> None:
    data, truth = non_bmp_text_pdf()
    text, usable = _extract(data)
    assert text == truth
    assert "😀" in text and "𝔸" in text and "𝔹" in text
    assert usable
    text.encode("utf-8")  # no lone surrogates


def test_a_non_bmp_word_has_one_box_over_its_glyph() -> None:
    data, _ = non_bmp_text_pdf()
    with render.pdf_page(data, 1) as page:
        words = textlayer.extract(page).words()
    emoji = next(w for w in words if w.text == "😀")
    before = next(w for w in words if w.text == "report")
    assert emoji.box.x0 > before.box.x1  # after "report", on the same line
    assert emoji.box.x1 - emoji.box.x0 > 5  # a glyph's width (14 pt font), not an empty box
    assert abs(emoji.box.y0 - before.box.y0) < 6


def test_lone_surrogates_and_nul_are_dropped_so_the_text_is_valid_utf8() -> None:
    # A broken producer: 😀 mapped to a lone high surrogate, 𝔹 to a lone low one, ℂ to NUL.
    data, _ = non_bmp_text_pdf(broken={"😀": "D83D", "𝔹": "DE00", "ℂ": "0000"})
    text, _ = _extract(data)
    text.encode("utf-8")
    assert "\x00" not in text and "\ufffd" not in text
    lines = text.splitlines()
    assert lines[0] == "Status report all checks green"
    assert lines[1] == "Sets 𝔸 and are disjoint, is not"
    assert lines[2:] == list(NON_BMP_LINES[2:])


def test_the_page_processor_returns_the_text_layer_unchanged() -> None:
    data, truth = non_bmp_text_pdf()
    layout = PageProcessor(TesseractEngine()).process(data, "application/pdf", 1)
    assert layout.source == "text-layer"
    assert layout.text == truth
    assert layout.model_dump_json().encode("utf-8")  # serializes: what the event carries


@pytest.mark.parametrize("line", NON_BMP_LINES)
def test_each_line_is_one_line(line: str) -> None:
    data, _ = non_bmp_text_pdf((line,))
    assert _extract(data)[0] == line
