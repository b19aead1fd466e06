"""Per-page image repair before OCR: decide cheaply what a page needs, do only that, undo the geometry after.

A look at a small copy of the page (about 800 px on its long side, a few milliseconds) decides:

- **page detection + perspective correction** when the page sits on a darker surround (a phone
  photo): the sheet's quadrilateral is found and warped to a rectangle, at the size that gives
  Tesseract its preferred text height;
- **illumination normalization** (divide by the estimated paper background) and **adaptive
  binarization** (Sauvola) when the paper's brightness varies a lot across the page;
- **resolution repair** when the text is small in pixels (low-dpi faxes, 150 dpi scans):
  upscale so that letters are about as tall as on a 300 dpi page;
- **speckle removal** (isolated dots that survived thresholding) on pages that are being
  upscaled or binarized, when they carry many such dots;
- **downscaling** when even the page's smaller letters are far taller in pixels than Tesseract
  needs (10-12 pt body text on a 300 dpi scan): Tesseract's recognizer scales every text line to
  a fixed height anyway, but its thresholding and layout analysis cost grows with the pixels, so
  about a sixth of such a page's CPU time goes to resolution that adds no accuracy.

A clean 300 dpi scan of small print gets none of these: the look costs milliseconds and the image
goes to the engine untouched. ``Preprocessed.to_source`` maps the processed image's pixels back to the input's,
so word boxes can be reported on the page as it was submitted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from pagestream.errors import ConfigurationError
from pagestream.layout import Preprocessing, PreprocessingStep

# One OCR worker per core reads one page at a time: OpenCV's own thread pool would only compete
# with the other workers (and Tesseract runs with OMP_THREAD_LIMIT=1 for the same reason).
cv2.setNumThreads(1)

#: Long side of the copy the decisions are made on.
ANALYSIS_SIDE = 800
#: Median height (px) of letter-sized ink components Tesseract reads best at (11 pt at 300 dpi ≈ 28).
TARGET_TEXT_HEIGHT = 28.0
#: Thresholded (bilevel) text smaller than this (median component height, px) is upscaled ...
MIN_TEXT_HEIGHT = 20.0
#: ... grey (anti-aliased) text only below this.
MIN_GRAY_TEXT_HEIGHT = 10.0
#: Pages with a known resolution below this (dpi) are upscaled to ``TARGET_DPI``.
MIN_DPI = 200.0
TARGET_DPI = 300.0
#: Never enlarge more than this, nor beyond this many pixels.
MAX_UPSCALE = 3.0
MAX_OUTPUT_PIXELS = 40_000_000
#: Paper brightness varying by more than this share (1 - p5/p95 of the background) is uneven light.
UNEVEN_LIGHT = 0.18
#: A surround darker than this share of the paper's brightness marks a photographed sheet.
DARK_SURROUND = 0.6
#: The sheet must cover at least this share of a photo to be trusted as the page.
MIN_PAGE_AREA = 0.2
#: Dots of at most this many pixels (or (letter height / 6)², if larger) away from letters are speckle ...
SPECK_MAX_AREA = 3
#: ... and are removed when they are at least this share of all ink components.
SPECK_MIN_SHARE = 0.15


#: A page is shrunk so that its smaller letters (the 10th percentile of letter heights, px) are
#: this tall. Measured on the 10-12 pt 300 dpi scans of bench section 1 (24-30 px letters): at
#: 17 px Tesseract reads them as well (CER 0.004 % vs 0.008 % on 12 pages) in 17 % less CPU
#: time; shrunk to half (12-15 px) it starts to misread, and below ~0.65 the time saved levels off.
DOWNSCALE_TEXT_HEIGHT = 17.0
#: Shrink only when it removes at least a quarter of the pixels (factor ≤ this) ...
MAX_DOWNSCALE = 0.85
#: ... and never by more than this factor (pages of huge letters: posters, slides).
MIN_DOWNSCALE = 0.5
#: Letters counted to decide (fewer: a drawing, a photo, a nearly empty page: left as it is).
MIN_LETTERS_TO_DOWNSCALE = 200


#: Step names as ``PAGESTREAM_OCR_PREPROCESS_DISABLE`` takes them.
STEP_NAMES = ("page-detection", "illumination", "binarization", "upscale", "denoise", "downscale")


@dataclass(frozen=True)
class PreprocessOptions:
    """Which steps may run (each still only when the page needs it). All on by default."""

    enabled: bool = True
    page_detection: bool = True
    illumination: bool = True
    binarization: bool = True
    upscale: bool = True
    denoise: bool = True
    downscale: bool = True

    @classmethod
    def from_flags(cls, enabled: bool = True, disable: str = "") -> PreprocessOptions:
        """From the settings: the stage on or off, and a comma-separated list of steps to turn off."""
        off = {name.strip().lower().replace("_", "-") for name in disable.split(",") if name.strip()}
        unknown = off - set(STEP_NAMES)
        if unknown:
            raise ConfigurationError(
                f"unknown preprocessing step(s) {', '.join(sorted(unknown))} in PAGESTREAM_OCR_PREPROCESS_DISABLE; "
                f"choose from {', '.join(STEP_NAMES)}"
            )
        return cls(enabled=enabled, **{name.replace("-", "_"): name not in off for name in STEP_NAMES})


@dataclass
class Preprocessed:
    """The image for the engine, how it maps back, and what was done."""

    image: Image.Image
    #: 3×3 homography from ``image`` pixels to the input image's pixels (identity when untouched).
    to_source: np.ndarray
    dpi: float | None
    record: Preprocessing
    changed: bool = field(default=False)

    def map_box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        """The axis-aligned box, in input pixels, around a box of ``image``."""
        corners = np.array([[[x0, y0]], [[x1, y0]], [[x1, y1]], [[x0, y1]]], dtype=np.float32)
        mapped = cv2.perspectiveTransform(corners, self.to_source.astype(np.float64)).reshape(-1, 2)
        return (
            float(mapped[:, 0].min()),
            float(mapped[:, 1].min()),
            float(mapped[:, 0].max()),
            float(mapped[:, 1].max()),
        )


class _Steps:
    def __init__(self) -> None:
        self.steps: list[PreprocessingStep] = []

    def add(self, name: str, started: float, **params: float | int | str | bool) -> None:
        self.steps.append(
            PreprocessingStep(name=name, seconds=round(time.perf_counter() - started, 4), params=params)
        )


def _shrink(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """A copy about ``ANALYSIS_SIDE`` px on its long side, by an integer factor (OpenCV's fast
    path: a third of the time of an arbitrary one), and the scale applied."""
    k = max(1, math.ceil(max(gray.shape) / ANALYSIS_SIDE))
    if k == 1:
        return gray, 1.0
    return cv2.resize(gray, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA), 1 / k


def _scale_matrix(factor: float) -> np.ndarray:
    return np.diag([factor, factor, 1.0])


def _background(gray: np.ndarray, kernel: int) -> np.ndarray:
    """Paper brightness without the ink: a grey closing (dark strokes filled in), smoothed."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    closed = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, k)
    return cv2.medianBlur(closed, 5)


