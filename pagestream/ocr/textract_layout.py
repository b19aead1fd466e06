"""Textract blocks → ``PageLayout``: the mapping shared by the sync engine and the async jobs.

Textract returns PAGE, LINE and WORD blocks linked by ``CHILD`` relationships, with
``Geometry.BoundingBox`` normalized to the page (Left/Top/Width/Height in 0–1) and confidences
already in 0–100. Textract has no level above LINE, so consecutive LINEs are grouped into one
``Block`` while the vertical gap to the previous line is at most ``BLOCK_GAP_FACTOR`` × the
taller line's height and their horizontal extents overlap (a paragraph-ish heuristic; a lone
line becomes its own block). Boxes are normalized × the size of the image the caller gives
(exact even if the upload was downscaled).

Pure data in, pure data out: no client, no network, so it is tested on recorded responses alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pagestream.engine_names import EngineName
from pagestream.layout import Block, Box, Line, PageLayout, Word

#: the engine name every Textract layout carries (sync or async)
ENGINE: Final[EngineName] = "textract"
#: consecutive lines closer than this × line height belong to the same block
BLOCK_GAP_FACTOR = 1.0


def _box(geometry: Mapping[str, Any] | None, *, width: int, height: int) -> Box | None:
    """Pixel box from a normalized ``Geometry.BoundingBox`` (Polygon when the box is absent)."""
    if not geometry:
        return None
    bb = geometry.get("BoundingBox")
    if bb:
        left, top = float(bb.get("Left", 0.0)), float(bb.get("Top", 0.0))
        right, bottom = left + float(bb.get("Width", 0.0)), top + float(bb.get("Height", 0.0))
    elif geometry.get("Polygon"):
        xs = [float(p.get("X", 0.0)) for p in geometry["Polygon"]]
        ys = [float(p.get("Y", 0.0)) for p in geometry["Polygon"]]
        left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    else:
        return None

    def clamp(v: float) -> float:
        return min(1.0, max(0.0, v))

    left, top, right, bottom = clamp(left), clamp(top), clamp(right), clamp(bottom)
    return Box.from_pixels(left * width, top * height, right * width, bottom * height, width, height)


def _child_ids(block: Mapping[str, Any]) -> list[str]:
    """Ids of a block's CHILD relationships, in order."""
    return [
        i
        for rel in block.get("Relationships") or []
        if rel.get("Type") == "CHILD"
        for i in rel.get("Ids", [])
    ]


def _same_block(previous: Line, line: Line) -> bool:
    """Whether ``line`` continues the block that ``previous`` ends (small gap, overlapping columns)."""
    gap = line.box.y0 - previous.box.y1
    tallest = max(previous.box.y1 - previous.box.y0, line.box.y1 - line.box.y0)
    overlaps = line.box.x0 < previous.box.x1 and previous.box.x0 < line.box.x1
    return -tallest / 2 <= gap <= BLOCK_GAP_FACTOR * tallest and overlaps


def layout_from_blocks(
    blocks: Iterable[Mapping[str, Any]], *, width: int, height: int, engine_version: str
) -> PageLayout:
    """Map one page's Textract blocks (PAGE/LINE/WORD with CHILD relationships) to a ``PageLayout``."""
    by_id = {b["Id"]: b for b in blocks if "Id" in b}
    lines: list[Line] = []
    for tblock in by_id.values():
        if tblock.get("BlockType") != "LINE":
            continue
        words: list[Word] = []
        for child_id in _child_ids(tblock):
            child = by_id.get(child_id)
            if not child or child.get("BlockType") != "WORD":
                continue
            box = _box(child.get("Geometry"), width=width, height=height)
            text = child.get("Text", "")
            if box is None or not text.strip():
                continue
            confidence = min(100.0, max(0.0, float(child.get("Confidence", 0.0))))
            words.append(Word(text=text, box=box, confidence=round(confidence, 2)))
        line_box = _box(tblock.get("Geometry"), width=width, height=height)
        if line_box is None and words:
            line_box = Box.around([w.box for w in words], width, height)
        text = tblock.get("Text") or " ".join(w.text for w in words)
        if line_box is not None and text.strip():
            lines.append(Line(text=text, box=line_box, words=words))

    grouped: list[list[Line]] = []
    for line in lines:
        if grouped and _same_block(grouped[-1][-1], line):
            grouped[-1].append(line)
        else:
            grouped.append([line])
    out_blocks = [
        Block(
            text="\n".join(ln.text for ln in group),
            box=Box.around([ln.box for ln in group], width, height),
            lines=group,
        )
        for group in grouped
    ]
    all_words = [w for ln in lines for w in ln.words]
    return PageLayout(
        text="\n".join(ln.text for ln in lines),
        width=width,
        height=height,
        rotation=0,
        source="ocr",
        engine=ENGINE,
        engine_version=engine_version,
        mean_confidence=round(sum(w.confidence for w in all_words) / len(all_words), 2)
        if all_words
        else None,
        blocks=out_blocks,
    )
