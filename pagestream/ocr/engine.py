"""The OCR engine contract. Engines see images and return layouts: never Kafka, events or SQL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from PIL import Image

from pagestream.layout import PageLayout
from pagestream.ocr import deskew


class OcrEngine(ABC):
    """Recognizes text on one page image.

    Contract:
    - ``start()`` acquires expensive resources (a Tesseract API, a cloud client) once;
      nothing connects in ``__init__``.
    - ``recognize()`` is called many times on the same engine, one page at a time, from
      one thread; it returns a ``PageLayout`` whose boxes are in the pixels of ``image``
      and whose ``source`` is ``"ocr"``.
    - Errors are ``pagestream.ocr.errors.OcrError`` subclasses; ``retryable`` on the class
      says whether the same page may succeed later (throttling, timeouts) or not.
    - ``close()`` releases resources; the engine may not be used afterwards.
    - ``detect_orientation()`` and ``estimate_skew()`` are optional: the page processor calls
      them on every engine (orientation only for a page whose first reading went badly; skew
      for every page of an engine without ``corrects_skew``, else only for such a page). The
      defaults say "upright" and measure skew engine-agnostically; an engine with better
      knowledge (Tesseract's OSD) overrides them. Nothing is discovered by type checks.
    """

    name: ClassVar[str]
    #: True when the engine straightens small skew itself (and reports it in ``skew_degrees``);
    #: the page processor then does not spend time deskewing first.
    corrects_skew: ClassVar[bool] = False
    #: True when the engine reads better after the page processor's image repair (perspective,
    #: light, resolution, speckle: ``pagestream.ocr.preprocess``). Cloud engines do their own.
    wants_preprocessing: ClassVar[bool] = False

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources. Default: nothing to do."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Default: nothing to do."""

    def detect_orientation(self, image: Image.Image) -> tuple[int, float]:
        """Clockwise degrees (0, 90, 180 or 270) that turn ``image`` upright, and the confidence
        on Tesseract's OSD scale (the processor trusts a turn from 2.0 up).

        Default: ``(0, 0.0)``, "cannot tell": the page is read as it is. Engines that read any
        orientation themselves (the cloud engines) need nothing else.
        """
        return 0, 0.0

    def estimate_skew(self, image: Image.Image) -> float:
        """Counter-clockwise degrees that make the text lines of ``image`` horizontal.

        Default: a projection-profile search within ±5° (``pagestream.ocr.deskew``), which works
        for every engine. The processor asks only when it straightens a page itself: always for
        engines without ``corrects_skew``, otherwise only for a page that read badly.
        """
        return deskew.estimate_skew(image)

    @abstractmethod
    def version(self) -> str:
        """Engine name and version as reported by the engine, e.g. ``tesseract 5.5.4``."""

    @abstractmethod
    def recognize(
        self, image: Image.Image, *, languages: str = "eng", dpi: float | None = None
    ) -> PageLayout:
        """Recognize ``image`` (already upright) and return its layout."""

    def __enter__(self) -> OcrEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
