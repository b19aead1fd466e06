"""The web viewer at /ui in a real headless Chromium (Debian's chromium + chromium-driver):
sign-in with an API key, upload with progress, live status, the page view with confidence-shaded
word boxes (a screenshot shows them over the words), hover, title-block fields, and search."""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image
from sqlalchemy import Engine

from pagestream.api.app import create_app
from pagestream.db.apikeys import create_key
from pagestream.db.progress import PageOutcome, apply_page_outcomes
from pagestream.events.models import PageOcrCompletedV1, page_id_for, utcnow
from pagestream.layout import TitleBlock
from pagestream.ocr.pipeline import PageProcessor
from pagestream.ocr.tesseract import TesseractEngine
from pagestream.settings import Settings
from pagestream.storage import LocalObjectStore
from tests.integration.fabricate import completed, new_document
from tests.integration.test_exports import Recognized, _record, _scan_png
from tests.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/install-system-packages.sh)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def viewer_store(tmp_path_factory: pytest.TempPathFactory) -> LocalObjectStore:
    return LocalObjectStore(tmp_path_factory.mktemp("viewer-store"))


@pytest.fixture(scope="module")
def letter(engine: Engine, viewer_store: LocalObjectStore) -> Recognized:
    with PageProcessor(TesseractEngine()) as proc:
        return _record(
            engine, viewer_store, proc, f"letter-{uuid.uuid4().hex[:6]}.png", _scan_png(), "image/png"
        )


@pytest.fixture(scope="module")
def ui_key(engine: Engine) -> str:
    return create_key(engine, "test-viewer")[1]


@pytest.fixture(scope="module")
def server(migrated: Settings, engine: Engine, viewer_store: LocalObjectStore) -> Iterator[str]:
    """The API with authentication on, served by uvicorn on a free loopback port."""
    app = create_app(migrated, engine=engine, store=viewer_store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True, name="viewer-api")
    t.start()
    wait_until(lambda: srv.started, 20, "the API server to start")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pagestream-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1500,1100",
        "--force-device-scale-factor=1",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements("css selector", selector)


def _wait_css(driver: Any, selector: str, timeout: float = 15, count: int = 1) -> list[Any]:
    found = wait_until(
        lambda: (els := _css(driver, selector)) and len(els) >= count and els,
        timeout,
        f"{count}× {selector!r} in the viewer",
        interval=0.1,
    )
    return list(found)


@pytest.fixture(scope="module")
def signed_in(browser: Any, server: str, ui_key: str) -> Any:
    browser.get(f"{server}/ui")
    assert "API key" in browser.page_source  # not signed in: the sign-in page, not the viewer
    assert not _css(browser, "#documents")
    browser.find_element("id", "key").send_keys(ui_key)
    browser.find_element("css selector", "#login button").click()
    _wait_css(browser, "#documents")
    return browser


def test_assets_and_viewer_need_the_key(server: str, ui_key: str) -> None:
    import httpx

    assert httpx.get(f"{server}/ui").status_code == 401
    assert httpx.get(f"{server}/ui/static/viewer.js").status_code == 401
    assert httpx.post(f"{server}/ui/session", data={"key": "ps_wrong"}).status_code == 401
    with httpx.Client(base_url=server) as c:
        r = c.post("/ui/session", data={"key": ui_key})
        assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
        assert c.get("/ui").status_code == 200 and c.get("/ui/static/viewer.js").status_code == 200


def _open(driver: Any, document_id: str) -> None:
    row = f"#documents li[data-id='{document_id}']"
    _wait_css(driver, row)
    driver.execute_script(
        "document.querySelector(arguments[0]).click()", row
    )  # the list re-renders every 2 s