def _order_corners(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    pts = points.reshape(4, 2).astype(np.float32)
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    return np.array(
        [pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], dtype=np.float32
    )


def _find_sheet(background: np.ndarray) -> np.ndarray | None:
    """Corners (small-image pixels) of the bright sheet on a darker surround, or ``None``."""
    blurred = cv2.GaussianBlur(background, (5, 5), 0)
    edges = cv2.Canny(blurred, 20, 60)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    area = background.shape[0] * background.shape[1]
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    if cv2.contourArea(hull) < MIN_PAGE_AREA * area:
        return None
    perimeter = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            return _order_corners(approx)
    return None


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink = 1 by Otsu's threshold."""
    _, binary = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return binary


def _isolated_specks(ink: np.ndarray) -> tuple[np.ndarray, float | None, int, int]:
    """Find speckle: ink dots much smaller than a letter and away from any letter.

    Returns a per-pixel mask of the specks, the median letter height (``None`` if there are
    too few letters to tell), the number of specks and of all ink components. Periods, commas
    and i-dots sit within half a letter of bigger ink and are kept.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    letters = (h >= 5) & (h <= 200) & (w <= 3 * h) & (area >= 12)
    letters[0] = False
    if np.count_nonzero(letters) < 20:
        return np.zeros(ink.shape, bool), None, 0, count - 1
    height = float(np.median(h[letters]))
    small = area <= max(SPECK_MAX_AREA, round((height / 6) ** 2))
    small[0] = False
    big = ~small
    big[0] = False
    reach = max(3, int(round(height / 2)))
    near = cv2.dilate(
        big[labels].astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach))
    )
    touching = np.unique(labels[small[labels] & (near > 0)])
    speck = small.copy()
    speck[touching] = False
    return speck[labels], height, int(np.count_nonzero(speck)), count - 1


def _sample(gray: np.ndarray, side: int = 1200) -> np.ndarray:
    """A central crop (full resolution) big enough to hold a few lines of text."""
    h, w = gray.shape
    if h * w <= side * side * 2:
        return gray
    y0, x0 = max(0, h // 2 - side // 2), max(0, w // 2 - side // 2)
    # the upper middle of a page is where text usually is
    y0 = max(0, min(h - side, h // 3 - side // 2))
    return gray[y0 : y0 + side, x0 : x0 + side]


def _text_height(gray: np.ndarray) -> tuple[float | None, float]:
    """Median letter height (px) and the share of isolated specks, from a sample of ``gray``."""
    _, height, specks, total = _isolated_specks(_ink(_sample(gray)))
    return height, specks / max(1, total)


def _small_letter_height(gray: np.ndarray) -> float | None:
    """Height (px of ``gray``) of the page's smaller letters: the 10th percentile of letter-sized
    ink components over the whole page, counted on a half-size copy (~10 ms on a 300 dpi page).

    The whole page, not a sample: small print anywhere (a footnote, a title block) must keep the
    page from being shrunk. ``None`` when there are too few letters to tell.
    """
    k = 2 if min(gray.shape) >= 1600 else 1
    half = cv2.resize(gray, None, fx=1 / k, fy=1 / k, interpolation=cv2.INTER_AREA) if k > 1 else gray
    stats = cv2.connectedComponentsWithStats(_ink(half), connectivity=8)[2][1:]
    w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    letters = (h >= 4) & (h <= 200) & (w <= 3 * h) & (area >= 6)
    if np.count_nonzero(letters) < MIN_LETTERS_TO_DOWNSCALE:
        return None
    return float(np.percentile(h[letters], 10)) * k


def _is_bilevel(gray: np.ndarray) -> bool:
    """A thresholded page (fax, bilevel TIFF saved as JPEG): few mid-grey pixels next to its ink."""
    sample = _sample(gray)
    dark = np.count_nonzero(sample < 64)
    mid = np.count_nonzero((sample >= 64) & (sample < 192))
    return bool(dark > 0 and mid < 0.5 * dark)


def _sauvola(
    gray: np.ndarray, window: int, k: float = 0.2, r: float = 128.0, strip: int = 1024
) -> np.ndarray:
    """Sauvola's adaptive threshold: ink where the pixel is below mean·(1 + k·(std/R − 1)).

    Computed in horizontal strips (overlapping by half a window) so that the float temporaries
    stay a few tens of MB whatever the page size.
    """
    out = np.empty_like(gray)
    pad = window // 2 + 1
    for y0 in range(0, gray.shape[0], strip):
        y1 = min(gray.shape[0], y0 + strip)
        a, b = max(0, y0 - pad), min(gray.shape[0], y1 + pad)
        g = gray[a:b].astype(np.float32)
        mean = cv2.boxFilter(g, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT)
        sq = cv2.boxFilter(g * g, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT)
        std = np.sqrt(np.maximum(sq - mean * mean, 0))
        threshold = mean * (1 + k * (std / r - 1))
        out[y0:y1] = np.where(g > threshold, 255, 0)[y0 - a : y1 - a]
    return out


def _remove_specks(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """Paint isolated specks (see ``_isolated_specks``) paper-white."""
    mask, _, removed, _ = _isolated_specks(_ink(gray))
    if not removed:
        return gray, 0
    out = gray.copy()
    out[mask] = 255
    return out, removed


def preprocess(
    image: Image.Image, dpi: float | None, options: PreprocessOptions | None = None
) -> Preprocessed:
    """Repair ``image`` (grayscale) for OCR as far as it needs; see the module docstring."""
    options = options or PreprocessOptions()
    started = time.perf_counter()
    identity = np.eye(3)
    if not options.enabled:
        return Preprocessed(image, identity, dpi, Preprocessing(steps=[], analysis_seconds=0.0, seconds=0.0))
    gray = np.asarray(image.convert("L") if image.mode != "L" else image)
    h, w = gray.shape
    steps = _Steps()

    # --- the look: a small copy, its paper background, its surround ---
    small, f = _shrink(gray)
    background = _background(small, 15)
    sh, sw = background.shape
    band = max(2, round(0.03 * min(sh, sw)))
    surround = np.concatenate(
        [
            background[:band].ravel(),
            background[-band:].ravel(),
            background[:, :band].ravel(),
            background[:, -band:].ravel(),
        ]
    )
    paper = float(np.percentile(background, 90)) or 1.0
    corners = None
    if options.page_detection and float(np.median(surround)) < DARK_SURROUND * paper:
        corners = _find_sheet(background)
    region = background
    if corners is not None:
        mask = np.zeros_like(background)
        cv2.fillConvexPoly(mask, corners.astype(np.int32), 1)
        mask = cv2.erode(mask, np.ones((9, 9), np.uint8))
        region_values = background[mask > 0]
        region = region_values if region_values.size else background
    p5, p95 = np.percentile(region, (5, 95))
    unevenness = 1.0 - float(p5) / max(float(p95), 1.0)
    uneven = options.illumination and unevenness > UNEVEN_LIGHT

    text_height: float | None = None
    speck_share = 0.0
    small_text = False
    if corners is None and not uneven and (dpi is None or dpi < MIN_DPI):
        # Low or no resolution given (phone JPEGs say 72 dpi or nothing): measure the letters. A
        # low dpi alone is no reason: a poster rendered at 20 dpi to fit the pixel budget has
        # letters hundreds of pixels tall.
        text_height, speck_share = _text_height(gray)
        # Anti-aliased grey text at 150-200 dpi Tesseract reads as well as upscaled (and twice as
        # fast; drawings' title blocks read worse upscaled): only thresholded pages (faxes) and
        # tiny grey text are enlarged.
        small_text = text_height is not None and (
            text_height < MIN_GRAY_TEXT_HEIGHT or (text_height < MIN_TEXT_HEIGHT and _is_bilevel(gray))
        )
    analysis_seconds = time.perf_counter() - started

    needs_work = corners is not None or uneven or (options.upscale and small_text)
    if not needs_work and options.downscale and not small_text:
        shrunk = _downscale(gray, dpi, started, analysis_seconds, unevenness)
        if shrunk is not None:
            return shrunk
    if not needs_work:
        record = Preprocessing(
            steps=[],
            analysis_seconds=round(analysis_seconds, 4),
            seconds=round(time.perf_counter() - started, 4),
            unevenness=round(unevenness, 3),
        )
        return Preprocessed(image, identity, dpi, record)

    to_source: np.ndarray = identity
    out = gray
    out_dpi = dpi

    # --- geometry: the sheet warped flat, at a good text size ---
    if corners is not None:
        t = time.perf_counter()
        quad = corners / f
        top = np.linalg.norm(quad[1] - quad[0])
        bottom = np.linalg.norm(quad[2] - quad[3])
        left = np.linalg.norm(quad[3] - quad[0])
        right = np.linalg.norm(quad[2] - quad[1])
        width, height = float(max(top, bottom)), float(max(left, right))
        rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
        warp = cv2.getPerspectiveTransform(quad.astype(np.float32), rect)
        # A window of the flattened sheet at native size tells the text height (the upper middle,
        # where text usually is); then one warp of the whole sheet with the scale folded in.
        side = 1200
        sw_, sh_ = min(side, round(width)), min(side, round(height))
        ox, oy = max(0.0, width / 2 - sw_ / 2), max(0.0, min(height - sh_, height / 3 - sh_ / 2))
        to_window = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]], dtype=np.float64) @ warp
        sample = cv2.warpPerspective(
            gray, to_window, (sw_, sh_), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        text_height, speck_share = _text_height(_normalize(sample))
        factor = 1.0
        if options.upscale and text_height is not None:
            factor = float(np.clip(TARGET_TEXT_HEIGHT / text_height, 1.0 / MAX_UPSCALE, MAX_UPSCALE))
            factor = min(factor, float((MAX_OUTPUT_PIXELS / (width * height)) ** 0.5))
            if 0.85 <= factor <= 1.15:
                factor = 1.0
        warp = _scale_matrix(factor) @ warp
        flat = cv2.warpPerspective(
            gray,
            warp,
            (round(width * factor), round(height * factor)),
            flags=cv2.INTER_CUBIC if factor > 1.0 else cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        out = flat
        to_source = np.linalg.inv(warp)
        out_dpi = TARGET_DPI if text_height else None
        steps.add(
            "perspective",
            t,
            factor=round(factor, 3),
            text_height=round(text_height, 1) if text_height else 0.0,
            corners=" ".join(f"{x:.0f},{y:.0f}" for x, y in quad),
        )
        uneven = options.illumination  # a photo's light is never even enough to skip it

    # --- light: divide by the paper background, then threshold locally ---
    if uneven:
        t = time.perf_counter()
        out = _normalize(out)
        steps.add("illumination", t, unevenness=round(unevenness, 3))

    # --- resolution ---
    if corners is None and options.upscale and small_text:
        factor = (TARGET_DPI / dpi) if dpi else TARGET_TEXT_HEIGHT / float(text_height or TARGET_TEXT_HEIGHT)
        factor = float(min(MAX_UPSCALE, factor, (MAX_OUTPUT_PIXELS / (out.shape[0] * out.shape[1])) ** 0.5))
        if options.denoise and speck_share >= SPECK_MIN_SHARE:
            t = time.perf_counter()
            out, removed = _remove_specks(out)
            steps.add("denoise", t, removed=removed, share=round(speck_share, 3))
        if factor > 1.05:
            t = time.perf_counter()
            size = (round(out.shape[1] * factor), round(out.shape[0] * factor))
            bilevel = _is_bilevel(out)
            if bilevel:
                # A thresholded page (fax): enlarge its black/white shapes smoothly and threshold
                # again, instead of enlarging the JPEG's blotches around every stroke.
                _, binary = cv2.threshold(out, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
                big = cv2.GaussianBlur(
                    cv2.resize(binary, size, interpolation=cv2.INTER_LINEAR), (0, 0), factor / 2
                )
                out = np.where(big > 127, 255, 0).astype(np.uint8)
            else:
                out = cv2.resize(out, size, interpolation=cv2.INTER_CUBIC)
            to_source = to_source @ _scale_matrix(1 / factor)
            out_dpi = (dpi * factor) if dpi else TARGET_DPI
            steps.add(
                "upscale",
                t,
                factor=round(factor, 3),
                bilevel=bilevel,
                text_height=round(text_height, 1) if text_height else 0.0,
                dpi=round(dpi or 0.0, 1),
            )

    if uneven and options.binarization:
        t = time.perf_counter()
        window = max(15, int(round(2.5 * TARGET_TEXT_HEIGHT)) | 1)
        out = _sauvola(out, window)
        steps.add("binarization", t, method="sauvola", window=window)
        if options.denoise:
            t = time.perf_counter()
            _, share = _text_height(out)  # on a sample: cheap, and most photos need nothing more
            if share >= SPECK_MIN_SHARE:
                out, removed = _remove_specks(out)
                steps.add("denoise", t, removed=removed, share=round(share, 3))

    record = Preprocessing(
        steps=steps.steps,
        analysis_seconds=round(analysis_seconds, 4),
        seconds=round(time.perf_counter() - started, 4),
        unevenness=round(unevenness, 3),
    )
    return Preprocessed(
        Image.fromarray(np.ascontiguousarray(out), "L"), to_source, out_dpi, record, changed=True
    )


def _downscale(
    gray: np.ndarray, dpi: float | None, started: float, analysis_seconds: float, unevenness: float
) -> Preprocessed | None:
    """The page shrunk so its smaller letters are ``DOWNSCALE_TEXT_HEIGHT`` px tall, or ``None``
    when it would not shrink by a quarter (small print, few letters)."""
    t = time.perf_counter()
    letters = _small_letter_height(gray)
    if letters is None or DOWNSCALE_TEXT_HEIGHT / letters > MAX_DOWNSCALE:
        return None
    factor = max(MIN_DOWNSCALE, DOWNSCALE_TEXT_HEIGHT / letters)
    h, w = gray.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    # Area averaging: every source pixel counts once (no aliasing of thin strokes), and single
    # speckle pixels fade below the ink threshold instead of surviving as blobs.
    out = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    factor_x, factor_y = size[0] / w, size[1] / h
    steps = _Steps()
    steps.add(
        "downscale", t, factor=round(factor, 3), text_height=round(letters, 1), dpi=round(dpi or 0.0, 1)
    )
    record = Preprocessing(
        steps=steps.steps,
        analysis_seconds=round(analysis_seconds, 4),
        seconds=round(time.perf_counter() - started, 4),
        unevenness=round(unevenness, 3),
    )
    to_source = np.diag([1 / factor_x, 1 / factor_y, 1.0])
    return Preprocessed(
        Image.fromarray(out, "L"), to_source, dpi * factor if dpi else None, record, changed=True
    )


def _normalize(gray: np.ndarray) -> np.ndarray:
    """Divide by the paper's background so the page is evenly lit (paper → ~255, ink keeps its contrast)."""
    h, w = gray.shape
    small, _ = _shrink(gray)
    background = cv2.resize(_background(small, 15), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(gray, np.maximum(background, 1), scale=255)
