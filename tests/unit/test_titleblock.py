"""Title-block parser on hand-built layouts (text-layer-like and OCR-noisy)."""

from __future__ import annotations

import pytest

from pagestream import titleblock
from pagestream.layout import Block, Box, Line, PageLayout, TitleBlock, Word

W, H = 1700, 1100


def _line(text: str, x: float, y: float, size: float = 10) -> Line:
    words, cx = [], x
    for token in text.split():
        w = len(token) * size * 0.6
        words.append(Word(text=token, box=Box.from_pixels(cx, y, cx + w, y + size, W, H), confidence=90))
        cx += w + size * 0.3
    return Line(text=text, box=Box.from_pixels(x, y, cx, y + size, W, H), words=words)


def _layout(*lines: Line) -> PageLayout:
    blocks = [Block(text=ln.text, box=ln.box, lines=[ln]) for ln in lines]
    return PageLayout(
        text="\n".join(ln.text for ln in lines),
        width=W,
        height=H,
        source="ocr",
        engine="test",
        engine_version="0",
        blocks=blocks,
    )


def test_box_layout_with_labels_below_values() -> None:
    layout = _layout(
        _line("OFFICE", 300, 300),
        _line("3", 700, 600),
        _line("A-501", 690, 612, 8),
        _line("SHEET TITLE", 1250, 800, 7),
        _line("FIRST FLOOR PLAN", 1255, 815, 14),
        _line("SCALE", 1250, 850, 7),
        _line('1/4" = 1\'-0"', 1255, 862, 12),
        _line("SHEET NO.", 1250, 900, 7),
        _line("A-101", 1255, 940, 40),
    )
    assert titleblock.parse(layout) == TitleBlock(
        sheet_number="A-101", sheet_title="FIRST FLOOR PLAN", scale='1/4" = 1\'-0"'
    )


def test_inline_labels_and_ocr_quotes() -> None:
    layout = _layout(
        _line("DRAWING TITLE: LIGHTING PLAN", 1250, 800, 10),
        _line("SCALE: 1/8”=1’-0”", 1250, 850, 10),
        _line("DRAWING NO. E2.03", 1250, 900, 12),
    )
    assert titleblock.parse(layout) == TitleBlock(
        sheet_number="E2.03", sheet_title="LIGHTING PLAN", scale='1/8" = 1\'-0"'
    )


def test_two_line_title_in_right_strip_and_double_apostrophe_quotes() -> None:
    layout = _layout(
        _line("REV DATE DESCRIPTION", 1450, 100, 7),
        _line("DRAWING TITLE", 1450, 700, 7),
        _line("ENLARGED TOILET", 1455, 715, 11),
        _line("ROOM PLANS", 1455, 729, 11),
        _line("SCALE", 1450, 800, 7),
        _line("1/2'' = 1'-0''", 1455, 812, 10),
        _line("SHEET NUMBER", 1450, 900, 7),
        _line("A3.12", 1455, 930, 30),
    )
    assert titleblock.parse(layout) == TitleBlock(
        sheet_number="A3.12", sheet_title="ENLARGED TOILET ROOM PLANS", scale='1/2" = 1\'-0"'
    )


def test_without_number_label_the_largest_sheet_number_in_the_corner_wins() -> None:
    layout = _layout(
        _line("SEE 3/A-501", 500, 500, 12),
        _line("S-201", 900, 400, 9),
        _line("S-301", 1500, 1000, 36),
        _line("NOT TO SCALE", 1450, 950, 9),
    )
    block = titleblock.parse(layout)
    assert block.sheet_number == "S-301"
    assert block.scale == "NOT TO SCALE"
    assert block.sheet_title is None


def test_ocr_digit_confusions_in_sheet_number_are_fixed() -> None:
    layout = _layout(_line("SHEET", 1400, 900, 7), _line("A1O1", 1405, 920, 30))
    assert titleblock.parse(layout).sheet_number == "A101"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('SCALE: 1/8"=1\'-0"', '1/8" = 1\'-0"'),
        ('1 1/2" = 1\'-0"', '1 1/2" = 1\'-0"'),
        ("3/32” = 1’–0”", '3/32" = 1\'-0"'),
        ("1\" = 20'", "1\" = 20'"),
        ("SCALE 1 : 100", "1:100"),
        ("NTS", "NTS"),
        ("N.T.S.", "NTS"),
        ("not to scale", "NOT TO SCALE"),
        ("AS NOTED", "AS NOTED"),
        ("DATE 2026-03-12", None),
    ],
)
def test_scale_spellings(text: str, expected: str | None) -> None:
    assert titleblock.parse_scale(text) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("A-101", "A-101"),
        ("S-301", "S-301"),
        ("E2.03", "E2.03"),
        ("M-001", "M-001"),
        ("A101", "A101"),
        ("A-1O1", "A-101"),
        ("G0.01", "G0.01"),
        ("2026-03-12", None),
        ("OFFICE", None),
        ("JR", None),
    ],
)
def test_sheet_number_tokens(token: str, expected: str | None) -> None:
    assert titleblock.parse_sheet_number(token) == expected


def test_empty_layout_has_no_fields() -> None:
    assert titleblock.parse(_layout()) == TitleBlock()
