"""hOCR 1.2 and ALTO 4.4 from the stored layout, per page or per document.

Boxes are in pixels of the image the engine analysed (``layout.width`` × ``layout.height``:
the page rendered at ``layout.dpi``, turned upright by ``layout.rotation``), the same boxes the
JSON layout carries; for born-digital pages (``source = text-layer``) the unit is the PDF point.
Confidences: hOCR ``x_wconf`` 0–100, ALTO ``WC`` 0–1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from pagestream.export.source import SourceDocument, SourcePage
from pagestream.layout import Box, PageLayout

XHTML_NS = "http://www.w3.org/1999/xhtml"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA_LOCATION = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
#: the ALTO 4.4 schema (and the XLink schema it imports), shipped for validation
ALTO_XSD = Path(__file__).parent / "xsd" / "alto-4-4.xsd"
XLINK_XSD = Path(__file__).parent / "xsd" / "xlink.xsd"

HOCR_MEDIA_TYPE = "application/xhtml+xml"
ALTO_MEDIA_TYPE = "application/xml"


def _i(v: float) -> int:
    return int(round(v))


def _bbox(box: Box) -> str:
    return f"bbox {_i(box.x0)} {_i(box.y0)} {_i(box.x1)} {_i(box.y1)}"


def _pages_of(
    source: SourceDocument, pages: Sequence[SourcePage] | None
) -> list[tuple[SourcePage, PageLayout]]:
    """The chosen pages that have a layout, each with it (pages without one are left out)."""
    return [(p, p.layout) for p in (pages if pages is not None else source.pages) if p.layout is not None]


# --- hOCR -------------------------------------------------------------------------------------
def _hocr_page(body: ET.Element, page: SourcePage, layout: PageLayout, image: str | None) -> None:
    n = page.page_number
    title = [f"bbox 0 0 {layout.width} {layout.height}", f"ppageno {n - 1}"]
    if image:
        title.insert(0, f'image "{image}"')
    if layout.dpi:
        title.append(f"scan_res {_i(layout.dpi)} {_i(layout.dpi)}")
    div = ET.SubElement(body, "div", {"class": "ocr_page", "id": f"page_{n}", "title": "; ".join(title)})
    for b, block in enumerate(layout.blocks, start=1):
        carea = ET.SubElement(
            div, "div", {"class": "ocr_carea", "id": f"block_{n}_{b}", "title": _bbox(block.box)}
        )
        par = ET.SubElement(carea, "p", {"class": "ocr_par", "id": f"par_{n}_{b}", "title": _bbox(block.box)})
        for li, line in enumerate(block.lines, start=1):
            span = ET.SubElement(
                par, "span", {"class": "ocr_line", "id": f"line_{n}_{b}_{li}", "title": _bbox(line.box)}
            )
            words = [w for w in line.words if w.text.strip()]
            for wi, word in enumerate(words, start=1):
                w = ET.SubElement(
                    span,
                    "span",
                    {
                        "class": "ocrx_word",
                        "id": f"word_{n}_{b}_{li}_{wi}",
                        "title": f"{_bbox(word.box)}; x_wconf {_i(word.confidence)}",
                    },
                )
                w.text = word.text.strip()
                w.tail = " " if wi < len(words) else None
            if not words and line.text:
                span.text = line.text


def hocr(
    source: SourceDocument, pages: Sequence[SourcePage] | None = None, image_url: str | None = None
) -> bytes:
    """An hOCR (XHTML) file of ``pages`` (default: every recognized page of the document).

    ``image_url`` may hold ``{page_number}``: it becomes each page's ``image`` property.
    """
    html = ET.Element("html", {"xmlns": XHTML_NS, "xml:lang": "en", "lang": "en"})
    head = ET.SubElement(html, "head")
    ET.SubElement(head, "title").text = source.filename or f"document {source.document_id}"
    ET.SubElement(head, "meta", {"http-equiv": "Content-Type", "content": "text/html; charset=utf-8"})
    engines = sorted({layout.engine for _, layout in _pages_of(source, pages)})
    ET.SubElement(
        head,
        "meta",
        {"name": "ocr-system", "content": "pagestream" + (f" ({', '.join(engines)})" if engines else "")},
    )
    ET.SubElement(
        head,
        "meta",
        {"name": "ocr-capabilities", "content": "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"},
    )
    ET.SubElement(
        head, "meta", {"name": "ocr-number-of-pages", "content": str(len(_pages_of(source, pages)))}
    )
    body = ET.SubElement(html, "body")
    for page, layout in _pages_of(source, pages):
        image = image_url.format(page_number=page.page_number) if image_url else None
        _hocr_page(body, page, layout, image)
    ET.indent(html, space=" ")
    doctype = (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
    )
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + doctype.encode()
        + ET.tostring(html, encoding="unicode").encode("utf-8")
        + b"\n"
    )


# --- ALTO -------------------------------------------------------------------------------------
def _pos(box: Box) -> dict[str, str]:
    return {
        "HPOS": str(_i(box.x0)),
        "VPOS": str(_i(box.y0)),
        "WIDTH": str(max(0, _i(box.x1) - _i(box.x0))),
        "HEIGHT": str(max(0, _i(box.y1) - _i(box.y0))),
    }


def _alto_page(layout_el: ET.Element, page: SourcePage, layout: PageLayout) -> None:
    n = page.page_number
    attrs = {
        "ID": f"page_{n}",
        "PHYSICAL_IMG_NR": str(n),
        "WIDTH": str(layout.width),
        "HEIGHT": str(layout.height),
    }
    if layout.mean_confidence is not None:
        attrs["PC"] = f"{max(0.0, min(1.0, layout.mean_confidence / 100)):.4f}"
    if layout.rotation:
        attrs["ROTATION"] = str(layout.rotation % 360)
    page_el = ET.SubElement(layout_el, "Page", attrs)
    space = ET.SubElement(
        page_el,
        "PrintSpace",
        {"HPOS": "0", "VPOS": "0", "WIDTH": str(layout.width), "HEIGHT": str(layout.height)},
    )
    for b, block in enumerate(layout.blocks, start=1):
        block_el = ET.SubElement(space, "TextBlock", {"ID": f"block_{n}_{b}", **_pos(block.box)})
        for li, line in enumerate(block.lines, start=1):
            words = [w for w in line.words if w.text.strip()]
            if not words:
                continue
            line_el = ET.SubElement(block_el, "TextLine", {"ID": f"line_{n}_{b}_{li}", **_pos(line.box)})
            for wi, word in enumerate(words, start=1):
                # CONTENT is one token: a word with inner whitespace keeps its parts joined
                content = "\u00a0".join(word.text.split())
                ET.SubElement(
                    line_el,
                    "String",
                    {
                        "ID": f"string_{n}_{b}_{li}_{wi}",
                        "CONTENT": content,
                        **_pos(word.box),
                        "WC": f"{max(0.0, min(1.0, word.confidence / 100)):.4f}",
                    },
                )
                if wi < len(words):
                    nxt = words[wi]
                    gap_x = _i(word.box.x1)
                    ET.SubElement(
                        line_el,
                        "SP",
                        {
                            "HPOS": str(gap_x),
                            "VPOS": str(_i(line.box.y0)),
                            "WIDTH": str(max(0, _i(nxt.box.x0) - gap_x)),
                        },
                    )


def alto(
    source: SourceDocument, pages: Sequence[SourcePage] | None = None, image_name: str | None = None
) -> bytes:
    """An ALTO 4.4 file of ``pages`` (default: every recognized page), valid against ``ALTO_XSD``."""
    ET.register_namespace("", ALTO_NS)
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    q = f"{{{ALTO_NS}}}"
    root = ET.Element(
        f"{q}alto",
        {"{http://www.w3.org/2001/XMLSchema-instance}schemaLocation": f"{ALTO_NS} {ALTO_SCHEMA_LOCATION}"},
    )
    desc = ET.SubElement(root, f"{q}Description")
    ET.SubElement(desc, f"{q}MeasurementUnit").text = "pixel"
    info = ET.SubElement(desc, f"{q}sourceImageInformation")
    ET.SubElement(info, f"{q}fileName").text = image_name or source.filename or source.document_id
    chosen = _pages_of(source, pages)
    engines = sorted({(layout.engine, layout.engine_version) for _, layout in chosen})
    if engines:
        processing = ET.SubElement(desc, f"{q}Processing", {"ID": "processing_1"})
        software = ET.SubElement(processing, f"{q}processingSoftware")
        ET.SubElement(software, f"{q}softwareName").text = "pagestream: " + ", ".join(e for e, _ in engines)
        ET.SubElement(software, f"{q}softwareVersion").text = ", ".join(v for _, v in engines)
    layout_el = ET.SubElement(root, f"{q}Layout")
    for page, layout in chosen:
        before = len(layout_el)
        _alto_page(layout_el, page, layout)
        for el in layout_el[before:]:
            _qualify(el, q)
    ET.indent(root, space=" ")
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(root, encoding="unicode").encode("utf-8")
        + b"\n"
    )


def _qualify(el: ET.Element, q: str) -> None:
    """Put an element tree built with bare tag names into the ALTO namespace."""
    for node in el.iter():
        if not node.tag.startswith("{"):
            node.tag = q + node.tag
