"""The API keeps the promises of its OpenAPI document, fuzzed as a client would use it.

Schemathesis reads ``/openapi.json`` from a real ingest server (uvicorn, on the session's
PostgreSQL and broker, authentication on) and sends requests built from it: its examples, requests
breaking each stated constraint one at a time (coverage), and generated ones (fuzzing), then runs
links between operations (stateful: upload → status → pages → delete → 404). Every check runs:
no 5xx, only documented status codes, media types and headers, bodies matching their schemas,
schema-valid requests accepted, schema-violating ones rejected, a missing or wrong key answered
401, an undeclared method answered 405 with ``Allow``. Bounded: a few examples per operation and
a fixed seed, so a run takes well under a minute and fails the same way every time.

Nothing is excluded: ``/ui``, ``/healthz``, ``/readyz`` and ``/metrics`` are not in the document
(HTML, probes and Prometheus text for machines), every operation in it is fuzzed. Two things are
steered (``_prepare``): valid reads name a seeded, recognized document so success bodies are
checked, and valid redrives are dry runs, because the broker is shared with the other tests.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES

from pagestream.api.app import create_app
from pagestream.api.uploads import ACCEPTED_MEDIA_TYPES
from pagestream.db import Engine
from pagestream.db.apikeys import create_key
from pagestream.db.progress import apply_page_outcomes
from pagestream.events.models import page_id_for
from pagestream.settings import Settings
from pagestream.stack._proc import free_port
from tests.integration.fabricate import completed, pdf_bytes
from tests.waiting import wait_until

SEED = 20261130
MAX_EXAMPLES = 8  # per operation in the fuzzing phase; coverage adds one case per constraint
STATEFUL_STEPS = 6


def _image(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (64, 48), 255).save(out, format=fmt)
    return out.getvalue()


def _documents() -> dict[str, st.SearchStrategy[bytes]]:
    """A real file for each media type the upload accepts.

    The document says which formats ``file`` may be (its multipart ``encoding``) but JSON Schema
    cannot say "a PDF": without these, every schema-valid upload would be random bytes, rightly
    answered 415, and the positive-data check could never pass.
    """
    formats = {
        "image/png": "PNG",
        "image/jpeg": "JPEG",
        "image/tiff": "TIFF",
        "image/gif": "GIF",
        "image/webp": "WEBP",
        "image/bmp": "BMP",
    }
    out: dict[str, st.SearchStrategy[bytes]] = {t: st.just(_image(f)) for t, f in formats.items()}
    out["application/pdf"] = st.builds(lambda n: pdf_bytes(f"contract {n}"), st.integers(0, 3))
    assert set(out) == set(ACCEPTED_MEDIA_TYPES)
    return out


@pytest.fixture(scope="module")
def contract_server(migrated: Settings, engine: Engine) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of an ingest API served by uvicorn with authentication enabled, holding one
    recognized document (real stored bytes, one completed page): see ``_prepare``."""
    app = create_app(migrated.model_copy(update={"auth": "enabled"}), engine=engine)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True, name="uvicorn-contract")
    thread.start()
    wait_until(lambda: srv.started, 15, "uvicorn to start")
    _, key = create_key(engine, f"contract-{uuid.uuid4().hex[:6]}")
    upload = httpx.post(
        f"http://127.0.0.1:{port}/v1/documents?force=true",
        headers={"X-API-Key": key},
        files={"file": ("contract.png", _image("PNG"), "image/png")},
    )
    assert upload.status_code == 202, upload.text
    doc = uuid.UUID(upload.json()["id"])
    apply_page_outcomes(engine, [completed(doc, 1, 1, "contract of the seeded page")])
    SEEDED.update(document_id=str(doc), page_id=str(page_id_for(doc, 1)))
    registered = {}
    for media_type, strategy in _documents().items():
        registered[media_type] = MEDIA_TYPE_STRATEGIES.get(media_type)
        schemathesis.openapi.media_type(media_type, strategy)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        for media_type, previous in registered.items():
            if previous is None:
                MEDIA_TYPE_STRATEGIES.pop(media_type, None)
            else:
                MEDIA_TYPE_STRATEGIES[media_type] = previous
        srv.should_exit = True
        thread.join(15)


def contract_config() -> SchemathesisConfig:
    """Every check, bounded and deterministic."""
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "cache": {
                "enabled": False
            },  # no replay of earlier runs' failures, nothing written into the work tree
            "suppress-health-check": ["all"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
            },
            "checks": {"enabled": True},
            "operations": [
                {
                    # `cursor` is opaque: a well-formed one this API never returned is answered 400 (declared).
                    # No schema can state "a value from next_cursor", so 400 counts as a proper answer here.
                    "include-path": "/v1/documents",
                    "include-method": "GET",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [
                                "2xx",
                                "3xx",
                                "400",
                                "401",
                                "403",
                                "404",
                                "409",
                                "429",
                                "5xx",
                            ]
                        }
                    },
                }
            ],
        }
    )


def _document() -> dict[str, Any]:
    """The app's OpenAPI document. Building the app connects to nothing, so it is read at collection
    and schemathesis makes one test per operation from it (its lazy ``from_fixture`` loader does not
    run under pytest 9); ``test_the_server_serves_this_document`` checks the running server serves
    exactly this document."""
    offline = Settings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
        DATABASE_URL="postgresql://x:x@127.0.0.1:9/x",
        STORAGE_URL="file:///nonexistent",
    )
    return create_app(offline).openapi()


schema = schemathesis.openapi.from_dict(_document(), config=contract_config())


def test_the_server_serves_this_document(contract_server: tuple[str, str]) -> None:
    url, _ = contract_server
    assert httpx.get(f"{url}/openapi.json").json() == schema.raw_schema


#: identifiers of the seeded document and its page (set by ``contract_server``)
SEEDED: dict[str, str] = {}


def _prepare(case: schemathesis.Case) -> None:
    """Valid reads go to the seeded document, so success bodies are checked too, not only 404s
    (random identifiers name nothing; outputs, pages and OCR layout exist only for a recognized
    document); valid redrives are dry runs. Invalid cases are sent as generated."""
    if case.method == "POST" and case.path.endswith("/redrive"):
        # the broker is the session's: a real redrive would send other tests' dead letters back to live
        # topics. A valid or absent `dry_run` becomes true; an invalid one is left to be rejected.
        if isinstance(case.body, dict) and case.body.get("dry_run", False) is False:
            case.body = {**case.body, "dry_run": True}
        elif case.body is None or isinstance(case.body, NotSet):  # a null body, or none
            case.body, case.media_type = {"dry_run": True}, "application/json"
    if case.method == "GET" and case.meta is not None and case.meta.generation.mode.is_positive:
        case.path_parameters = {
            name: SEEDED.get(name, value) for name, value in (case.path_parameters or {}).items()
        }


@schema.parametrize()
def test_every_operation_keeps_its_contract(
    case: schemathesis.Case, contract_server: tuple[str, str]
) -> None:
    url, key = contract_server
    _prepare(case)
    case.call_and_validate(base_url=url, headers={"X-API-Key": key})


def test_linked_operations_keep_their_contract(contract_server: tuple[str, str]) -> None:
    """Upload, then follow the links the document implies (status, pages, OCR, delete) with every check."""
    url, key = contract_server

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            _prepare(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": url, "headers": {"X-API-Key": key}}

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
    )
