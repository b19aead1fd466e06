"""Intake decides by content and gives every bad input a documented outcome (docs/bad-input.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pagestream.errors import InputError
from pagestream.intake import InspectedDocument, IntakeLimits, RejectedDocument, inspect_document
from tests.data.make_bad_inputs import CORPUS, PDF_PASSWORD, generate, minimal_pdf

LIMITS = IntakeLimits(max_bytes=100 * 1024 * 1024, max_pages=2000, max_image_pixels=200_000_000)


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpus, generated once per session into a temporary directory."""
    return generate(tmp_path_factory.mktemp("bad-inputs"))


def _inspect(
    corpus: dict[str, Path], name: str, limits: IntakeLimits = LIMITS, password: str | None = None
) -> InspectedDocument:
    """Inspect one corpus file, passing its file name as the client would."""
    path = corpus[name]
    return inspect_document(path.read_bytes(), limits, password=password, declared_name=path.name)


# name -> (status code, key phrase of the detail). Mirrors the table in docs/bad-input.md.
REJECTED = {
    "empty": (422, "empty file"),
    "truncated_pdf": (422, "PDF is damaged: Data format error"),
    "html_named_pdf": (415, "content of 'html.pdf' is HTML, not a PDF or image; accepted: PDF, PNG"),
    "zip_named_pdf": (415, "is a ZIP archive"),
    "text_named_png": (415, "content of 'notes.png' is plain text, not a PDF or image"),
    "truncated_png": (422, "image is truncated or corrupt: PNG"),
    "jpeg_soi_eoi": (422, "image is truncated or corrupt: it starts like a JPEG"),
    "tiff_header_only": (422, "image is truncated or corrupt: it starts like a TIFF"),
    "bomb_png": (413, "image is 40000×40000 = 1.6 Gpx; limit is 200 Mpx (PAGESTREAM_MAX_IMAGE_PIXELS)"),
    "many_pages_pdf": (413, "PDF has 3,000 pages; limit is 2,000 (PAGESTREAM_MAX_PAGES)"),
}

# name -> (media type, page count). Accepted without a password.
ACCEPTED = {
    "garbage_xref_pdf": ("application/pdf", 1),  # PDFium rebuilds the xref
    "huge_page_pdf": ("application/pdf", 1),  # 200-inch page: the renderer caps pixels, not intake
    "animated_gif": ("image/gif", 1),  # first frame only
    "multipage_tiff": ("image/tiff", 3),
    "good_png": ("image/png", 1),
}


def test_every_corpus_item_has_a_documented_outcome() -> None:
    documented = set(REJECTED) | set(ACCEPTED) | {"encrypted_pdf"}
    assert documented == set(CORPUS)
    doc = (Path(__file__).parents[2] / "docs" / "bad-input.md").read_text()
    for name in CORPUS:
        assert f"`{name}`" in doc, f"{name} missing from docs/bad-input.md"


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_inputs(bad_inputs: dict[str, Path], name: str) -> None:
    status, phrase = REJECTED[name]
    with pytest.raises(RejectedDocument) as caught:
        _inspect(bad_inputs, name)
    assert caught.value.status_code == status
    assert phrase in caught.value.detail
    assert isinstance(caught.value, InputError) and not caught.value.retryable
    assert "Traceback" not in caught.value.detail and "<_io." not in caught.value.detail
    assert len(caught.value.detail) < 300


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_inputs(bad_inputs: dict[str, Path], name: str) -> None:
    media_type, pages = ACCEPTED[name]
    data = bad_inputs[name].read_bytes()
    info = _inspect(bad_inputs, name)
    assert (info.media_type, info.page_count) == (media_type, pages)
    assert (info.encrypted, info.password_ok) == (False, True)
    assert info.size_bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("password", [None, "wrong"])
def test_encrypted_pdf_without_the_right_password_is_kept_not_rejected(
    bad_inputs: dict[str, Path], password: str | None
) -> None:
    info = _inspect(bad_inputs, "encrypted_pdf", password=password)
    assert (info.media_type, info.encrypted, info.password_ok, info.page_count) == (
        "application/pdf",
        True,
        False,
        None,
    )


