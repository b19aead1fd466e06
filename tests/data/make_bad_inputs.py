"""Write the bad-input corpus (and a few good controls) deterministically into a directory.

Usable as a script (``python tests/data/make_bad_inputs.py OUT_DIR``) and importable
(``generate(out_dir) -> {name: path}``). Nothing here is committed as a binary: tests generate
into a temporary directory. The whole corpus takes well under a few seconds to write.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

PDF_PASSWORD = "s3cret"
BOMB_SIDE = 40_000
HUGE_PDF_PAGES = 3_000
HUGE_PAGE_POINTS = 14_400  # 200 inches


def minimal_pdf(
    pages: int = 1,
    media_box: tuple[int, int] = (612, 792),
    text: str = "pagestream test page",
    *,
    garbage_xref: bool = False,
) -> bytes:
    """A hand-written PDF; all pages share one content stream and one font, so it stays small."""
    width, height = media_box
    size = max(12, min(width, height) // 20)
    content = f"BT /F1 {size} Tf {size} {height - 3 * size} Td ({text}) Tj ET".encode("ascii")
    # object numbers: 1 catalog, 2 page tree, 3 font, 4 content, 5.. pages
    first_page = 5
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Count {pages} /Kids [{kids}] >>".encode("ascii"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    page = (
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
        f"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    ).encode("ascii")
    objects.extend(page for _ in range(pages))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    if garbage_xref:
        out += b"".join(b"%010d 00000 n \n" % (7 * i + 3) for i in range(len(objects)))  # wrong offsets
        out += b"GARBAGE\x00\xff not an xref entry\n"
    else:
        out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at + (37 if garbage_xref else 0),
    )
    return bytes(out)


def reportlab_pdf(text: str, *, encrypt: str | None = None) -> bytes:
    """A one-page text PDF from reportlab (invariant: byte-identical on every run)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1, encrypt=encrypt)
    c.setFont("Helvetica", 24)
    c.drawString(72, 720, text)
    c.showPage()
    c.save()
    return buf.getvalue()


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A 1-bit ``side``×``side`` all-black PNG, compressed row by row (never built in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0 + packed bits
    rows_per_feed = 256
    block = row * rows_per_feed
    comp = zlib.compressobj(9)
    parts = []
    full, rest = divmod(side, rows_per_feed)
    for _ in range(full):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * rest))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def _text_image(text: str, size: tuple[int, int] = (480, 160)) -> Image:
    """A white greyscale image with black text (Pillow's built-in font: deterministic)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=32)
    draw.text((16, size[1] // 2 - 20), text, fill=0, font=font)
    return im


def _save(im: Image, fmt: str, **params: Any) -> bytes:
    """Encode ``im`` into bytes."""
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def good_png() -> bytes:
    """A valid PNG with a line of text."""
    return _save(_text_image("Invoice 12345"), "PNG", optimize=False)


def animated_gif() -> bytes:
    """A 3-frame animated GIF, each frame a line of text."""
    frames = [_text_image(f"Frame {i}").convert("P") for i in (1, 2, 3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)


def multipage_tiff() -> bytes:
    """A 3-page TIFF, each page a line of text."""
    pages = [_text_image(f"Page {i}") for i in (1, 2, 3)]
    return _save(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")


def zip_bytes() -> bytes:
    """A small ZIP archive with a fixed timestamp."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("report.txt", date_time=(2024, 1, 1, 0, 0, 0)), "quarterly report\n" * 20)
    return buf.getvalue()


#: name -> (file name on disk, producer). The names are the keys tests and docs use.
CORPUS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "empty": ("empty.pdf", lambda: b""),
    "truncated_pdf": ("truncated.pdf", lambda: reportlab_pdf("Truncated document")[:400]),
    "garbage_xref_pdf": ("garbage-xref.pdf", lambda: minimal_pdf(1, garbage_xref=True)),
    "html_named_pdf": (
        "html.pdf",
        lambda: (
            b"<!DOCTYPE html>\n<html><head><title>Login</title></head>"
            b"<body><p>Session expired, please sign in.</p></body></html>\n"
        ),
    ),
    "zip_named_pdf": ("archive.pdf", zip_bytes),
    "text_named_png": (
        "notes.png",
        lambda: b"These are my meeting notes, saved with the wrong extension.\n" * 4,
    ),
    "truncated_png": ("truncated.png", lambda: good_png()[: len(good_png()) // 2]),
    "jpeg_soi_eoi": ("soi-eoi.jpg", lambda: b"\xff\xd8\xff\xd9"),
    "tiff_header_only": ("header-only.tif", lambda: b"II*\x00\x08\x00\x00\x00"),
    "encrypted_pdf": ("encrypted.pdf", lambda: reportlab_pdf("Confidential", encrypt=PDF_PASSWORD)),
    "bomb_png": ("bomb.png", bomb_png),
    "many_pages_pdf": ("3000-pages.pdf", lambda: minimal_pdf(HUGE_PDF_PAGES)),
    "huge_page_pdf": (
        "200-inch-page.pdf",
        lambda: minimal_pdf(1, (HUGE_PAGE_POINTS, HUGE_PAGE_POINTS), "A very large drawing"),
    ),
    "animated_gif": ("animated.gif", animated_gif),
    "multipage_tiff": ("3-pages.tif", multipage_tiff),
    "good_png": ("good.png", good_png),
}


def generate(out_dir: Path) -> dict[str, Path]:
    """Write every corpus file into ``out_dir``; return {name: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, (filename, produce) in CORPUS.items():
        path = out_dir / filename
        path.write_bytes(produce())
        written[name] = path
    return written


def main(argv: list[str]) -> int:
    """Script entry point: ``make_bad_inputs.py OUT_DIR``."""
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    for name, path in generate(Path(argv[1])).items():
        print(f"{name:18} {path.stat().st_size:>10,} B  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
