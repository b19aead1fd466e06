"""``pagestream submit`` of many files at once, against a real API server (uvicorn) and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import uvicorn
from click.testing import CliRunner
from sqlalchemy import Engine

from pagestream.api.app import create_app
from pagestream.cli.documents import register
from pagestream.client import ApiClient
from pagestream.db.documents import get_document
from pagestream.db.progress import apply_page_outcomes
from pagestream.settings import Settings
from pagestream.stack._proc import free_port
from tests.integration.fabricate import completed, new_document, png_bytes
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def api_url(migrated: Settings, engine: Engine) -> Iterator[str]:
    settings = migrated.model_copy(update={"auth": "disabled"})
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=srv.run, daemon=True, name="uvicorn-cli-test")
    thread.start()
    wait_until(lambda: srv.started, 15, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(15)


def _cli() -> click.Group:
    group = click.Group()
    register(group)
    return group


def test_submit_uploads_files_concurrently_and_reports_them_in_order(
    api_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGESTREAM_API_URL", api_url)
    monkeypatch.setenv("PAGESTREAM_STATE_DIR", str(tmp_path / "no-stack"))
    files = []
    for i in range(7):
        path = tmp_path / f"page-{i}.png"
        path.write_bytes(png_bytes(200 + i, 100 + uuid.uuid4().int % 500))  # different bytes each
        files.append(path)
    rejected = tmp_path / "notes.txt"
    rejected.write_text("not a document")
    args = ["submit", "--json", "-j", "4", *map(str, files[:3]), str(rejected), *map(str, files[3:])]

    result = CliRunner().invoke(_cli(), args)

    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [line["file"] for line in lines] == [*map(str, files[:3]), str(rejected), *map(str, files[3:])]
    assert lines[3]["status_code"] == 415 and "id" not in lines[3]
    accepted = lines[:3] + lines[4:]
    assert len({line["id"] for line in accepted}) == 7
    for line in accepted:
        doc = get_document(engine, uuid.UUID(line["id"]))
        assert doc["status"] == "received" and doc["filename"] == Path(line["file"]).name
    assert result.exit_code != 0  # one file was rejected


def test_wait_all_returns_the_final_documents_and_leaves_out_the_rest(api_url: str, engine: Engine) -> None:
    done, pending = new_document(engine, 1), new_document(engine, 2)
    apply_page_outcomes(engine, [completed(done, 1, 1, "all there")])
    with ApiClient(api_url) as client:
        final = client.wait_all([str(done), str(pending)], timeout=0)
    assert list(final) == [str(done)] and final[str(done)]["status"] == "completed"
