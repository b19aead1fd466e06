"""Engine selection by name (configuration, or per document)."""

from __future__ import annotations

from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.settings import Settings

ENGINE_NAMES = ("tesseract", "google-vision", "textract")


def make_engine(name: str, settings: Settings) -> OcrEngine:
    """A not-yet-started engine called ``name``."""
    if name == "tesseract":
        from pagestream.ocr.tesseract import TesseractEngine

        return TesseractEngine(languages=settings.ocr_languages, tessdata=settings.tessdata_prefix)
    if name == "google-vision":
        from pagestream.ocr.vision import GoogleVisionEngine

        return GoogleVisionEngine()
    if name == "textract":
        from pagestream.ocr.textract import TextractEngine

        return TextractEngine()
    raise EngineConfigurationError(f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