def test_page_view_draws_confidence_boxes_over_the_words(
    signed_in: Any, letter: Recognized, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver = signed_in
    _open(driver, letter.id)
    words = _wait_css(driver, "#boxes .word", count=20)
    wait_until(
        lambda: driver.execute_script(
            "return document.getElementById('page-image').complete "
            "&& document.getElementById('page-image').naturalWidth > 0"
        ),
        10,
        "the page image to load",
    )
    text = driver.find_element("id", "page-text").text
    assert "Northwind Engineering" in text
    # shaded by confidence: every box has a translucent background
    assert all(
        "hsla" in w.get_attribute("style") or "rgba" in w.value_of_css_property("background-color")
        for w in words[:5]
    )
    # hover shows the word and its confidence
    target = next(w for w in words if w.get_attribute("data-word") == "Northwind")
    ActionChains(driver).move_to_element(target).perform()
    tip = wait_until(
        lambda: (t := driver.find_element("id", "tip")).is_displayed() and t.text, 5, "the hover tip"
    )
    assert tip.startswith("Northwind — ") and tip.endswith("%")

    # screenshot: the ink of the page lies inside the drawn boxes, and each box covers ink
    stage = driver.find_element("id", "stage")
    driver.execute_script(
        "document.getElementById('tip').hidden = true; arguments[0].scrollIntoView()", stage
    )
    shot = Image.open(io.BytesIO(stage.screenshot_as_png)).convert("RGB")
    shot.save(tmp_path / "viewer.png")
    driver.save_screenshot(str(tmp_path / "window.png"))
    rects = driver.execute_script(
        "const s = document.getElementById('stage').getBoundingClientRect();"
        "return [...document.querySelectorAll('#boxes .word')].map((e) => {"
        "  const r = e.getBoundingClientRect(); return [r.left - s.left, r.top - s.top, r.width, r.height]; })"
    )
    assert len(rects) == len(words)
    gray = shot.convert("L")
    width, height = gray.size
    dark = [v < 110 for v in gray.get_flattened_data()]
    total_ink = sum(dark)
    assert total_ink > 500, "the page image is drawn"
    inside = bytearray(width * height)
    covered = 0
    for x, y, w, h in rects:
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(width, int(x + w) + 1), min(height, int(y + h) + 1)
        ink = 0
        for yy in range(y0, y1):
            row = yy * width
            inside[row + x0 : row + x1] = b"\x01" * (x1 - x0)
            ink += sum(dark[row + x0 : row + x1])
        covered += ink / max(1, (x1 - x0) * (y1 - y0)) > 0.04
    ink_in_boxes = sum(d for d, i in zip(dark, inside, strict=True) if i)
    assert ink_in_boxes / total_ink > 0.9, (
        f"only {ink_in_boxes / total_ink:.0%} of the ink lies in word boxes"
    )
    assert covered >= 0.9 * len(rects), f"only {covered} of {len(rects)} boxes lie over ink"
    # and the boxes are tinted: paper inside a box is not the gray paper outside it
    x, y, w, h = rects[0]
    inner = [
        p
        for p in shot.crop((int(x) + 1, int(y) + 1, int(x + w) - 1, int(y + h) - 1)).get_flattened_data()
        if sum(p) > 3 * 150
    ]
    assert inner and any(max(p) - min(p) > 20 for p in inner), "word boxes are shaded in colour"


def test_search_highlights_and_jumps_to_the_page(signed_in: Any, letter: Recognized) -> None:
    driver = signed_in
    box = driver.find_element("id", "search-q")
    box.clear()
    box.send_keys("foundation")
    driver.find_element("css selector", "#search-form button").click()
    hit = _wait_css(driver, f"#hits li[data-document='{letter.id}']")[0]
    assert hit.find_element("css selector", "mark").text.lower() == "foundation"
    hit.click()
    # read in one script: the page view may be redrawn meanwhile (search, then the click)
    marked = wait_until(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('#boxes .word.hit')].map((e) => e.dataset.word)"
        ),
        15,
        "highlighted word boxes",
    )
    assert all("foundation" in m.lower() for m in marked), marked
    text_marks = wait_until(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('#page-text mark')].map((e) => e.textContent)"
        ),
        5,
        "marks in the text",
    )
    assert all(m.lower().startswith("foundation") for m in text_marks), text_marks


def test_title_block_fields_are_shown(signed_in: Any, engine: Engine) -> None:
    doc = new_document(engine, 1, filename="drawing.pdf")
    apply_page_outcomes(
        engine,
        [
            completed(
                doc,
                1,
                1,
                "FOUNDATION PLAN S-201 SCALE 1:100",
                title_block=TitleBlock(sheet_number="S-201", sheet_title="FOUNDATION PLAN", scale="1:100"),
            )
        ],
    )
    _open(signed_in, str(doc))
    number = _wait_css(signed_in, "#title-block dd.tb-sheet_number")[0]
    assert number.text == "S-201"
    assert signed_in.find_element("css selector", "#title-block dd.tb-sheet_title").text == "FOUNDATION PLAN"
    assert signed_in.find_element("css selector", "#title-block dd.tb-scale").text == "1:100"


def _document_row(driver: Any, *, name: str | None = None, document_id: str | None = None) -> dict | None:
    """``{id, status}`` of the document list's row for a file name or id, read atomically in the page."""
    return driver.execute_script(
        "const rows = [...document.querySelectorAll('#documents li')];"
        "const li = rows.find(l => (arguments[0] && l.textContent.includes(arguments[0]))"
        "                          || (arguments[1] && l.dataset.id === arguments[1]));"
        "return li ? {id: li.dataset.id, status: li.dataset.status} : null;",
        name,
        document_id,
    )


def test_upload_with_progress_and_live_status(signed_in: Any, engine: Engine, tmp_path: Path) -> None:
    driver = signed_in
    path = tmp_path / f"upload-{uuid.uuid4().hex[:8]}.png"
    image = Image.new("L", (400, 300), 255)
    image.putpixel((int(time.time()) % 400, 7), 0)  # unique bytes
    image.save(path)
    driver.find_element("id", "upload-file").send_keys(str(path))
    driver.find_element("css selector", "#upload-form button").click()
    wait_until(
        lambda: "received" in driver.find_element("id", "upload-status").text, 15, "the upload to be accepted"
    )
    assert driver.find_element("id", "upload-progress").get_attribute("value") == "100"
    # read each row in one script: the list re-renders every 2 s, so element handles go stale
    row = wait_until(lambda: _document_row(driver, name=path.name), 10, "the upload in the document list")
    document_id = row["id"]
    assert row["status"] == "received"
    # the pipeline finishes the page: the list follows without a reload
    now = utcnow()
    layout = completed(uuid.UUID(document_id), 1, 1, "uploaded page").event.layout  # type: ignore[union-attr]
    apply_page_outcomes(
        engine,
        [
            PageOutcome(
                uuid.uuid4(),
                PageOcrCompletedV1(
                    page_id=page_id_for(uuid.UUID(document_id), 1),
                    document_id=uuid.UUID(document_id),
                    page_number=1,
                    page_count=1,
                    layout=layout,
                    started_at=now,
                    completed_at=now,
                ),
            )
        ],
    )
    wait_until(
        lambda: (_document_row(driver, document_id=document_id) or {}).get("status") == "completed",
        10,
        "the live status to reach completed",
    )
