"""The raw tesserocr wrapper: finds language data, owns one ``PyTessBaseAPI``, returns plain tuples.

Nothing here knows about ``PageLayout``; ``pagestream.ocr.tesseract`` adapts the output.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import tesserocr
from PIL import Image

from pagestream.ocr.errors import EngineConfigurationError, LanguageNotInstalledError

#: Where Debian/Ubuntu and common source builds put the language data (tesseract 5 first).
TESSDATA_CANDIDATES: tuple[str, ...] = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


@dataclass(frozen=True, slots=True)
class RawWord:
    """One recognized word as Tesseract reports it (pixel box, 0–100 confidence)."""

    block: int
    line: int
    text: str
    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float


#: Model files in tessdata that are not languages (orientation and script detection).
NOT_LANGUAGES = frozenset({"osd", "equ"})
_LANGUAGE_CODE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _missing(path: Path, languages: str) -> list[str]:
    return [lang for lang in languages.split("+") if lang and not (path / f"{lang}.traineddata").is_file()]


def installed_languages(tessdata: str | None = None) -> list[str]:
    """Language codes with a model in ``tessdata`` (default: every candidate directory), sorted."""
    found: set[str] = set()
    for candidate in [tessdata] if tessdata else list(TESSDATA_CANDIDATES):
        path = Path(candidate)
        if path.is_dir():
            found.update(p.name.removesuffix(".traineddata") for p in path.glob("*.traineddata"))
    return sorted(found - NOT_LANGUAGES)


def check_languages(languages: str, tessdata: str | None = None) -> None:
    """Refuse what cannot be a language set before touching files: empty parts, paths, ``osd``."""
    parts = languages.split("+")
    installed = ", ".join(installed_languages(tessdata)) or "none"
    for lang in parts:
        if not _LANGUAGE_CODE.match(lang):
            raise LanguageNotInstalledError(
                f"OCR languages {languages!r} are not valid: use installed language codes joined by '+' "
                f"(installed: {installed})"
            )
        if lang in NOT_LANGUAGES:
            raise LanguageNotInstalledError(
                f"{lang!r} is not a language (it is Tesseract's orientation/script data); "
                f"choose from the installed languages: {installed}"
            )


def resolve_tessdata(tessdata: str | None, languages: str) -> str:
    """Return the tessdata directory holding every language in ``languages`` (``eng+deu``).

    ``LanguageNotInstalledError`` (not retryable) names what is missing and what is installed.
    """
    check_languages(languages, tessdata)
    candidates = [tessdata] if tessdata else list(TESSDATA_CANDIDATES)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_dir() and not _missing(path, languages):
            return str(path)
    where = tessdata or ", ".join(TESSDATA_CANDIDATES)
    missing = sorted({m for c in candidates for m in _missing(Path(c), languages)}) or languages.split("+")
    installed = ", ".join(installed_languages(tessdata)) or "none"
    raise LanguageNotInstalledError(
        f"Tesseract language data {'+'.join(missing)!r} not found in {where} (installed: {installed}); "
        f"install tesseract-ocr-{missing[0]} or set TESSDATA_PREFIX "
        "to a directory containing the .traineddata files"
    )


def resolve_osd(tessdata: str) -> str:
    """The tessdata directory with ``osd.traineddata`` (orientation detection, not a language)."""
    if not (Path(tessdata) / "osd.traineddata").is_file():
        raise EngineConfigurationError(
            f"Tesseract orientation data 'osd' not found in {tessdata}; install tesseract-ocr-osd "
            "or set TESSDATA_PREFIX"
        )
    return tessdata


def library_version() -> str:
    """The bundled Tesseract library version, e.g. ``5.5.4``."""
    return tesserocr.tesseract_version().split()[1]


class TessApi:
    """One long-lived ``PyTessBaseAPI`` (model loaded once, reused for every page)."""

    def __init__(self, tessdata: str, languages: str, psm: tesserocr.PSM) -> None:
        try:
            self._api = tesserocr.PyTessBaseAPI(path=tessdata, lang=languages, psm=psm)
        except RuntimeError as e:
            raise EngineConfigurationError(
                f"Tesseract failed to load {languages!r} from {tessdata}: {e}; "
                "install tesseract-ocr-eng or set TESSDATA_PREFIX"
            ) from e

    def version(self) -> str:
        """The version the loaded library reports."""
        return str(self._api.Version())

    def set_image(self, image: Image.Image, dpi: float | None) -> None:
        """Give Tesseract the next image (and its resolution, when known).

        The pixels are handed over as they are (``SetImageBytes``): tesserocr's ``SetImage``
        encodes the image in its own format first (PNG for a decoded PNG: 0.1 s of zlib on a
        300 dpi page) for Leptonica to decode again.
        """
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB" if image.mode in ("RGBA", "P", "CMYK", "YCbCr") else "L")
        channels = 1 if image.mode == "L" else 3
        self._api.SetImageBytes(image.tobytes(), image.width, image.height, channels, image.width * channels)
        if dpi:
            self._api.SetSourceResolution(max(70, int(round(dpi))))

    def recognize(self, timeout_ms: int = 0) -> bool:
        """Run recognition; ``False`` when it timed out or was cancelled."""
        return bool(self._api.Recognize(timeout=timeout_ms))

    def skew_degrees(self) -> float:
        """The tilt Tesseract measured (and compensated) on the last page, counter-clockwise positive."""
        it = self._api.GetIterator()
        if it is None:
            return 0.0
        it.Begin()
        try:
            deskew_radians = it.Orientation()[3]
        except (RuntimeError, IndexError):
            return 0.0
        return round(-math.degrees(deskew_radians), 2)

    def words(self) -> list[RawWord]:
        """Words of the last recognition in reading order, numbered by block and line."""
        it = self._api.GetIterator()
        if it is None:
            return []
        out: list[RawWord] = []
        block = line = -1
        level = tesserocr.RIL.WORD
        for r in tesserocr.iterate_level(it, level):
            if r.Empty(level):
                continue
            if block < 0 or r.IsAtBeginningOf(tesserocr.RIL.BLOCK):
                block += 1
                line += 1
            elif r.IsAtBeginningOf(tesserocr.RIL.TEXTLINE):
                line += 1
            text = (r.GetUTF8Text(level) or "").strip()
            box = r.BoundingBox(level)
            if not text or box is None:
                continue
            x0, y0, x1, y1 = box
            out.append(RawWord(block, line, text, x0, y0, x1, y1, float(r.Confidence(level))))
        return out

    def detect_orientation(self) -> dict[str, float | str] | None:
        """Tesseract OSD on the current image; ``None`` when there was too little text."""
        try:
            return self._api.DetectOrientationScript()
        except RuntimeError:
            return None

    def clear(self) -> None:
        """Free the per-image results (keeps the loaded model)."""
        self._api.Clear()

    def end(self) -> None:
        """Release the API and its model."""
        self._api.End()
