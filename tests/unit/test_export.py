"""Exports from synthetic layouts (no OCR, no database): box geometry for turned and straightened
pages, the searchable PDF's text layer (characters and positions), hOCR and ALTO validity."""

from __future__ import annotations

import io
from typing import Any

import pypdfium2 as pdfium
import pytest
from lxml import etree
from PIL import Image, ImageDraw

from pagestream.export import alto, hocr, searchable_pdf
from pagestream.export.geometry import AnalysedToPage
from pagestream.export.pdf import DEFAULT_IMAGE_DPI
from pagestream.export.source import SourceDocument, SourcePage, layout_from_row
from pagestream.export.xml import ALTO_NS, ALTO_XSD, XLINK_XSD
from pagestream.layout import Block, Box, Line, PageLayout, Word
from pagestream.ocr.pipeline import rotate_clockwise

W, H = 1000, 1400  # the page as displayed, in pixels


def _layout(
    lines: list[list[tuple[str, tuple[int, int, int, int]]]], width: int, height: int, **kw: Any
) -> PageLayout:
    out_lines = []
    for words in lines:
        ws = [
            Word(text=t, box=Box.from_pixels(*b, width, height), confidence=80.0 + i)
            for i, (t, b) in enumerate(words)
        ]
        x0, y0 = min(w.box.x0 for w in ws), min(w.box.y0 for w in ws)
        x1, y1 = max(w.box.x1 for w in ws), max(w.box.y1 for w in ws)
        out_lines.append(
            Line(
                text=" ".join(w.text for w in ws),
                box=Box.from_pixels(x0, y0, x1, y1, width, height),
                words=ws,
            )
        )
    text = "\n".join(ln.text for ln in out_lines)
    block = Block(text=text, box=out_lines[0].box, lines=out_lines)
    return PageLayout(
        text=text,
        width=width,
        height=height,
        dpi=300,
        source="ocr",
        engine="tesseract",
        engine_version="5",
        mean_confidence=85.0,
        blocks=[block],
        **kw,
    )


