"""The bad-input corpus through the real HTTP API of a running stack (docs/bad-input.md).

Every item gets its documented outcome: a 4xx with a precise reason, or processing to
``completed``, or ``failed`` with its reason. No service restarts on the way (no crash loop),
and a good document submitted right after them completes normally.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from pagestream.client import ApiClient, ApiClientError
from tests.integration.pipeline_fixtures import RunningStack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_bad_inputs as corpus

#: item -> (status, words the reason must contain)
REJECTED: dict[str, tuple[int, tuple[str, ...]]] = {
    "empty": (422, ("empty file: the upload has 0 bytes",)),
    "truncated_pdf": (422, ("PDF is damaged", "resubmit")),
    "html_named_pdf": (415, ("content of 'html.pdf' is HTML, not a PDF or image", "detected by content")),
    "zip_named_pdf": (415, ("content of 'archive.pdf' is a ZIP archive",)),
    "text_named_png": (415, ("content of 'notes.png' is plain text",)),
    "truncated_png": (422, ("image is truncated or corrupt",)),
    "jpeg_soi_eoi": (422, ("image is truncated or corrupt", "starts like a JPEG")),
    "tiff_header_only": (422, ("image is truncated or corrupt", "starts like a TIFF")),
    "bomb_png": (413, ("40000×40000", "1.6 Gpx", "limit is 200 Mpx", "PAGESTREAM_MAX_IMAGE_PIXELS")),
    "many_pages_pdf": (413, ("PDF has 3,000 pages", "limit is 2,000", "PAGESTREAM_MAX_PAGES")),
}

#: item -> (media type, pages) for inputs that must be processed to ``completed``
PROCESSED: dict[str, tuple[str, int]] = {
    "garbage_xref_pdf": ("application/pdf", 1),
    "huge_page_pdf": ("application/pdf", 1),
    "animated_gif": ("image/gif", 1),
    "multipage_tiff": ("image/tiff", 3),
    "good_png": ("image/png", 1),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return corpus.generate(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def client(running_stack: RunningStack):  # type: ignore[no-untyped-def]
    with ApiClient(running_stack.api_url, timeout=60) as c:
        yield c


def _service_restarts(stack: RunningStack) -> dict[str, int]:
    return {n: p["restarts"] for n, p in stack.supervisor.state()["parts"].items()}


def test_bad_inputs_get_their_documented_outcomes(
    running_stack: RunningStack, client: ApiClient, files: dict[str, Path]
) -> None:
    assert set(REJECTED) | set(PROCESSED) | {"encrypted_pdf"} == set(corpus.CORPUS), (
        "an item has no expectation"
    )
    restarts_before = _service_restarts(running_stack)

    for name, (status, words) in REJECTED.items():
        with pytest.raises(ApiClientError) as err:
            client.submit(files[name], force=True)
        assert err.value.status == status, (name, str(err.value))
        for w in words:
            assert w in str(err.value), (name, w, str(err.value))
        assert "Traceback" not in str(err.value)

    accepted = {name: client.submit(files[name], force=True) for name in PROCESSED}

    # encrypted: kept but failed with the reason; wrong password likewise; the right one completes
    locked = client.submit(files["encrypted_pdf"])
    assert locked["status"] == "failed" and locked["page_count"] is None
    assert "encrypted" in locked["error"] and "`password`" in locked["error"], locked["error"]
    wrong = client.submit(files["encrypted_pdf"], password="not-it")
    assert wrong["status"] == "failed" and "password does not open it" in wrong["error"], wrong["error"]
    opened = client.submit(files["encrypted_pdf"], password=corpus.PDF_PASSWORD)
    assert opened["id"] not in (locked["id"], wrong["id"])
    assert opened["page_count"] == 1

    done = {name: client.wait(d["id"], 240) for name, d in accepted.items()}
    opened_done = client.wait(opened["id"], 240)
    assert opened_done["status"] == "completed", opened_done
    assert "Confidential" in client.text(opened["id"])
    assert client.document(locked["id"])["status"] == "failed"  # still kept, still failed

    for name, (media_type, pages) in PROCESSED.items():
        d = done[name]
        assert d["status"] == "completed", (name, d)
        assert (d["media_type"], d["page_count"], d["pages_done"]) == (media_type, pages, pages), (name, d)

    # the 200-inch page: read from its text layer, and when forced through OCR it is rendered
    # within the per-page pixel budget (at a lowered dpi) instead of as 14400 dpi-300 megapixels
    layout = client.page_ocr(client.pages(done["huge_page_pdf"]["id"])["pages"][0]["id"])
    assert layout["source"] == "text-layer", layout["source"]
    assert "very large drawing" in client.text(done["huge_page_pdf"]["id"])
    budget = running_stack.settings.ocr_max_page_pixels
    forced = client.wait(client.submit(files["huge_page_pdf"], force=True, force_ocr=True)["id"], 240)
    assert forced["status"] == "completed", forced
    layout = client.page_ocr(client.pages(forced["id"])["pages"][0]["id"])
    assert layout["source"] == "ocr", layout["source"]
    assert layout["width"] * layout["height"] <= budget, (layout["width"], layout["height"], budget)
    assert layout["dpi"] < running_stack.settings.ocr_dpi, layout["dpi"]

    # a good document right after all that completes normally
    buf = io.BytesIO()
    corpus._text_image("After the storm 4711").save(buf, "PNG")
    after = client.wait(client.submit_bytes("after.png", buf.getvalue(), params={"force": "true"})["id"], 120)
    assert after["status"] == "completed" and after["pages_done"] == 1
    assert "4711" in client.text(after["id"])

    assert _service_restarts(running_stack) == restarts_before, "a service crashed on bad input"
