"""Degraded pages with known text: phone photos of a sheet and fax-like scans (deterministic, no downloads).

- ``phone_photo``: the page warped in perspective onto a darker table, uneven light (a gradient
  and a vignette), slight blur, sensor noise, a warm tint, JPEG without a resolution.
- ``fax_page``: the page at 150 dpi (or a fax's 200×100 dpi), hard-thresholded, with speckle and
  dropouts, then saved as a heavily compressed JPEG.

Every generator returns a ``DegradedPage`` (encoded bytes, media type, ground-truth text).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from pagestream._testing.pages import LETTER_LINES, REPORT_PAGES, text_page_image

_PROSE: tuple[str, ...] = tuple(
    line for line in (*LETTER_LINES, *(ln for page in REPORT_PAGES for ln in page[1:])) if len(line) > 30
)
_HEADINGS: tuple[str, ...] = (
    "Northwind Engineering Ltd.",
    "Site Inspection Notes",
    "Invoice and Delivery Note",
    "Structural Review Summary",
    "Quarterly Operations Report",
)

KINDS = ("clean", "photo", "fax")


@dataclass(frozen=True)
class DegradedPage:
    """One generated page: ``data`` as a client would upload it, and the text printed on it."""

    name: str
    kind: str
    data: bytes
    media_type: str
    truth: str
    #: for photos: the 3×3 homography taking the clean 300 dpi sheet's pixels into the photo's
    sheet_to_image: tuple[tuple[float, ...], ...] | None = None


def page_lines(seed: int, body_lines: int = 24) -> list[str]:
    """A page of business prose: a heading, a reference line, paragraphs (seeded, repeatable)."""
    rng = random.Random(seed)
    lines = [rng.choice(_HEADINGS), f"Reference NW-{2000 + seed}   {rng.randint(1, 28)} April 2026", ""]
    while body_lines > 0:
        paragraph = min(rng.randint(3, 5), body_lines)
        lines.extend(rng.choice(_PROSE) for _ in range(paragraph))
        lines.append("")
        body_lines -= paragraph
    return lines


def _truth(lines: list[str]) -> str:
    return "\n".join(line for line in lines if line)


def _jpeg(image: np.ndarray, quality: int, dpi: int | None = None) -> bytes:
    mode = "RGB" if image.ndim == 3 else "L"
    buf = io.BytesIO()
    Image.fromarray(image, mode).save(buf, "JPEG", quality=quality, **({"dpi": (dpi, dpi)} if dpi else {}))
    return buf.getvalue()


def phone_photo(seed: int, *, size: tuple[int, int] = (2448, 3264), font_pt: float = 10.0) -> DegradedPage:
    """A letter page photographed from above at an angle: perspective tilt, dark margin, uneven light."""
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    lines = page_lines(seed)
    sheet = np.asarray(text_page_image(lines, dpi=300, font_pt=font_pt), dtype=np.uint8)
    sh, sw = sheet.shape
    width, height = size

    # The sheet covers ~70-80 % of the frame's height; the far (top) edge is shorter: camera tilt.
    page_h = height * r.uniform(0.74, 0.82)
    page_w = page_h * sw / sh
    cx, cy = width / 2 + r.uniform(-60, 60), height / 2 + r.uniform(-40, 40)
    shrink = r.uniform(0.08, 0.14)  # top edge narrower than the bottom
    top = page_w * (1 - shrink) / 2
    bottom = page_w / 2
    jitter = lambda: r.uniform(-35, 35)  # noqa: E731 - a one-line helper
    quad = np.array(
        [
            [cx - top + jitter(), cy - page_h / 2 + jitter()],
            [cx + top + jitter(), cy - page_h / 2 + jitter()],
            [cx + bottom + jitter(), cy + page_h / 2 + jitter()],
            [cx - bottom + jitter(), cy + page_h / 2 + jitter()],
        ],
        dtype=np.float32,
    )
    # a small in-plane turn of the whole sheet
    angle = np.deg2rad(r.uniform(-3.0, 3.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    quad = ((quad - [cx, cy]) @ rot.T + [cx, cy]).astype(np.float32)
    src = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], dtype=np.float32)
    homography = cv2.getPerspectiveTransform(src, quad)
    paper = cv2.warpPerspective(sheet, homography, (width, height), flags=cv2.INTER_AREA, borderValue=0)
    mask = cv2.warpPerspective(np.full_like(sheet, 255), homography, (width, height), flags=cv2.INTER_LINEAR)

    # Table: dark, with a low-frequency texture.
    texture = cv2.resize(
        rng.normal(0, 1, (12, 9)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    table = 70 + 12 * texture
    paper_f = 30 + paper.astype(np.float32) * (228 - 30) / 255
    alpha = mask.astype(np.float32) / 255
    scene: np.ndarray = alpha * paper_f + (1 - alpha) * table

    # Light: a gradient across the frame, a vignette and a soft shadow (the phone's, or the hand's)
    # over a band of the sheet. Smooth fields: computed small, then enlarged.
    lw, lh = width // 8, height // 8
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    theta = r.uniform(0, 2 * np.pi)
    ramp = (np.cos(theta) * (xx / lw - 0.5) + np.sin(theta) * (yy / lh - 0.5)) + 0.5
    light: np.ndarray = 1.0 - r.uniform(0.45, 0.6) * np.clip(ramp, 0, 1)
    radius = ((xx - lw / 2) / lw) ** 2 + ((yy - lh / 2) / lh) ** 2
    light *= 1.0 - 0.5 * radius
    shadow: np.ndarray = np.zeros((lh, lw), np.float32)
    x0 = r.uniform(0.1, 0.6) * lw
    band = np.array(
        [[x0, 0], [x0 + 0.25 * lw, 0], [x0 + 0.45 * lw, lh], [x0 + 0.2 * lw, lh]], dtype=np.float32
    )
    cv2.fillConvexPoly(shadow, band.astype(np.int32), 1.0)
    shadow = cv2.GaussianBlur(shadow, (0, 0), lw / 40)
    light *= 1.0 - r.uniform(0.3, 0.4) * shadow
    light = cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR)
    scene *= light

    scene = cv2.GaussianBlur(scene, (0, 0), r.uniform(1.2, 1.5))
    scene += rng.normal(0, 3.0, scene.shape).astype(np.float32)
    gray = np.clip(scene, 0, 255)
    tint = np.stack([gray * 1.0, gray * 0.96, gray * 0.86], axis=-1)
    rgb = np.clip(tint, 0, 255).astype(np.uint8)
    return DegradedPage(
        f"photo-{seed}",
        "photo",
        _jpeg(rgb, 88),
        "image/jpeg",
        _truth(lines),
        sheet_to_image=tuple(tuple(float(v) for v in row) for row in homography),
    )


def fax_page(seed: int, *, font_pt: float = 11.0, record_dpi: bool | None = None) -> DegradedPage:
    """A fax-like page: 150 dpi, hard threshold, speckle and dropouts, heavy JPEG.

    ``record_dpi`` (default: every other seed) writes 150 dpi into the JPEG; without it the page
    size in pixels is all a reader has.
    """
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    lines = page_lines(100 + seed)
    clean = text_page_image(lines, dpi=300, font_pt=font_pt)
    tilt = r.uniform(-0.8, 0.8)
    clean = clean.rotate(tilt, resample=Image.Resampling.BICUBIC, fillcolor=255)
    page = np.asarray(clean, dtype=np.uint8)
    half = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_AREA)
    low: np.ndarray = cv2.GaussianBlur(half.astype(np.float32), (0, 0), 0.5)
    low += rng.normal(0, 6, low.shape).astype(np.float32)
    binary = np.where(low < r.uniform(135, 160), 0, 255).astype(np.uint8)
    # Speckle: isolated black dots (1-2 px) on the paper, white dropouts in the strokes.
    specks = rng.random(binary.shape) < 0.0035
    grow = cv2.dilate(specks.astype(np.uint8), np.ones((2, 2), np.uint8)) if r.random() < 0.5 else specks
    binary[(grow > 0) & (rng.random(binary.shape) < 0.6)] = 0
    binary[(binary == 0) & (rng.random(binary.shape) < 0.02)] = 255
    dpi = 150 if (seed % 2 == 0 if record_dpi is None else record_dpi) else None
    return DegradedPage(f"fax-{seed}", "fax", _jpeg(binary, 22, dpi), "image/jpeg", _truth(lines))


def clean_scan(seed: int) -> DegradedPage:
    """A clean 300 dpi grayscale scan (PNG with its dpi), the pages preprocessing must leave alone."""
    from pagestream._testing.pages import add_scan_effects, png_bytes

    lines = page_lines(200 + seed, body_lines=30)
    r = random.Random(seed)
    image = add_scan_effects(
        text_page_image(lines, dpi=300, font_pt=11),
        seed=seed,
        rotate_degrees=round(r.uniform(-1.0, 1.0), 2),
        noise=0.003,
        blur=0.5,
    )
    return DegradedPage(f"clean-{seed}", "clean", png_bytes(image, 300), "image/png", _truth(lines))


def generate(kind: str, seed: int) -> DegradedPage:
    """One page of ``kind`` (``clean``, ``photo`` or ``fax``)."""
    if kind == "photo":
        return phone_photo(seed)
    if kind == "fax":
        return fax_page(seed)
    if kind == "clean":
        return clean_scan(seed)
    raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
