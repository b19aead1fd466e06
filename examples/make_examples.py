"""Write the example documents into examples/ (deterministic, no downloads).

Run: ``.venv/bin/python examples/make_examples.py`` (or ``make examples``).
"""

from __future__ import annotations

from pathlib import Path

from pagestream._testing import drawings, pages

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Generate scanned-letter.png, born-digital-report.pdf and drawing-A-101.pdf."""
    letter, _ = pages.scanned_letter()
    (HERE / "scanned-letter.png").write_bytes(pages.png_bytes(letter, 300))
    report, _ = pages.born_digital_pdf()
    (HERE / "born-digital-report.pdf").write_bytes(report)
    spec = next(s for s in drawings.SPECS if s.sheet_number == "A-101")
    (HERE / "drawing-A-101.pdf").write_bytes(drawings.drawing_pdf(spec))
    for name in ("scanned-letter.png", "born-digital-report.pdf", "drawing-A-101.pdf"):
        print(f"wrote examples/{name} ({(HERE / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
