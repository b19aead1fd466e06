"""OCR preprocessing decisions and geometry, without OCR: what is done to which page, and boxes mapped back."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from pagestream._testing import degraded
from pagestream.errors import ConfigurationError
from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr import render
from pagestream.ocr.pipeline import map_layout
from pagestream.ocr.preprocess import PreprocessOptions, preprocess


def _rendered(page: degraded.DegradedPage) -> render.RenderedPage:
    return render.render_page(page.data, page.media_type, 1)


def test_clean_300_dpi_scan_is_left_alone_and_the_look_is_cheap() -> None:
    page = _rendered(degraded.clean_scan(0))
    options = PreprocessOptions(downscale=False)
    preprocess(page.image, page.dpi_used, options)  # warm up (first OpenCV calls)
    started = time.perf_counter()
    result = preprocess(page.image, page.dpi_used, options)
    elapsed = time.perf_counter() - started
    assert result.image is page.image and not result.changed
    assert result.record.steps == []
    assert np.allclose(result.to_source, np.eye(3))
    assert elapsed < 0.25, (
        f"deciding took {elapsed:.3f} s on a clean page"
    )  # ~0.05 s; generous on a shared machine


def test_clean_scan_without_a_recorded_dpi_is_measured_and_left_alone() -> None:
    image = _rendered(degraded.clean_scan(1)).image
    result = preprocess(image, None, PreprocessOptions(downscale=False))
    assert result.record.steps == [] and result.image is image


def test_body_text_at_300_dpi_is_only_downscaled_to_the_height_tesseract_needs() -> None:
    page = _rendered(degraded.clean_scan(0))
    for dpi in (page.dpi_used, None):
        result = preprocess(page.image, dpi)
        assert [s.name for s in result.record.steps] == ["downscale"]
        step = result.record.steps[0]
        factor = float(step.params["factor"])
        # 11 pt letters (~26 px) shrunk to ~17 px: a third fewer pixels for Tesseract to segment
        assert 0.55 < factor < 0.8
        assert float(step.params["text_height"]) * factor == pytest.approx(17.0, abs=1.5)
        # (the recorded factor is rounded to 3 digits)
        assert result.image.size == pytest.approx(
            (page.image.width * factor, page.image.height * factor), abs=2
        )
        assert result.dpi == (pytest.approx(page.dpi_used * factor, rel=0.01) if dpi else None)
        x0, y0, x1, y1 = result.map_box(100, 200, 300, 400)
        assert (x0, y0, x1, y1) == pytest.approx(
            (100 / factor, 200 / factor, 300 / factor, 400 / factor), rel=0.01
        )


def test_small_print_and_pages_with_few_letters_are_not_downscaled() -> None:
    from pagestream._testing.pages import LETTER_LINES, text_page_image

    seven_pt = text_page_image(LETTER_LINES * 3, dpi=300, font_pt=7.0)
    assert preprocess(seven_pt, 300.0).record.steps == []
    few = text_page_image(LETTER_LINES[:2], dpi=300, font_pt=12.0)
    assert preprocess(few, 300.0).record.steps == []


def test_fax_is_despeckled_and_upscaled_to_300_dpi() -> None:
    fax = degraded.fax_page(0, record_dpi=True)
    page = _rendered(fax)
    assert page.dpi_used == pytest.approx(150)
    result = preprocess(page.image, page.dpi_used)
    names = [s.name for s in result.record.steps]
    assert names == ["denoise", "upscale"]
    assert result.image.size == (page.image.width * 2, page.image.height * 2)
    assert result.dpi == pytest.approx(300)
    assert result.map_box(100, 200, 300, 400) == pytest.approx((50, 100, 150, 200))
    assert all(s.seconds >= 0 for s in result.record.steps)


def test_fax_without_dpi_is_upscaled_by_its_letter_height() -> None:
    page = _rendered(degraded.fax_page(1, record_dpi=False))
    assert page.dpi_used is None
    result = preprocess(page.image, None)
    upscale = next(s for s in result.record.steps if s.name == "upscale")
    assert 1.7 < float(upscale.params["factor"]) < 2.6


def test_photo_sheet_is_found_flattened_and_maps_back_onto_the_photo() -> None:
    photo = degraded.phone_photo(0)
    page = _rendered(photo)
    result = preprocess(page.image, page.dpi_used)
    names = [s.name for s in result.record.steps]
    assert names[:3] == ["perspective", "illumination", "binarization"]
    assert result.changed
    # The processed image's corners land on the sheet's corners in the photo.
    sheet_to_image = np.array(photo.sheet_to_image)
    sheet = np.float64([[0, 0, 1], [2550, 0, 1], [2550, 3300, 1], [0, 3300, 1]]).T
    truth = sheet_to_image @ sheet
    truth = (truth[:2] / truth[2]).T
    w, h = result.image.size
    corners = np.float64([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]]).T
    got = result.to_source @ corners
    got = (got[:2] / got[2]).T
    assert np.abs(got - truth).max() < 40, f"corners off: {got.round()} vs {truth.round()}"
    # Binarized: the engine sees black on white, evenly.
    values = np.asarray(result.image)
    assert set(np.unique(values)) <= {0, 255}


def test_each_step_can_be_turned_off() -> None:
    photo = _rendered(degraded.phone_photo(1))
    off = preprocess(photo.image, None, PreprocessOptions(page_detection=False, binarization=False))
    assert [s.name for s in off.record.steps] == ["illumination"]
    assert off.image.size == photo.image.size
    fax = _rendered(degraded.fax_page(0, record_dpi=True))
    assert preprocess(fax.image, fax.dpi_used, PreprocessOptions(upscale=False)).record.steps == []
    nothing = preprocess(photo.image, None, PreprocessOptions(enabled=False))
    assert nothing.image is photo.image and nothing.record.steps == []


def test_options_from_settings_flags() -> None:
    options = PreprocessOptions.from_flags(True, "binarization, Upscale")
    assert options.enabled and not options.binarization and not options.upscale and options.denoise
    assert options.downscale and not PreprocessOptions.from_flags(True, "downscale").downscale
    assert not PreprocessOptions.from_flags(False, "").enabled
    with pytest.raises(ConfigurationError, match="unknown preprocessing step.*sharpen"):
        PreprocessOptions.from_flags(True, "sharpen")


def test_layout_boxes_are_mapped_into_the_input_image() -> None:
    fax = _rendered(degraded.fax_page(0, record_dpi=True))
    result = preprocess(fax.image, fax.dpi_used)
    w, h = result.image.size
    box = Box.from_pixels(200, 400, 600, 480, w, h)
    word = Word(text="Northwind", box=box, confidence=90)
    layout = PageLayout(
        text="Northwind",
        width=w,
        height=h,
        source="ocr",
        engine="t",
        engine_version="1",
        blocks=[Block(text="Northwind", box=box, lines=[Line(text="Northwind", box=box, words=[word])])],
    )
    mapped = map_layout(layout, result, fax.image.width, fax.image.height)
    assert (mapped.width, mapped.height) == fax.image.size
    got = mapped.words()[0].box
    assert (got.x0, got.y0, got.x1, got.y1) == pytest.approx((100, 200, 300, 240))
    assert got.nx0 == pytest.approx(100 / fax.image.width)


def test_png_grayscale_without_text_is_not_touched() -> None:
    blank = Image.new("L", (1700, 2200), 250)
    buf = io.BytesIO()
    blank.save(buf, "PNG")
    result = preprocess(blank, None)
    assert result.record.steps == [] and result.image is blank
