"""The OcrEngine contract against real Tesseract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagestream.ocr.errors import EngineConfigurationError
from pagestream.ocr.tesseract import TesseractEngine
from tests.contracts.ocr_engine_contract import OcrEngineContract

pytestmark = pytest.mark.integration


class TestTesseractContract(OcrEngineContract):
    subject = TesseractEngine

    @pytest.fixture
    def engine(self) -> Iterator[TesseractEngine]:
        engine = TesseractEngine()
        engine.start()
        yield engine
        engine.close()


def test_missing_language_data_says_what_to_install(tmp_path: object) -> None:
    with pytest.raises(EngineConfigurationError, match="install tesseract-ocr-eng or set TESSDATA_PREFIX"):
        TesseractEngine(tessdata=str(tmp_path)).start()