def _marker_image() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A page with one black rectangle (the 'word') somewhere off-centre."""
    image = Image.new("L", (W, H), 255)
    box = (150, 200, 420, 260)
    ImageDraw.Draw(image).rectangle(box, fill=0)
    return image, box


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("deskew", [0.0, 2.5])
def test_analysed_boxes_map_back_onto_the_displayed_page(rotation: int, deskew: float) -> None:
    image, box = _marker_image()
    analysed = rotate_clockwise(image, rotation)
    if deskew:
        analysed = analysed.rotate(deskew, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    found = Image.eval(analysed, lambda v: 255 - v).getbbox()  # the word, as the engine saw it
    assert found is not None
    layout = _layout(
        [[("word", found)]], analysed.width, analysed.height, rotation=rotation, skew_degrees=-deskew
    )
    to_page = AnalysedToPage.for_layout(layout, W * 0.24, H * 0.24)  # points at 300 dpi
    cx, cy = to_page.point((found[0] + found[2]) / 2, (found[1] + found[3]) / 2)
    # back to displayed pixels, y down
    px, py = cx / 0.24, H - cy / 0.24
    assert px == pytest.approx((box[0] + box[2]) / 2, abs=4)
    assert py == pytest.approx((box[1] + box[3]) / 2, abs=4)


def _image_pdf(image: Image.Image, dpi: float = 300.0) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PDF", resolution=dpi)
    return buf.getvalue()


def test_text_layer_keeps_every_character_at_its_box() -> None:
    words = [
        ("Café", (100, 100, 300, 150)),
        ("“naïve”", (330, 100, 560, 150)),
        ("Straße", (590, 100, 800, 150)),
        ("€1,50", (100, 300, 220, 350)),
        ("50 %", (250, 300, 400, 350)),
    ]
    layout = _layout([words[:3], words[3:]], W, H)
    image = Image.new("L", (W, H), 255)
    data = _image_pdf(image)
    out = searchable_pdf(SourceDocument("d", data, "application/pdf", pages=[SourcePage(1, layout)]))
    doc = pdfium.PdfDocument(out)
    assert len(doc) == 1
    page = doc[0]
    assert page.get_size() == pytest.approx(pdfium.PdfDocument(data)[0].get_size())
    textpage = page.get_textpage()
    text = textpage.get_text_range()
    assert " ".join(text.split()) == "Café “naïve” Straße €1,50 50 %"
    # each word's first character lies at the word's box (pdfium: points, origin bottom-left)
    scale = 72 / 300
    index = 0
    for word, (x0, y0, _x1, y1) in words:
        index = text.index(word[0], index)
        left, bottom, right, top = textpage.get_charbox(index)
        assert left == pytest.approx(x0 * scale, abs=2)
        assert (bottom + top) / 2 == pytest.approx((H - (y0 + y1) / 2) * scale, abs=6)
        index += len(word)


def test_image_document_becomes_pdf_pages_at_its_resolution() -> None:
    image = Image.new("RGB", (600, 800), "white")
    buf = io.BytesIO()
    image.save(buf, "TIFF", save_all=True, append_images=[image.copy()], dpi=(150, 150))
    layout = _layout([[("hello", (50, 50, 200, 90))]], 600, 800)
    out = searchable_pdf(SourceDocument("d", buf.getvalue(), "image/tiff", pages=[SourcePage(2, layout)]))
    doc = pdfium.PdfDocument(out)
    assert len(doc) == 2
    assert doc[0].get_size() == pytest.approx((600 * 72 / 150, 800 * 72 / 150))
    assert doc[0].get_textpage().get_text_range().strip() == ""
    assert doc[1].get_textpage().get_text_range().strip() == "hello"
    png = io.BytesIO()
    image.save(png, "PNG")
    single = pdfium.PdfDocument(searchable_pdf(SourceDocument("d", png.getvalue(), "image/png")))
    assert single[0].get_size() == pytest.approx((600 * 72 / DEFAULT_IMAGE_DPI, 800 * 72 / DEFAULT_IMAGE_DPI))


def test_born_digital_pages_are_kept_as_they_are() -> None:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(300, 200))
    c.drawString(20, 100, "born digital")
    c.showPage()
    c.save()
    layout = _layout([[("born", (20, 90, 60, 104)), ("digital", (64, 90, 110, 104))]], 300, 200)
    layout = layout.model_copy(update={"source": "text-layer"})
    out = searchable_pdf(
        SourceDocument("d", buf.getvalue(), "application/pdf", pages=[SourcePage(1, layout)])
    )
    assert pdfium.PdfDocument(out)[0].get_textpage().get_text_range().strip() == "born digital"  # not doubled


def _schema() -> etree.XMLSchema:
    class Local(etree.Resolver):
        def resolve(self, url: str, pubid: str, context: Any) -> Any:
            return self.resolve_filename(str(XLINK_XSD), context) if url.endswith("xlink.xsd") else None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    return etree.XMLSchema(etree.parse(str(ALTO_XSD), parser))


def test_alto_and_hocr_of_awkward_words_are_valid() -> None:
    layout = _layout(
        [[("a<b&c", (10, 10, 80, 40)), ("two words", (90, 10, 200, 40)), ("é", (210, 10, 230, 40))]],
        400,
        300,
        rotation=90,
    )
    source = SourceDocument(
        "d",
        b"",
        "image/png",
        filename="x & y.png",
        pages=[SourcePage(1, layout), SourcePage(2, None), SourcePage(3, layout)],
    )
    tree = etree.fromstring(alto(source))
    schema = _schema()
    assert schema.validate(tree), schema.error_log
    ns = {"a": ALTO_NS}
    assert [p.get("PHYSICAL_IMG_NR") for p in tree.findall(".//a:Page", ns)] == ["1", "3"]
    assert [s.get("CONTENT") for s in tree.findall(".//a:String", ns)][:3] == ["a<b&c", "two\u00a0words", "é"]
    html = etree.fromstring(hocr(source))
    words = html.findall(".//{http://www.w3.org/1999/xhtml}span[@class='ocrx_word']")
    assert [w.text for w in words][:3] == ["a<b&c", "two words", "é"]
    assert words[0].get("title") == "bbox 10 10 80 40; x_wconf 80"


def test_layout_from_row_restores_the_text() -> None:
    layout = _layout([[("x", (1, 1, 5, 5))]], 10, 10)
    row = {"status": "completed", "text": "x", "layout": layout.model_dump(mode="json", exclude={"text"})}
    assert layout_from_row(row) == layout
    assert layout_from_row({"status": "failed", "text": "", "layout": None}) is None


@pytest.mark.parametrize("source_rotation", [90, 180, 270])
def test_text_layer_follows_the_source_pages_own_rotation_and_crop_box(
    source_rotation: int, tmp_path: Any
) -> None:
    import re
    import shutil
    import subprocess

    if not shutil.which("pdftotext"):
        pytest.skip("needs poppler-utils")
    # a page stored sideways or upside down, displayed through /Rotate, with a crop box off the origin
    src = pdfium.PdfDocument(_image_pdf(Image.new("L", (W, H), 255)))
    page = src[0]
    page.set_mediabox(-50, -30, W * 0.24 - 50, H * 0.24 - 30)
    page.set_cropbox(-50, -30, W * 0.24 - 50, H * 0.24 - 30)
    page.set_rotation(source_rotation)
    buf = io.BytesIO()
    src.save(buf)
    shown_w, shown_h = (H, W) if source_rotation in (90, 270) else (W, H)  # displayed, in pixels
    word_box = (120, 80, 360, 130)
    layout = _layout([[("Marker", word_box), ("two", (380, 80, 470, 130))]], shown_w, shown_h)
    out = searchable_pdf(
        SourceDocument("d", buf.getvalue(), "application/pdf", pages=[SourcePage(1, layout)])
    )
    path = tmp_path / "out.pdf"
    path.write_bytes(out)
    assert pdfium.PdfDocument(out)[0].get_rotation() == source_rotation
    bbox = subprocess.run(
        ["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">Marker<', bbox)
    assert m, bbox
    x0, y0, x1, y1 = (float(v) / 0.24 for v in m.groups())  # back to displayed pixels
    assert (x0 + x1) / 2 == pytest.approx((word_box[0] + word_box[2]) / 2, abs=8)
    assert (y0 + y1) / 2 == pytest.approx((word_box[1] + word_box[3]) / 2, abs=15)
