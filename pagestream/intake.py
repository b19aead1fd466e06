"""Deciding what an upload is, by its content, and whether it is usable — before anything is stored.

The type comes from magic bytes only; the client's file name and Content-Type are never trusted
(the name appears in messages, nothing more). PDFs are opened with PDFium, which repairs many
broken cross-reference tables; images are opened lazily with Pillow so that dimensions and
frame counts come from the header, and decompression bombs are refused before any decode.

Outcomes (see docs/bad-input.md): 413 too large (bytes, pages or pixels), 415 not a PDF or a
supported image, 422 damaged. An encrypted PDF without (or with the wrong) password is *not*
rejected: it comes back with ``encrypted=True, password_ok=False`` so the caller keeps the bytes
and asks for a resubmission with ``password``.

Animated GIF/WebP count as one page: the first frame is OCR'd. Multi-page TIFF: one page per frame.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass

from pagestream.errors import InputError

__all__ = ["ACCEPTED_TYPES", "IntakeLimits", "InspectedDocument", "RejectedDocument", "inspect_document"]

#: What we accept, for messages.
ACCEPTED_TYPES = "PDF, PNG, JPEG, TIFF, GIF, WebP or BMP"

#: Images above this many pixels are checked structurally (``verify``) rather than fully decoded
#: at intake, so that ingest's memory stays bounded; JPEGs are always decoded at 1/8 scale.
_FULL_DECODE_MAX_PIXELS = 40_000_000

#: How far into the file ``%PDF-`` may appear (Acrobat's tolerance for leading junk).
_PDF_HEADER_WINDOW = 1024

# PDFium is not thread-safe; ingest may inspect uploads from several threads.
_PDFIUM_LOCK = threading.Lock()

_PILLOW_FORMAT = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/tiff": "TIFF",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
}
_BMP_DIB_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


@dataclass(frozen=True)
class IntakeLimits:
    """Upper bounds applied at intake (from ``Settings.max_upload_bytes`` / ``max_pages`` / ``max_image_pixels``)."""

    max_bytes: int
    max_pages: int
    max_image_pixels: int


@dataclass(frozen=True)
class InspectedDocument:
    """What intake learnt about an accepted upload."""

    media_type: str  # application/pdf, image/png, image/jpeg, image/tiff, image/gif, image/webp, image/bmp
    page_count: int | None  # None only when encrypted and no/wrong password
    size_bytes: int
    sha256: str
    encrypted: bool
    password_ok: bool  # True when not encrypted or the given password opened it


class RejectedDocument(InputError):  # noqa: N818 — public name, used by ingest and the API
    """The upload is refused: ``status_code`` is 413, 415 or 422 and ``detail`` says why and what to do."""

    reason = "rejected_document"

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def inspect_document(
    data: bytes, limits: IntakeLimits, *, password: str | None = None, declared_name: str | None = None
) -> InspectedDocument:
    """Sniff, open and bound-check ``data``; raise ``RejectedDocument`` if it cannot be accepted."""
    if not data:
        raise RejectedDocument(422, "empty file: the upload has 0 bytes")
    size = len(data)
    if size > limits.max_bytes:
        raise RejectedDocument(
            413,
            f"file is {_human_bytes(size)}; limit is {_human_bytes(limits.max_bytes)} "
            f"(PAGESTREAM_MAX_UPLOAD_BYTES)",
        )
    sha256 = hashlib.sha256(data).hexdigest()
    media_type = sniff_media_type(data)
    if media_type is None:
        looks = describe_content(data)
        name = f" of {declared_name!r}" if declared_name else ""
        raise RejectedDocument(
            415,
            f"content{name} is {looks}, not a PDF or image; accepted: {ACCEPTED_TYPES} (detected by content)",
        )
    if media_type == "application/pdf":
        page_count, encrypted, password_ok = _inspect_pdf(data, limits, password)
    else:
        page_count = _inspect_image(data, media_type, limits)
        encrypted, password_ok = False, True
    return InspectedDocument(
        media_type=media_type,
        page_count=page_count,
        size_bytes=size,
        sha256=sha256,
        encrypted=encrypted,
        password_ok=password_ok,
    )


def sniff_media_type(data: bytes) -> str | None:
    """The media type given by ``data``'s magic bytes, or None if it is not one we accept."""
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if (
        data[:2] == b"BM"
        and len(data) >= 18
        and int.from_bytes(data[14:18], "little") in _BMP_DIB_HEADER_SIZES
    ):
        return "image/bmp"
    return None


