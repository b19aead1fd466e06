"""The OCR engines pagestream knows, by name: the one list every other place reads.

Settings (``PAGESTREAM_OCR_ENGINE``), the API (upload form, reprocess body, their OpenAPI enums),
the CLI (``--engine``) and ``pagestream.ocr.factory`` all take the names from here, so adding an
engine is one name here plus its builder in the factory (``tests/unit/test_engine_registry.py``
fails until the two agree). A leaf module: ``settings`` imports it, so it imports nothing of
pagestream, and it lives outside ``pagestream.ocr`` so that reading a name loads no engine.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

#: an OCR engine's name, as configuration, documents and the API spell it
EngineName = Literal["tesseract", "google-vision", "textract"]
#: every engine, in the order help texts list them
ENGINE_NAMES: Final[tuple[EngineName, ...]] = get_args(EngineName)
#: the engine used unless configuration or the document asks for another (local, free, no network)
DEFAULT_ENGINE: Final[EngineName] = "tesseract"
