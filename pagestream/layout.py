"""The structure of one recognized page: blocks → lines → words with boxes.

A leaf module shared by the OCR engines (which produce it) and the events (which
carry it), so neither depends on the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class Box(BaseModel):
    """An axis-aligned box in pixels of the analysed image, plus the same box normalized 0–1."""

    model_config = ConfigDict(frozen=True)

    x0: float
    y0: float
    x1: float
    y1: float
    nx0: float = Field(ge=0.0, le=1.0)
    ny0: float = Field(ge=0.0, le=1.0)
    nx1: float = Field(ge=0.0, le=1.0)
    ny1: float = Field(ge=0.0, le=1.0)

    @classmethod
    def from_pixels(cls, x0: float, y0: float, x1: float, y1: float, width: float, height: float) -> Box:
        """Build a box from pixel coordinates, clamping the normalized copy into 0–1."""

        def clamp(v: float) -> float:
            return min(1.0, max(0.0, v))

        w = width or 1.0
        h = height or 1.0
        return cls(
            x0=x0,
            y0=y0,
            x1=x1,
            y1=y1,
            nx0=clamp(x0 / w),
            ny0=clamp(y0 / h),
            nx1=clamp(x1 / w),
            ny1=clamp(y1 / h),
        )

    @classmethod
    def around(cls, boxes: Sequence[Box], width: float, height: float) -> Box:
        """The smallest box containing every one of ``boxes`` (a line around its words, a block around
        its lines) on a ``width`` × ``height`` image."""
        return cls.from_pixels(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
            width,
            height,
        )


class Word(BaseModel):
    text: str
    box: Box
    confidence: float = Field(ge=0.0, le=100.0, description="0–100; 100 for text-layer words")


class Line(BaseModel):
    text: str
    box: Box
    words: list[Word] = Field(default_factory=list)


class Block(BaseModel):
    text: str
    box: Box
    lines: list[Line] = Field(default_factory=list)


class TitleBlock(BaseModel):
    """Fields read from a construction drawing's title block; ``None`` when absent."""

    sheet_number: str | None = None
    sheet_title: str | None = None
    scale: str | None = None


class PreprocessingStep(BaseModel):
    """One image repair applied before OCR (``perspective``, ``illumination``, ``binarization``,
    ``upscale``, ``denoise``, ``downscale``), its wall time and what it measured or chose."""

    name: str
    seconds: float
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)


class Preprocessing(BaseModel):
    """What preprocessing decided for a page: the steps applied (none for a clean scan) and timings."""

    steps: list[PreprocessingStep] = Field(default_factory=list)
    analysis_seconds: float = 0.0  # time spent deciding (a look at a small copy)
    seconds: float = 0.0  # total, deciding included
    unevenness: float | None = None  # 1 - p5/p95 of the paper's brightness


class PageLayout(BaseModel):
    """Everything recognized on one page."""

    text: str = Field(description="full text in reading order; lines joined by newlines")
    width: int = Field(description="width in pixels of the analysed image (or points for text layers)")
    height: int
    dpi: float | None = None
    rotation: int = Field(0, description="clockwise degrees applied before recognition: 0/90/180/270")
    skew_degrees: float = 0.0
    source: str = Field(description="'ocr' or 'text-layer'")
    engine: str
    engine_version: str
    mean_confidence: float | None = None
    blocks: list[Block] = Field(default_factory=list)
    title_block: TitleBlock | None = None
    render_seconds: float = 0.0
    ocr_seconds: float = 0.0
    #: image repairs before OCR and their timings; None when not run (text layer, other engines, off)
    preprocessing: Preprocessing | None = None

    def words(self) -> list[Word]:
        return [w for b in self.blocks for ln in b.lines for w in ln.words]