def describe_content(data: bytes) -> str:
    """A short human description of unsupported content ("HTML", "a ZIP archive", …) for messages."""
    head = data[:1024]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "a ZIP archive (e.g. .zip, .docx, .xlsx)"
    for magic, what in (
        (b"\x1f\x8b", "gzip data"),
        (b"Rar!", "a RAR archive"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"),
        (b"%!PS", "PostScript"),
    ):
        if head.startswith(magic):
            return what
    text = _as_text(head)
    if text is None:
        return "unrecognised binary data"
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lowered:
        return "HTML"
    if "<svg" in lowered:
        return "SVG (vector images are not accepted; export a PNG or PDF)"
    if lowered.startswith("<?xml"):
        return "XML"
    if lowered.startswith(("{", "[")):
        return "JSON or plain text"
    return "plain text"


def _as_text(head: bytes) -> str | None:
    """``head`` decoded as text if it plausibly is text, else None."""
    for encoding in ("utf-8", "utf-16"):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            # The window may cut a multi-byte character; retry without the last few bytes.
            try:
                text = head[:-3].decode(encoding) if len(head) > 3 else ""
            except UnicodeDecodeError:
                continue
        if not text:
            continue
        printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
        if printable / len(text) > 0.95:
            return text
    return None


def _inspect_pdf(data: bytes, limits: IntakeLimits, password: str | None) -> tuple[int | None, bool, bool]:
    """Open the PDF with PDFium: (page_count, encrypted, password_ok), or raise RejectedDocument."""
    import pypdfium2  # noqa: F401  (initialises the PDFium library)
    import pypdfium2.internal as pdfium_i
    import pypdfium2.raw as pdfium_c

    # The raw API (what ``pypdfium2.PdfDocument`` wraps) so that a 0-page document can be told
    # apart from a load failure and is closed rather than leaked.
    pw = None if password is None else (password + "\x00").encode("utf-8")
    with _PDFIUM_LOCK:
        doc = pdfium_c.FPDF_LoadMemDocument64(data, len(data), pw)
        if not doc:
            err = pdfium_c.FPDF_GetLastError()
            if err == pdfium_c.FPDF_ERR_PASSWORD:
                return None, True, False
            if err == pdfium_c.FPDF_ERR_SECURITY:
                raise RejectedDocument(
                    422,
                    "PDF uses an unsupported security handler; remove its encryption "
                    "(e.g. `qpdf --decrypt`) and resubmit",
                )
            raise RejectedDocument(
                422,
                f"PDF is damaged: {pdfium_i.ErrorToStr.get(err)} (PDFium could not open or repair it); "
                "re-export or re-scan it and resubmit",
            )
        try:
            pages = pdfium_c.FPDF_GetPageCount(doc)
            encrypted = pdfium_c.FPDF_GetSecurityHandlerRevision(doc) != -1
        finally:
            pdfium_c.FPDF_CloseDocument(doc)
    if pages < 1:
        raise RejectedDocument(422, "PDF has no pages (it may be damaged or truncated)")
    if pages > limits.max_pages:
        raise RejectedDocument(
            413,
            f"PDF has {pages:,} pages; limit is {limits.max_pages:,} (PAGESTREAM_MAX_PAGES); "
            "split it and resubmit the parts",
        )
    return pages, encrypted, True


def decrypt_pdf(data: bytes, password: str) -> bytes:
    """A copy of an encrypted PDF without its security, so workers never need the password.

    Under the same PDFium lock as every other PDFium call here: PDFium is not thread-safe,
    and ingest inspects uploads from several threads (API thread pool, submit consumer).
    """
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    with _PDFIUM_LOCK:
        pdf = pypdfium2.PdfDocument(data, password=password)
        try:
            out = io.BytesIO()
            pdf.save(out, flags=pdfium_c.FPDF_REMOVE_SECURITY)
            return out.getvalue()
        finally:
            pdf.close()


def _inspect_image(data: bytes, media_type: str, limits: IntakeLimits) -> int:
    """Check an image's header bounds, then its integrity: the page count, or raise RejectedDocument."""
    from PIL import Image

    fmt = _PILLOW_FORMAT[media_type]
    kind = fmt.replace("WEBP", "WebP")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb and "corrupt EXIF" warnings: we decide here
            im = Image.open(io.BytesIO(data), formats=[fmt])  # header only: no pixels decoded
            with im:
                _check_pixels(im.size, limits, "image")
                if media_type == "image/tiff":
                    frames = int(getattr(im, "n_frames", 1))
                    if frames > limits.max_pages:
                        raise RejectedDocument(
                            413,
                            f"TIFF has {frames:,} pages; limit is {limits.max_pages:,} "
                            "(PAGESTREAM_MAX_PAGES); split it and resubmit the parts",
                        )
                    for index in range(1, frames):
                        im.seek(index)  # reads the next IFD, not its pixels
                        _check_pixels(im.size, limits, f"TIFF page {index + 1}")
                    im.seek(0)
                else:
                    frames = 1  # animated GIF/WebP: only the first frame is OCR'd
            _check_integrity(data, fmt)
    except RejectedDocument:
        raise
    except Image.DecompressionBombError as e:
        # Pillow's own hard limit (2 × PIL.Image.MAX_IMAGE_PIXELS) is below ours: report both honestly.
        size = _header_size(data, fmt)
        if size is None:
            raise RejectedDocument(413, f"{kind} image is too large to decode safely") from e
        _check_pixels(size, limits, "image")
        width, height = size
        raise RejectedDocument(
            413,
            f"image is {width}×{height} = {_human_pixels(width * height)}; limit is "
            f"{_human_pixels(2 * (Image.MAX_IMAGE_PIXELS or 0))} (the image decoder's safety limit)",
        ) from e
    except Image.UnidentifiedImageError as e:
        raise RejectedDocument(
            422,
            f"image is truncated or corrupt: it starts like a {kind} but its header is incomplete "
            "or invalid; re-export or re-scan it and resubmit",
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        raise RejectedDocument(
            422, f"image is truncated or corrupt: {kind}: {_short(e)}; re-export or re-scan it and resubmit"
        ) from e
    return frames


def _check_pixels(size: tuple[int, int], limits: IntakeLimits, what: str) -> None:
    """Raise 413 when ``size`` exceeds ``limits.max_image_pixels``."""
    width, height = size
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise RejectedDocument(
            413,
            f"{what} is {width}×{height} = {_human_pixels(pixels)}; limit is "
            f"{_human_pixels(limits.max_image_pixels)} (PAGESTREAM_MAX_IMAGE_PIXELS)",
        )


def _check_integrity(data: bytes, fmt: str) -> None:
    """Verify structure and decode the first frame (bounded), raising Pillow's errors on damage."""
    from PIL import Image, ImageFile

    with Image.open(io.BytesIO(data), formats=[fmt]) as im:
        im.verify()  # PNG: every chunk's CRC and the IEND marker; a no-op for most others
    with Image.open(io.BytesIO(data), formats=[fmt]) as im:
        if ImageFile.LOAD_TRUNCATED_IMAGES:  # a global someone may have set; never hide truncation
            raise ValueError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cannot check integrity")
        width, height = im.size
        if fmt == "JPEG":
            im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))  # DCT scaling: reads all data
        elif width * height > _FULL_DECODE_MAX_PIXELS:
            return
        im.load()


def _header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Image dimensions from the format plugin alone (bypassing Pillow's global bomb check), if readable."""
    from PIL import Image

    try:
        factory = Image.OPEN[fmt][0]
        return factory(io.BytesIO(data), "").size
    except Exception:  # noqa: BLE001 — best effort, only used to phrase a message
        return None


def _short(e: BaseException) -> str:
    """A one-line, bounded description of a vendor exception."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def _human_bytes(n: int) -> str:
    """``n`` bytes as a short string (1.5 MB)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _human_pixels(n: int) -> str:
    """``n`` pixels as a short string (1.6 Gpx, 200 Mpx)."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.3g} Gpx"
    if n >= 1_000_000:
        return f"{n / 1e6:.3g} Mpx"
    return f"{n:,} px"
