"""Engine selection by name (configuration, or per document).

The names come from ``pagestream.engine_names``; this module only knows how to build each one.
Engine modules are imported on first use, so a worker configured for Tesseract never loads
boto3 or the Google client libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from pagestream.engine_names import ENGINE_NAMES, EngineName
from pagestream.ocr.engine import OcrEngine
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.settings import Settings

__all__ = ["ENGINE_NAMES", "BUILDERS", "make_engine"]


def _tesseract(settings: Settings) -> OcrEngine:
    from pagestream.ocr.tesseract import TesseractEngine

    return TesseractEngine(languages=settings.ocr_languages, tessdata=settings.tessdata_prefix)


def _google_vision(settings: Settings) -> OcrEngine:
    from pagestream.ocr.vision import GoogleVisionEngine

    return GoogleVisionEngine()


def _textract(settings: Settings) -> OcrEngine:
    from pagestream.ocr.textract import TextractEngine

    return TextractEngine()


#: how to build each engine of the registry (``tests/unit/test_engine_registry.py`` checks both agree)
BUILDERS: dict[EngineName, Callable[[Settings], OcrEngine]] = {
    "tesseract": _tesseract,
    "google-vision": _google_vision,
    "textract": _textract,
}


def make_engine(name: str, settings: Settings) -> OcrEngine:
    """A not-yet-started engine called ``name``."""
    if name not in BUILDERS:
        raise EngineConfigurationError(
            f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}"
        )
    return BUILDERS[cast(EngineName, name)](settings)
