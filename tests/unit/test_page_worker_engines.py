"""Which engine failure ends the OCR worker process and which only fails the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagestream.errors import ConfigurationError
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.settings import Settings
from pagestream.workers import page_worker


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> page_worker.PageWorker:
    def unbuildable(name: str, settings: Settings) -> object:
        raise ConfigurationError(f"{name}: no credentials here")

    monkeypatch.setattr(page_worker, "make_ocr_engine", unbuildable)
    offline = Settings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        DATABASE_URL="postgresql://x:x@127.0.0.1:9/x",
        STORAGE_URL=f"file://{tmp_path}",
        PAGESTREAM_OCR_ENGINE="tesseract",
    )
    return page_worker.PageWorker(offline)


def test_an_engine_only_a_task_names_fails_that_page_not_the_process(worker: page_worker.PageWorker) -> None:
    """A restart would read the same task again: the page fails with the reason instead."""
    with pytest.raises(EngineConfigurationError, match="'google-vision' cannot run here"):
        worker._task_processor("google-vision")


def test_the_configured_engine_that_cannot_be_built_ends_the_process(worker: page_worker.PageWorker) -> None:
    """The deployment's own engine is a setting: every page would fail, so the process must end."""
    with pytest.raises(ConfigurationError):
        worker._task_processor("tesseract")
