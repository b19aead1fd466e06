"""One registry of OCR engine names (``pagestream.engine_names``), read by every place that offers a choice.

Each test fails when a place stops following the registry: an engine added to the names but not
buildable, a settings value or API enum that lists other names, a CLI choice left behind.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pagestream.api.operations import ReprocessRequest
from pagestream.api.uploads import UPLOAD_OPENAPI
from pagestream.cli.documents import reprocess
from pagestream.engine_names import DEFAULT_ENGINE, ENGINE_NAMES
from pagestream.ocr.errors import EngineConfigurationError
from pagestream.ocr.factory import BUILDERS, make_engine
from pagestream.settings import Settings


def test_the_factory_builds_every_registered_engine_under_its_own_name() -> None:
    assert set(BUILDERS) == set(ENGINE_NAMES)
    settings = Settings()
    for name in ENGINE_NAMES:
        engine = make_engine(name, settings)  # configures only: nothing connects before start()
        try:
            assert engine.name == name
        finally:
            engine.close()


def test_an_unknown_engine_is_a_configuration_error_naming_the_choices() -> None:
    with pytest.raises(EngineConfigurationError) as e:
        make_engine("abbyy", Settings())
    assert all(name in str(e.value) for name in ENGINE_NAMES)


def test_settings_accept_exactly_the_registered_engines() -> None:
    assert Settings().ocr_engine == DEFAULT_ENGINE
    for name in ENGINE_NAMES:
        assert Settings(PAGESTREAM_OCR_ENGINE=name).ocr_engine == name
    with pytest.raises(ValidationError):
        Settings(PAGESTREAM_OCR_ENGINE="abbyy")


def test_the_api_offers_exactly_the_registered_engines() -> None:
    form = UPLOAD_OPENAPI["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert tuple(form["engine"]["enum"]) == ENGINE_NAMES
    body = ReprocessRequest.model_json_schema()["properties"]["engine"]["anyOf"]
    assert [tuple(v["enum"]) for v in body if "enum" in v] == [ENGINE_NAMES]
    for name in ENGINE_NAMES:
        assert ReprocessRequest(engine=name).engine == name
    with pytest.raises(ValidationError):
        ReprocessRequest.model_validate({"engine": "abbyy"})


def test_the_cli_offers_exactly_the_registered_engines() -> None:
    (option,) = [p for p in reprocess.params if p.name == "engine"]
    assert tuple(option.type.choices) == ENGINE_NAMES  # type: ignore[attr-defined]
