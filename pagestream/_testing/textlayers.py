"""Born-digital PDFs whose text layer holds characters outside the BMP (emoji, math letters).

The font is DejaVu Sans (Debian's ``fonts-dejavu-core``): it has 😀 and friends (Emoticons) and
the double-struck math letters 𝔸𝔹 (U+1D538 …), but not the bold math letters 𝐀 (U+1D400).

reportlab writes a ToUnicode CMap entry for a character above U+FFFF as five hex digits
(``<1F600>``), which is not UTF-16: a reader sees U+1F60 and junk. PDF producers that get it
right (and what the spec asks) write the UTF-16BE surrogate pair (``<D83DDE00>``); these
generators do that, so the PDF is what a correct producer writes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reportlab.lib.pagesizes import letter
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

#: Lines with emoji and math letters (all covered by DejaVu Sans).
NON_BMP_LINES: tuple[str, ...] = (
    "Status report 😀 all checks green",
    "Sets 𝔸 and 𝔹 are disjoint, ℂ is not",
    "Mood 😃😄 then 😐 and finally 😉",
    "Plain ASCII line for comparison",
)


def _utf16_hex(codepoint: int) -> str:
    return chr(codepoint).encode("utf-16-be", "surrogatepass").hex().upper()


def _to_unicode_cmap(fontname: str, subset: list[int], broken: dict[int, str] | None = None) -> str:
    """reportlab's ``makeToUnicodeCMap`` with UTF-16BE targets (surrogate pairs above the BMP).

    ``broken`` maps a character to the raw hex written for it instead (a lone surrogate, NUL).
    """
    broken = broken or {}
    return "\n".join(
        (
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *(f"<{i:02X}> <{broken.get(v) or _utf16_hex(v)}>" for i, v in enumerate(subset)),
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        )
    )


@contextmanager
def _correct_to_unicode(broken: dict[int, str] | None = None) -> Iterator[None]:
    original = ttfonts.makeToUnicodeCMap
    ttfonts.makeToUnicodeCMap = lambda fontname, subset: _to_unicode_cmap(fontname, subset, broken)
    try:
        yield
    finally:
        ttfonts.makeToUnicodeCMap = original


def non_bmp_text_pdf(
    lines: tuple[str, ...] = NON_BMP_LINES,
    *,
    broken: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A one-page PDF with ``lines`` in its text layer (DejaVu Sans 14 pt); returns bytes and text.

    ``broken`` (character → UTF-16BE hex, e.g. ``{"😀": "D83D", "ℂ": "0000"}``) writes a wrong
    ToUnicode entry for those characters: a lone surrogate, or NUL, as broken producers do.
    """
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(DEJAVU_SANS)))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1, pageCompression=1)
    c.setFont("DejaVuSans", 14)
    y = 700.0
    for line in lines:
        c.drawString(72, y, line)
        y -= 24
    c.showPage()
    with _correct_to_unicode({ord(k): v for k, v in (broken or {}).items()}):
        c.save()
    return buf.getvalue(), "\n".join(lines)