def test_encrypted_pdf_with_the_password_counts_pages(bad_inputs: dict[str, Path]) -> None:
    info = _inspect(bad_inputs, "encrypted_pdf", password=PDF_PASSWORD)
    assert (info.encrypted, info.password_ok, info.page_count) == (True, True, 1)


def test_many_pages_accepted_under_a_higher_limit(bad_inputs: dict[str, Path]) -> None:
    limits = IntakeLimits(
        max_bytes=LIMITS.max_bytes, max_pages=5000, max_image_pixels=LIMITS.max_image_pixels
    )
    assert _inspect(bad_inputs, "many_pages_pdf", limits).page_count == 3000


def test_multipage_tiff_over_the_page_limit(bad_inputs: dict[str, Path]) -> None:
    limits = IntakeLimits(max_bytes=LIMITS.max_bytes, max_pages=2, max_image_pixels=LIMITS.max_image_pixels)
    with pytest.raises(RejectedDocument, match=r"TIFF has 3 pages; limit is 2") as caught:
        _inspect(bad_inputs, "multipage_tiff", limits)
    assert caught.value.status_code == 413


def test_over_max_bytes_names_the_limit(bad_inputs: dict[str, Path]) -> None:
    limits = IntakeLimits(
        max_bytes=1024, max_pages=LIMITS.max_pages, max_image_pixels=LIMITS.max_image_pixels
    )
    with pytest.raises(RejectedDocument) as caught:
        _inspect(bad_inputs, "good_png", limits)
    assert caught.value.status_code == 413
    assert "limit is 1.0 KB (PAGESTREAM_MAX_UPLOAD_BYTES)" in caught.value.detail


def test_type_comes_from_content_not_name(bad_inputs: dict[str, Path]) -> None:
    data = bad_inputs["good_png"].read_bytes()
    assert inspect_document(data, LIMITS, declared_name="scan.pdf").media_type == "image/png"
    pdf = minimal_pdf(2)
    assert inspect_document(pdf, LIMITS, declared_name="photo.jpg").media_type == "application/pdf"


def test_pdf_header_after_leading_junk_is_still_a_pdf() -> None:
    info = inspect_document(b"\r\n" * 100 + minimal_pdf(2), LIMITS)
    assert (info.media_type, info.page_count) == ("application/pdf", 2)


def test_pdf_without_pages_is_rejected() -> None:
    with pytest.raises(RejectedDocument) as caught:
        inspect_document(minimal_pdf(0), LIMITS)
    assert caught.value.status_code == 422
    assert "PDF has no pages" in caught.value.detail or "PDF is damaged" in caught.value.detail


def test_image_frames_are_checked_before_decoding(bad_inputs: dict[str, Path]) -> None:
    # a limit just under the good PNG's size rejects it from the header alone
    limits = IntakeLimits(max_bytes=LIMITS.max_bytes, max_pages=LIMITS.max_pages, max_image_pixels=1000)
    with pytest.raises(RejectedDocument, match=r"image is 480×160 = 76,800 px; limit is 1,000 px") as caught:
        _inspect(bad_inputs, "good_png", limits)
    assert caught.value.status_code == 413


def test_corpus_generation_is_deterministic(tmp_path: Path, bad_inputs: dict[str, Path]) -> None:
    small = {name for name, path in bad_inputs.items() if path.stat().st_size < 100_000}
    again = generate(tmp_path)
    for name in small:
        assert again[name].read_bytes() == bad_inputs[name].read_bytes(), name


def test_decrypting_a_pdf_waits_for_the_pdfium_lock(
    bad_inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PDFium is not thread-safe: decrypt_pdf must not call it while another thread holds the lock."""
    import threading

    from pagestream import intake

    data = bad_inputs["encrypted_pdf"].read_bytes()
    lock = threading.Lock()
    monkeypatch.setattr(intake, "_PDFIUM_LOCK", lock)
    result: list[bytes] = []
    lock.acquire()  # another thread is inside PDFium
    worker = threading.Thread(
        target=lambda: result.append(intake.decrypt_pdf(data, PDF_PASSWORD)), daemon=True
    )
    try:
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not result, "decrypt_pdf called PDFium without holding the PDFium lock"
    finally:
        lock.release()
    worker.join(10)
    assert result and not lock.locked()
    info = inspect_document(result[0], LIMITS)  # the copy opens without a password
    assert (info.encrypted, info.page_count) == (False, 1)
