"""TextractEngine and TextractAsyncJobs against botocore's Stubber (responses validated by the service model)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import ANY, Stubber
from PIL import Image

from pagestream._testing import pages
from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)
from pagestream.ocr.textract import SYNC_MAX_BYTES, TextractEngine
from pagestream.ocr.textract_async import (
    ASYNC_MAX_BYTES,
    ASYNC_MAX_PAGES,
    AsyncPollPolicy,
    TextractAsyncJobs,
    next_poll_delay,
)
from tests.contracts.ocr_engine_contract import OcrEngineContract

DATA = Path(__file__).resolve().parents[1] / "data" / "cloud"
RETRYABLE = [
    "ThrottlingException",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
]
UNREADABLE = [
    "BadDocumentException",
    "UnsupportedDocumentException",
    "DocumentTooLargeException",
    "InvalidParameterException",
]
CONFIGURATION = ["AccessDenied", "AccessDeniedException", "UnrecognizedClient", "UnrecognizedClientException"]


def load(name: str) -> dict[str, Any]:
    """A recorded-shape response body."""
    return json.loads((DATA / name).read_text())


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and region; never a developer's real profile or the instance metadata service."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def client() -> Any:
    """A real boto3 Textract client (stubbed per test)."""
    return boto3.session.Session().client("textract", region_name="us-east-1")


@pytest.fixture
def stubber(client: Any) -> Any:
    """botocore's Stubber on ``client``; every queued response must be consumed."""
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def page_image(width: int = 1700, height: int = 2200) -> Image.Image:
    """A blank page image."""
    return Image.new("L", (width, height), 255)


