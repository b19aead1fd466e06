"""The ``OcrEngine`` contract, engine-agnostic. Subclass as ``Test<Engine>Contract`` and provide
an ``engine`` fixture (started engine, closed afterwards by the subclass or by this suite);
optionally override ``contract_image_and_text`` (e.g. the image a recorded response belongs to).
"""

from __future__ import annotations

import pytest
from PIL import Image

from pagestream._testing import pages
from pagestream.layout import PageLayout
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.ocr.pipeline import MIN_ORIENTATION_CONFIDENCE, MIN_SKEW_DEGREES, rotate_clockwise
from tests.contracts import ContractSuite

CONTRACT_LINES = (
    "Invoice 2026-0412 from Northwind Engineering",
    "The quick brown fox jumps over the lazy dog.",
    "Total amount due within thirty days: 1,250.00",
)


class OcrEngineContract(ContractSuite):
    """Behaviour every engine must show; not collected by itself (no ``Test`` prefix)."""

    interface = OcrEngine

    @pytest.fixture
    def engine(self) -> OcrEngine:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("subclasses provide a started `engine` fixture")

    @pytest.fixture
    def subject_under_test(self, engine: OcrEngine) -> OcrEngine:
        return engine

    @pytest.fixture
    def contract_image_and_text(self) -> tuple[Image.Image, str]:
        """A clean text page and the text on it."""
        image = pages.text_page_image(CONTRACT_LINES, dpi=200, size_in=(8.5, 3.0), font_pt=12, margin_in=0.6)
        return image, "\n".join(CONTRACT_LINES)

    @pytest.fixture
    def layout(self, engine: OcrEngine, contract_image_and_text: tuple[Image.Image, str]) -> PageLayout:
        image, _ = contract_image_and_text
        return engine.recognize(image, dpi=200)

    def test_returns_an_ocr_page_layout_of_the_image(
        self, layout: PageLayout, contract_image_and_text: tuple[Image.Image, str], engine: OcrEngine
    ) -> None:
        image, _ = contract_image_and_text
        assert isinstance(layout, PageLayout)
        assert layout.source == "ocr"
        assert layout.engine == engine.name
        assert (layout.width, layout.height) == image.size

    def test_text_is_recognized(
        self, layout: PageLayout, contract_image_and_text: tuple[Image.Image, str]
    ) -> None:
        _, expected = contract_image_and_text
        assert layout.text.strip()
        assert pages.cer(expected, layout.text) < 0.1
        assert layout.words(), "words must be reported with boxes"

    def test_word_boxes_lie_inside_the_image_and_are_normalized(self, layout: PageLayout) -> None:
        items = [w.box for w in layout.words()] + [ln.box for b in layout.blocks for ln in b.lines]
        items += [b.box for b in layout.blocks]
        for box in items:
            assert 0 <= box.x0 <= box.x1 <= layout.width
            assert 0 <= box.y0 <= box.y1 <= layout.height
            for v in (box.nx0, box.ny0, box.nx1, box.ny1):
                assert 0.0 <= v <= 1.0
            assert box.nx0 == pytest.approx(box.x0 / layout.width, abs=1e-6)

    def test_confidences_are_percentages(self, layout: PageLayout) -> None:
        assert all(0 <= w.confidence <= 100 for w in layout.words())
        assert layout.mean_confidence is not None and 0 < layout.mean_confidence <= 100

    def test_version_is_reported(self, engine: OcrEngine, layout: PageLayout) -> None:
        assert engine.version().strip()
        assert layout.engine_version.strip()

    def test_blank_page_gives_empty_text_not_an_error(self, engine: OcrEngine) -> None:
        blank = Image.new("L", (800, 600), 255)
        assert engine.recognize(blank).text.strip() == ""

    def test_engine_is_reusable_across_pages(
        self, engine: OcrEngine, contract_image_and_text: tuple[Image.Image, str]
    ) -> None:
        image, _ = contract_image_and_text
        first = engine.recognize(image, dpi=200).text
        assert engine.recognize(image, dpi=200).text == first

    def test_declares_its_image_needs(self, engine: OcrEngine) -> None:
        # The page processor repairs images (perspective, light, resolution) only for engines
        # that ask for it, and skips its own deskew for engines that straighten pages themselves.
        assert isinstance(engine.wants_preprocessing, bool)
        assert isinstance(engine.corrects_skew, bool)

    def test_orientation_is_a_quarter_turn_and_right_when_confident(
        self, engine: OcrEngine, contract_image_and_text: tuple[Image.Image, str]
    ) -> None:
        # Every engine answers (the default is "upright, no confidence"); one confident enough
        # for the processor to act on must be right, or it would turn good pages over.
        image, _ = contract_image_and_text
        for turned_by, upright_by in ((0, 0), (90, 270), (180, 180)):
            degrees, confidence = engine.detect_orientation(rotate_clockwise(image, turned_by))
            assert degrees in (0, 90, 180, 270)
            assert isinstance(confidence, float) and confidence >= 0.0
            assert confidence < MIN_ORIENTATION_CONFIDENCE or degrees == upright_by

    def test_skew_is_measured_counter_clockwise_in_degrees(
        self, engine: OcrEngine, contract_image_and_text: tuple[Image.Image, str]
    ) -> None:
        image, _ = contract_image_and_text
        assert abs(engine.estimate_skew(image)) < MIN_SKEW_DEGREES
        # PIL turns counter-clockwise; straightening that is a clockwise (negative) turn
        tilted = image.rotate(2.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        assert engine.estimate_skew(tilted) == pytest.approx(-2.0, abs=0.5)

    def test_close_releases_the_engine_for_good(
        self, engine: OcrEngine, contract_image_and_text: tuple[Image.Image, str]
    ) -> None:
        image, _ = contract_image_and_text
        engine.close()
        engine.close()  # closing twice is harmless (shutdown paths may both close)
        with pytest.raises(EngineConfigurationError, match="closed"):
            engine.recognize(image, dpi=200)
        with pytest.raises(EngineConfigurationError, match="closed"):
            engine.start()
