"""Outputs of real recognized documents (Tesseract, the persist code path, the real API):
searchable PDF (poppler and pdfium read it; pdftotext gives back the stored text), hOCR and
ALTO (ALTO valid against the shipped XSD), page images, the CLI, and storing the PDF."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from lxml import etree
from PIL import Image
from sqlalchemy import Engine

from pagestream import export
from pagestream._testing import pages as testpages
from pagestream.api.app import create_app
from pagestream.db.apikeys import create_key
from pagestream.db.documents import NewDocument, create_document
from pagestream.db.progress import PageOutcome, apply_page_outcomes
from pagestream.events.models import PageOcrCompletedV1, page_id_for, utcnow
from pagestream.ocr.pipeline import PageProcessor
from pagestream.ocr.tesseract import TesseractEngine
from pagestream.settings import Settings
from pagestream.storage import LocalObjectStore, content_key
from tests.integration.fabricate import new_document

#: CER allowed between pdftotext of the searchable PDF and the stored text
MAX_CER = 0.01


@dataclass
class Recognized:
    id: str
    data: bytes
    media_type: str
    page_count: int


def _scan_pdf() -> bytes:
    """Two scanned pages as a scanner writes them (one image per page): upright, and sideways."""
    upright = testpages.add_scan_effects(
        testpages.text_page_image(testpages.LETTER_LINES[:14], dpi=200, font_pt=11),
        seed=3,
        rotate_degrees=0.8,
    )
    sideways = testpages.add_scan_effects(
        testpages.text_page_image(testpages.LETTER_LINES[6:16], dpi=200, font_pt=12), seed=4
    ).rotate(90, expand=True)
    buf = io.BytesIO()
    upright.save(buf, "PDF", resolution=200.0, save_all=True, append_images=[sideways])
    return buf.getvalue()


def _scan_png() -> bytes:
    image = testpages.add_scan_effects(
        testpages.text_page_image(testpages.LETTER_LINES[:9], dpi=200, font_pt=12), seed=5
    )
    return testpages.png_bytes(image, dpi=200)


def _record(
    engine: Engine, store: LocalObjectStore, proc: PageProcessor, name: str, data: bytes, media_type: str
) -> Recognized:
    sha = hashlib.sha256(data + uuid.uuid4().bytes).hexdigest()
    count = proc.count_pages(data, media_type)
    doc = create_document(
        engine,
        NewDocument(
            sha256=sha,
            media_type=media_type,
            size_bytes=len(data),
            filename=name,
            page_count=count,
            storage_uri=store.put(content_key(sha), data, media_type),
        ),
        traceparent=None,
    )
    now = utcnow()
    outcomes = [
        PageOutcome(
            uuid.uuid4(),
            PageOcrCompletedV1(
                page_id=page_id_for(doc["id"], n),
                document_id=doc["id"],
                page_number=n,
                page_count=count,
                layout=proc.process(data, media_type, n),
                started_at=now,
                completed_at=now,
            ),
        )
        for n in range(1, count + 1)
    ]
    apply_page_outcomes(engine, outcomes)
    return Recognized(str(doc["id"]), data, media_type, count)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalObjectStore:
    return LocalObjectStore(tmp_path_factory.mktemp("exports-store"))


@pytest.fixture(scope="module")
def documents(engine: Engine, store: LocalObjectStore) -> dict[str, Recognized]:
    born_digital, _ = testpages.born_digital_pdf()
    with PageProcessor(TesseractEngine()) as proc:
        return {
            "scan.pdf": _record(engine, store, proc, "scan.pdf", _scan_pdf(), "application/pdf"),
            "scan.png": _record(engine, store, proc, "scan.png", _scan_png(), "image/png"),
            "report.pdf": _record(engine, store, proc, "report.pdf", born_digital, "application/pdf"),
        }


@pytest.fixture(scope="module")
def api_key(engine: Engine) -> str:
    return create_key(engine, "test-exports")[1]


@pytest.fixture(scope="module")
def client(migrated: Settings, engine: Engine, store: LocalObjectStore, api_key: str) -> Iterator[TestClient]:
    with TestClient(create_app(migrated, engine=engine, store=store), headers={"X-API-Key": api_key}) as c:
        yield c


def _stored(client: TestClient, doc: Recognized) -> tuple[list[str], list[dict[str, Any]]]:
    """(text of each page, OCR layout of each page) as the API gives them."""
    texts = client.get(f"/v1/documents/{doc.id}/text").text.split("\f")
    pages = client.get(f"/v1/documents/{doc.id}/pages").json()["pages"]
    layouts = [client.get(f"/v1/pages/{p['id']}/ocr").json() for p in pages]
    return texts, layouts


def _pdf(client: TestClient, doc: Recognized, tmp_path: Path) -> Path:
    r = client.get(f"/v1/documents/{doc.id}/pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    out = tmp_path / "out.pdf"
    out.write_bytes(r.content)
    return out


@pytest.mark.parametrize("name", ["scan.pdf", "scan.png", "report.pdf"])
def test_searchable_pdf_gives_back_the_stored_text(
    client: TestClient, documents: dict[str, Recognized], name: str, tmp_path: Path
) -> None:
    doc = documents[name]
    out = _pdf(client, doc, tmp_path)
    texts, layouts = _stored(client, doc)
    # poppler opens and renders it without complaint
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True)
    assert re.search(rf"^Pages:\s+{doc.page_count}$", info.stdout, re.M), info.stdout
    assert not info.stderr.strip(), info.stderr
    render = subprocess.run(
        ["pdftoppm", "-r", "20", "-png", str(out), str(tmp_path / "page")], capture_output=True, text=True
    )
    assert render.returncode == 0 and not render.stderr.strip(), render.stderr
    assert len(list(tmp_path.glob("page*.png"))) == doc.page_count
    # pdfium opens it; same pages, same sizes as the input
    result = pdfium.PdfDocument(out.read_bytes())
    assert len(result) == doc.page_count
    if doc.media_type == "application/pdf":
        original = pdfium.PdfDocument(doc.data)
        for n in range(doc.page_count):
            assert result[n].get_mediabox() == pytest.approx(original[n].get_mediabox(), abs=0.01)
    for n in range(1, doc.page_count + 1):
        extracted = subprocess.run(
            ["pdftotext", "-f", str(n), "-l", str(n), str(out), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        error = testpages.cer(texts[n - 1], extracted)
        assert error < MAX_CER, (name, n, error, extracted[:300], texts[n - 1][:300])
        assert texts[n - 1].strip()
        # pdfium reads the same text layer
        assert testpages.cer(texts[n - 1], result[n - 1].get_textpage().get_text_range()) < MAX_CER
    assert {lay["source"] for lay in layouts} == ({"text-layer"} if name == "report.pdf" else {"ocr"})


def test_text_layer_lies_on_the_words_even_on_a_sideways_scan(
    client: TestClient, documents: dict[str, Recognized], tmp_path: Path
) -> None:
    doc = documents["scan.pdf"]
    out = _pdf(client, doc, tmp_path)
    _, layouts = _stored(client, doc)
    assert layouts[1]["rotation"] == 90, "the sideways page was turned before recognition"
    result = pdfium.PdfDocument(out.read_bytes())
    assert result[1].get_rotation() == 90, "the sideways page is shown upright"
    assert result[0].get_rotation() == 0
    bbox = subprocess.run(
        ["pdftotext", "-bbox", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', bbox, re.S)
    for n, ((width, height, words), layout) in enumerate(zip(pages, layouts, strict=True)):
        if result[n].get_rotation() in (90, 270):  # poppler gives the unturned size, words as displayed
            width, height = height, width
        found = [
            (float(a), float(b), float(c), float(d), t)
            for a, b, c, d, t in re.findall(
                r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', words
            )
        ]
        stored = [w for b in layout["blocks"] for ln in b["lines"] for w in ln["words"]]
        assert len(found) >= 0.95 * len(stored)
        # each stored word is found where its box says, on the page as displayed (2 % of the page)
        checked = 0
        for w in stored[:40]:
            box = w["box"]
            cx, cy = (
                (box["nx0"] + box["nx1"]) / 2 * float(width),
                (box["ny0"] + box["ny1"]) / 2 * float(height),
            )
            near = [
                f
                for f in found
                if f[4] == w["text"]
                and abs((f[0] + f[2]) / 2 - cx) < 0.02 * float(width)
                and abs((f[1] + f[3]) / 2 - cy) < 0.02 * float(height)
            ]
            checked += bool(near)
        assert checked >= 38, f"only {checked} of 40 words lie on their boxes"


def _alto_schema() -> etree.XMLSchema:
    class Local(etree.Resolver):
        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            if url.endswith("xlink.xsd"):
                return self.resolve_filename(str(export.xml.XLINK_XSD), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    return etree.XMLSchema(etree.parse(str(export.ALTO_XSD), parser))


def _words(layout: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for b in layout["blocks"] for ln in b["lines"] for w in ln["words"] if w["text"].strip()]


@pytest.mark.parametrize("name", ["scan.pdf", "report.pdf"])
def test_alto_is_valid_and_carries_the_stored_boxes(
    client: TestClient, documents: dict[str, Recognized], name: str
) -> None:
    doc = documents[name]
    _, layouts = _stored(client, doc)
    schema = _alto_schema()
    r = client.get(f"/v1/documents/{doc.id}/export", params={"format": "alto"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    tree = etree.fromstring(r.content)
    assert schema.validate(tree), schema.error_log
    ns = {"a": export.xml.ALTO_NS}
    assert len(tree.findall(".//a:Page", ns)) == doc.page_count
    strings = tree.findall(".//a:String", ns)
    words = [w for lay in layouts for w in _words(lay)]
    assert [s.get("CONTENT") for s in strings] == [w["text"].strip() for w in words]
    first = strings[0]
    assert float(first.get("HPOS")) == round(words[0]["box"]["x0"])
    assert float(first.get("VPOS")) == round(words[0]["box"]["y0"])
    assert 0 <= float(first.get("WC")) <= 1
    # one page alone, too
    pages = client.get(f"/v1/documents/{doc.id}/pages").json()["pages"]
    one = client.get(f"/v1/pages/{pages[-1]['id']}/export", params={"format": "alto"})
    page_tree = etree.fromstring(one.content)
    assert schema.validate(page_tree), schema.error_log
    assert page_tree.find(".//a:Page", ns).get("PHYSICAL_IMG_NR") == str(doc.page_count)


def test_hocr_is_well_formed_with_classes_and_boxes(
    client: TestClient, documents: dict[str, Recognized]
) -> None:
    doc = documents["scan.pdf"]
    _, layouts = _stored(client, doc)
    r = client.get(f"/v1/documents/{doc.id}/export", params={"format": "hocr"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xhtml+xml")
    tree = etree.fromstring(r.content)  # well-formed XML
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert tree.tag == "{http://www.w3.org/1999/xhtml}html"
    assert tree.find(".//h:meta[@name='ocr-system']", ns) is not None
    capabilities = tree.find(".//h:meta[@name='ocr-capabilities']", ns).get("content").split()
    pages = tree.findall(".//h:div[@class='ocr_page']", ns)
    assert len(pages) == doc.page_count
    for page, layout in zip(pages, layouts, strict=True):
        assert f"bbox 0 0 {layout['width']} {layout['height']}" in page.get("title")
        words = page.findall(".//h:span[@class='ocrx_word']", ns)
        stored = _words(layout)
        assert [w.text for w in words] == [w["text"].strip() for w in stored]
        for el, w in zip(words, stored, strict=True):
            m = re.fullmatch(r"bbox (\d+) (\d+) (\d+) (\d+); x_wconf (\d+)", el.get("title"))
            assert m, el.get("title")
            b = w["box"]
            assert [int(v) for v in m.groups()[:4]] == [
                round(b["x0"]),
                round(b["y0"]),
                round(b["x1"]),
                round(b["y1"]),
            ]
            assert int(m.group(5)) == round(w["confidence"])
        for cls in ("ocr_carea", "ocr_par", "ocr_line"):
            assert cls in capabilities and page.findall(f".//h:*[@class='{cls}']", ns)
    one = client.get(
        f"/v1/pages/{client.get(f'/v1/documents/{doc.id}/pages').json()['pages'][0]['id']}/export",
        params={"format": "hocr"},
    )
    assert len(etree.fromstring(one.content).findall(".//h:div[@class='ocr_page']", ns)) == 1


def test_page_image_is_the_analysed_page(client: TestClient, documents: dict[str, Recognized]) -> None:
    doc = documents["scan.pdf"]
    pages = client.get(f"/v1/documents/{doc.id}/pages").json()["pages"]
    _, layouts = _stored(client, doc)
    for page, layout in zip(pages, layouts, strict=True):
        r = client.get(f"/v1/pages/{page['id']}/image", params={"width": 600})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(r.content))
        assert image.width <= 600
        assert image.width / image.height == pytest.approx(layout["width"] / layout["height"], rel=0.02)


def test_unfinished_unknown_and_invalid(
    client: TestClient,
    engine: Engine,
    documents: dict[str, Recognized],
    migrated: Settings,
    store: LocalObjectStore,
) -> None:
    pending = new_document(engine, 2)
    for path in (f"/v1/documents/{pending}/pdf", f"/v1/documents/{pending}/export?format=alto"):
        r = client.get(path)
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
        assert "received" in r.json()["detail"]
    missing = uuid.uuid4()
    for path in (
        f"/v1/documents/{missing}/pdf",
        f"/v1/pages/{missing}/image",
        f"/v1/pages/{missing}/export?format=hocr",
    ):
        assert client.get(path).status_code == 404
    assert client.get(f"/v1/documents/{documents['scan.png'].id}/export?format=txt").status_code == 422
    with TestClient(create_app(migrated, engine=engine, store=store)) as anonymous:
        assert anonymous.get(f"/v1/documents/{documents['scan.png'].id}/pdf").status_code == 401


def test_openapi_declares_the_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "application/pdf" in paths["/v1/documents/{document_id}/pdf"]["get"]["responses"]["200"]["content"]
    assert "image/png" in paths["/v1/pages/{page_id}/image"]["get"]["responses"]["200"]["content"]
    for path in ("/v1/documents/{document_id}/export", "/v1/pages/{page_id}/export"):
        responses = paths[path]["get"]["responses"]
        assert {"application/xhtml+xml", "application/xml"} <= set(responses["200"]["content"])
        assert "application/problem+json" in responses["404"]["content"]


def test_cli_writes_pdf_hocr_and_alto(
    client: TestClient,
    documents: dict[str, Recognized],
    api_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pagestream.cli import exports as cli_exports
    from pagestream.cli import main
    from pagestream.client import ApiClient

    doc = documents["scan.png"]
    monkeypatch.setattr(
        cli_exports,
        "api_client",
        lambda: ApiClient("http://testserver", api_key, http=TestClient(client.app)),
    )
    runner = CliRunner()
    r = runner.invoke(main, ["pdf", doc.id, "-o", str(tmp_path / "out.pdf")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.pdf").read_bytes().startswith(b"%PDF-")
    r = runner.invoke(
        main, ["pdf", doc.id, "--format", "alto", "--page", "1", "-o", str(tmp_path / "p1.xml")]
    )
    assert r.exit_code == 0, r.output
    assert _alto_schema().validate(etree.parse(str(tmp_path / "p1.xml")))
    r = runner.invoke(main, ["pdf", doc.id, "--format", "hocr", "-o", "-"])
    assert r.exit_code == 0 and "ocrx_word" in r.output
    r = runner.invoke(main, ["pdf", str(uuid.uuid4()), "-o", str(tmp_path / "x.pdf")])
    assert r.exit_code == 1 and "404" in r.output


def test_store_searchable_pdf_on_completion(
    engine: Engine, store: LocalObjectStore, documents: dict[str, Recognized]
) -> None:
    doc = documents["scan.png"]
    uri = export.store_searchable_pdf(engine, store, uuid.UUID(doc.id))
    assert uri.endswith(export.searchable_pdf_key(doc.id))
    stored = store.get(uri)
    assert stored.startswith(b"%PDF-") and len(pdfium.PdfDocument(stored)) == doc.page_count