def capture_params(client: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters the client was called with for ``operation``."""
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        f"provide-client-params.textract.{operation}", lambda params, **kw: seen.append(copy.copy(params))
    )
    return seen


# --- sync engine: success mapping ------------------------------------------------------------


def test_recognize_maps_lines_words_and_groups_blocks(client: Any, stubber: Any) -> None:
    stubber.add_response(
        "detect_document_text", load("textract_detect_document_text.json"), {"Document": ANY}
    )
    sent = capture_params(client, "DetectDocumentText")

    with TextractEngine(client=client) as engine:
        layout = engine.recognize(page_image(), dpi=200)

    assert layout.engine == "textract" and layout.source == "ocr"
    assert layout.engine_version == "textract 1.0"  # DetectDocumentTextModelVersion
    assert (layout.width, layout.height, layout.dpi) == (1700, 2200, 200)
    # two close lines form one block; the far-away line is its own block
    assert [[ln.text for ln in b.lines] for b in layout.blocks] == [
        ["This is text.", "In two separate lines."],
        ["Sheet A101"],
    ]
    assert layout.text == "This is text.\nIn two separate lines.\nSheet A101"
    assert [w.text for w in layout.blocks[0].lines[1].words] == ["In", "two", "separate", "lines."]
    first = layout.blocks[0].lines[0].words[0]
    assert first.box.x0 == pytest.approx(0.1 * 1700) and first.box.y0 == pytest.approx(0.1 * 2200)
    assert first.box.nx0 == pytest.approx(0.1) and first.box.ny1 == pytest.approx(0.118)
    assert all(97 <= w.confidence <= 100 for w in layout.words())  # Textract is already 0–100
    assert layout.mean_confidence is not None and 97 <= layout.mean_confidence <= 100

    (params,) = sent
    png = params["Document"]["Bytes"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(png)).size == (1700, 2200)


def test_image_above_byte_limit_is_downscaled_boxes_stay_in_original_pixels(
    client: Any, stubber: Any
) -> None:
    stubber.add_response(
        "detect_document_text", load("textract_detect_document_text.json"), {"Document": ANY}
    )
    sent = capture_params(client, "DetectDocumentText")
    noisy = Image.effect_noise((800, 800), 120)

    layout = TextractEngine(client=client, max_image_bytes=80_000).recognize(noisy)

    assert len(sent[0]["Document"]["Bytes"]) <= 80_000
    assert Image.open(io.BytesIO(sent[0]["Document"]["Bytes"])).width < 800
    assert (layout.width, layout.height) == (800, 800)
    assert layout.words()[0].box.x0 == pytest.approx(80)


def test_sync_byte_limit_is_never_raised_above_ten_megabytes(client: Any) -> None:
    assert TextractEngine(client=client, max_image_bytes=50 * 1024 * 1024)._max_image_bytes == SYNC_MAX_BYTES


# --- sync engine: errors ---------------------------------------------------------------------


@pytest.mark.parametrize("code", RETRYABLE)
def test_throttling_and_server_errors_stay_retryable(client: Any, stubber: Any, code: str) -> None:
    stubber.add_client_error("detect_document_text", service_error_code=code, http_status_code=400)
    with pytest.raises(EngineUnavailableError) as info:
        TextractEngine(client=client).recognize(page_image(50, 50))
    assert type(info.value) is EngineUnavailableError and info.value.retryable is True
    cause = info.value.__cause__
    assert isinstance(cause, ClientError) and cause.response["Error"]["Code"] == code  # vendor code kept


@pytest.mark.parametrize("code", UNREADABLE)
def test_bad_documents_are_unreadable_and_not_retryable(client: Any, stubber: Any, code: str) -> None:
    stubber.add_client_error(
        "detect_document_text", service_error_code=code, service_message="Unable to read"
    )
    with pytest.raises(UnreadablePageError) as info:
        TextractEngine(client=client).recognize(page_image(50, 50))
    assert info.value.retryable is False
    assert code in str(info.value)


@pytest.mark.parametrize("code", CONFIGURATION)
def test_permission_errors_are_configuration_errors(client: Any, stubber: Any, code: str) -> None:
    stubber.add_client_error("detect_document_text", service_error_code=code, http_status_code=403)
    with pytest.raises(EngineConfigurationError) as info:
        TextractEngine(client=client).recognize(page_image(50, 50))
    assert info.value.retryable is False


def test_unknown_5xx_is_retryable_unknown_4xx_is_not(client: Any, stubber: Any) -> None:
    stubber.add_client_error("detect_document_text", service_error_code="SomethingNew", http_status_code=503)
    stubber.add_client_error("detect_document_text", service_error_code="SomethingElse", http_status_code=400)
    engine = TextractEngine(client=client)
    with pytest.raises(EngineUnavailableError):
        engine.recognize(page_image(50, 50))
    with pytest.raises(OcrError) as info:
        engine.recognize(page_image(50, 50))
    assert not info.value.retryable


def test_missing_credentials_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    engine = TextractEngine(region_name="us-east-1")
    engine.start()  # creating the client needs no credentials; signing the first request does
    with pytest.raises(EngineConfigurationError) as info:
        engine.recognize(page_image(50, 50))
    assert isinstance(info.value.__cause__, NoCredentialsError)


def test_unreachable_endpoint_is_retryable_and_bounded() -> None:
    # Port 9 on loopback refuses connections: exercises the real HTTP path, bounded by our config.
    session = boto3.session.Session()
    engine = TextractEngine(
        client=None, region_name="us-east-1", connect_timeout=1, read_timeout=1, max_attempts=1
    )
    engine._client = session.client(
        "textract", region_name="us-east-1", endpoint_url="http://127.0.0.1:9", config=engine._config
    )
    with pytest.raises(EngineUnavailableError) as info:
        engine.recognize(page_image(50, 50))
    assert isinstance(info.value.__cause__, EndpointConnectionError)


def test_constructor_does_not_create_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("client created in __init__")

    monkeypatch.setattr(boto3.session.Session, "client", forbidden)
    TextractEngine()


def test_start_creates_client_with_bounded_retries_and_timeouts() -> None:
    engine = TextractEngine(connect_timeout=3, read_timeout=30, max_attempts=4)
    engine.start()
    config = engine.client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (3, 30)
    assert engine.client.meta.region_name == "us-east-1"  # from the default chain (AWS_REGION)
    engine.close()
    with pytest.raises(EngineConfigurationError):
        engine.start()


# --- async jobs ------------------------------------------------------------------------------


def test_start_sends_s3_location_and_idempotency_token(client: Any, stubber: Any) -> None:
    stubber.add_response(
        "start_document_text_detection",
        {"JobId": "a" * 64},
        {
            "DocumentLocation": {"S3Object": {"Bucket": "docs", "Name": "in/doc.pdf"}},
            "ClientRequestToken": "doc-7f3a",
            "OutputConfig": {"S3Bucket": "results", "S3Prefix": "textract"},
        },
    )
    jobs = TextractAsyncJobs(client)
    job_id = jobs.start(
        "docs",
        "in/doc.pdf",
        client_token="doc-7f3a",
        output_config={"S3Bucket": "results", "S3Prefix": "textract"},
        size_bytes=1024,
        page_count=12,
        encrypted=False,
    )
    assert job_id == "a" * 64


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"client_token": "has spaces"}, EngineConfigurationError),
        ({"client_token": "x" * 65}, EngineConfigurationError),
        ({"client_token": "ok", "page_count": ASYNC_MAX_PAGES + 1}, UnreadablePageError),
        ({"client_token": "ok", "size_bytes": ASYNC_MAX_BYTES + 1}, UnreadablePageError),
        ({"client_token": "ok", "encrypted": True}, UnreadablePageError),
    ],
)
def test_start_rejects_what_textract_would_refuse_without_calling(
    client: Any, stubber: Any, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        TextractAsyncJobs(client).start("docs", "in/doc.pdf", **kwargs)  # the stubber has nothing queued


def test_start_rejects_unsupported_file_type(client: Any, stubber: Any) -> None:
    with pytest.raises(UnreadablePageError, match="PDF, TIFF, PNG or JPEG"):
        TextractAsyncJobs(client).start("docs", "in/doc.docx", client_token="t")


def test_start_throttled_is_retryable(client: Any, stubber: Any) -> None:
    stubber.add_client_error("start_document_text_detection", service_error_code="LimitExceededException")
    with pytest.raises(EngineUnavailableError):
        TextractAsyncJobs(client).start("docs", "in/doc.pdf", client_token="t")


@pytest.mark.parametrize(
    ("response", "state", "finished"),
    [
        ({"JobStatus": "IN_PROGRESS"}, "IN_PROGRESS", False),
        ({"JobStatus": "SUCCEEDED", "DocumentMetadata": {"Pages": 2}, "Blocks": []}, "SUCCEEDED", True),
        ({"JobStatus": "FAILED", "StatusMessage": "Request has invalid parameters"}, "FAILED", True),
        (
            {
                "JobStatus": "PARTIAL_SUCCESS",
                "DocumentMetadata": {"Pages": 3},
                "Warnings": [{"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": [2]}],
            },
            "PARTIAL_SUCCESS",
            True,
        ),
    ],
)
def test_poll_is_one_cheap_call(
    client: Any, stubber: Any, response: dict[str, Any], state: str, finished: bool
) -> None:
    stubber.add_response("get_document_text_detection", response, {"JobId": "job-1", "MaxResults": 1})
    status = TextractAsyncJobs(client).poll("job-1")
    assert status.state == state and status.finished is finished and not status.timed_out
    assert status.status_message == response.get("StatusMessage")
    if state == "PARTIAL_SUCCESS":
        assert (
            status.warnings == ({"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": [2]},) and status.pages == 3
        )


def test_poll_past_total_wait_declares_job_failed(client: Any, stubber: Any) -> None:
    stubber.add_response(
        "get_document_text_detection", {"JobStatus": "IN_PROGRESS"}, {"JobId": "j", "MaxResults": 1}
    )
    jobs = TextractAsyncJobs(client, policy=AsyncPollPolicy(max_total_wait_seconds=600))
    status = jobs.poll("j", started_at=1000.0, now=1601.0)
    assert status.state == "FAILED" and status.timed_out and "601" in (status.status_message or "")


def test_results_follow_next_token_and_group_blocks_by_page(client: Any, stubber: Any) -> None:
    first, second = load("textract_get_document_text_detection_2pages.json")["responses"]
    stubber.add_response("get_document_text_detection", first, {"JobId": "job-2", "MaxResults": 1000})
    stubber.add_response(
        "get_document_text_detection",
        second,
        {"JobId": "job-2", "MaxResults": 1000, "NextToken": first["NextToken"]},
    )

    pages = TextractAsyncJobs(client).results("job-2", page_sizes={1: (1275, 1650)})

    assert sorted(pages) == [1, 2]
    assert pages[1].text == "Page one heading\nFirst line of body text."
    # page 2's blocks were split across the two result pages; they must be reassembled
    assert pages[2].text == "Second page\nTotal: 42"
    assert [len(b.lines) for b in pages[1].blocks] == [1, 1]  # far apart: separate blocks
    assert (pages[1].width, pages[1].height) == (1275, 1650)
    assert (pages[2].width, pages[2].height) == (1000, 1000)  # unknown size: normalized ×1000 grid
    assert pages[1].engine_version == "textract 1.0"
    assert pages[2].words()[-1].text == "42"


def test_results_of_failed_or_running_job(client: Any, stubber: Any) -> None:
    stubber.add_response(
        "get_document_text_detection", {"JobStatus": "FAILED", "StatusMessage": "Invalid PDF"}
    )
    stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    jobs = TextractAsyncJobs(client)
    with pytest.raises(OcrError, match="Invalid PDF") as failed:
        jobs.results("j")
    assert not failed.value.retryable
    with pytest.raises(EngineUnavailableError):
        jobs.results("j")


def test_results_throttled_mid_pagination_stays_retryable(client: Any, stubber: Any) -> None:
    first, _ = load("textract_get_document_text_detection_2pages.json")["responses"]
    stubber.add_response("get_document_text_detection", first)
    stubber.add_client_error(
        "get_document_text_detection", service_error_code="ProvisionedThroughputExceededException"
    )
    with pytest.raises(EngineUnavailableError) as info:
        TextractAsyncJobs(client).results("j")
    assert info.value.retryable


def test_results_partial_success_returns_the_pages_that_exist(client: Any, stubber: Any) -> None:
    first, second = load("textract_get_document_text_detection_2pages.json")["responses"]
    partial = {**first, "JobStatus": "PARTIAL_SUCCESS"}
    partial.pop("NextToken")
    partial["Blocks"] = [b for b in first["Blocks"] if b["Page"] == 1]
    partial["Warnings"] = [{"ErrorCode": "PAGE_PROCESSING_FAILED", "Pages": [2]}]
    stubber.add_response("get_document_text_detection", partial)
    assert sorted(TextractAsyncJobs(client).results("j")) == [1]


def test_max_results_is_bounded(client: Any) -> None:
    with pytest.raises(EngineConfigurationError):
        TextractAsyncJobs(client, max_results=1001)


# --- bounded waiting -------------------------------------------------------------------------


def test_next_poll_delay_backs_off_to_a_cap() -> None:
    assert [next_poll_delay(a) for a in range(7)] == [5, 10, 20, 40, 60, 60, 60]
    assert next_poll_delay(10_000) == 60
    with pytest.raises(ValueError):
        next_poll_delay(-1)


class FakeClock:
    """A monotonic clock advanced only by the fake sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_a_job_that_never_finishes_gives_up(client: Any, stubber: Any) -> None:
    policy = AsyncPollPolicy(
        initial_delay_seconds=5, multiplier=2, max_delay_seconds=60, max_total_wait_seconds=300
    )
    for _ in range(9):
        stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    polls = capture_params(client, "GetDocumentTextDetection")
    clock = FakeClock()
    status = TextractAsyncJobs(client, policy=policy).wait_for("j", sleep=clock.sleep, clock=clock)

    assert status.state == "FAILED" and status.timed_out
    assert 300 < clock.now <= 300 + 1  # never waits much past the budget
    assert max(clock.sleeps) <= 60
    # 5+10+20+40+60+60+60 s, then the rest of the budget, then the poll that declares failure
    assert len(polls) == len(clock.sleeps) + 1 == 9


def test_wait_for_returns_when_job_succeeds(client: Any, stubber: Any) -> None:
    stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    stubber.add_response(
        "get_document_text_detection", {"JobStatus": "SUCCEEDED", "DocumentMetadata": {"Pages": 1}}
    )
    clock = FakeClock()
    status = TextractAsyncJobs(client).wait_for("j", sleep=clock.sleep, clock=clock)
    assert status.state == "SUCCEEDED" and clock.sleeps == [5, 10]


def test_recognize_after_close_is_refused(client: Any) -> None:
    engine = TextractEngine(client=client)
    engine.close()
    with pytest.raises(EngineConfigurationError):
        engine.recognize(page_image(50, 50))


# --- the shared OcrEngine contract, on recorded responses ---------------------------------------

FIXTURE_LINES = ("This is text.", "In two separate lines.", "Sheet A101")


def blank_page_response() -> dict[str, Any]:
    """What DetectDocumentText returns for a page without text: the PAGE block only."""
    recorded = load("textract_detect_document_text.json")
    page = next(b for b in recorded["Blocks"] if b["BlockType"] == "PAGE")
    return {**recorded, "Blocks": [{k: v for k, v in page.items() if k != "Relationships"}]}


class TestTextractEngineContract(OcrEngineContract):
    """The OcrEngine contract through a real boto3 client, replaying the recorded response via Stubber."""

    subject = TextractEngine

    @pytest.fixture
    def engine(self, client: Any) -> Any:
        stub = Stubber(client)

        def replay(params: dict[str, Any], **kwargs: Any) -> None:
            image = Image.open(io.BytesIO(params["Document"]["Bytes"]))
            blank = image.convert("L").getextrema()[0] == 255
            body = blank_page_response() if blank else load("textract_detect_document_text.json")
            stub.add_response("detect_document_text", body, {"Document": ANY})  # validated by the model

        client.meta.events.register("provide-client-params.textract.DetectDocumentText", replay)
        with stub, TextractEngine(client=client) as engine:
            yield engine
            stub.assert_no_pending_responses()

    @pytest.fixture
    def contract_image_and_text(self) -> tuple[Image.Image, str]:
        """A letter page at 200 dpi with the recorded response's text."""
        image = pages.text_page_image(FIXTURE_LINES, dpi=200, size_in=(8.5, 11.0), font_pt=12)
        return image, "\n".join(FIXTURE_LINES)
