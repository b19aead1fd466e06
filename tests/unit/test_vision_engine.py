"""GoogleVisionEngine through the real ImageAnnotatorClient with a fake gRPC channel (no network)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.exceptions as gauth_exceptions
import grpc
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import vision
from google.cloud.vision_v1.services.image_annotator.transports import ImageAnnotatorGrpcTransport
from PIL import Image

from pagestream._testing import pages
from pagestream.ocr import _google_vision
from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)
from pagestream.ocr.vision import GoogleVisionEngine, language_hints, layout_from_annotation
from tests.contracts.ocr_engine_contract import OcrEngineContract

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "cloud" / "vision_annotate_image_response.json"
BATCH_METHOD = "/google.cloud.vision.v1.ImageAnnotator/BatchAnnotateImages"


def fixture_response() -> vision.AnnotateImageResponse:
    """The recorded-shape AnnotateImageResponse, parsed strictly (unknown fields fail)."""
    return vision.AnnotateImageResponse.from_json(FIXTURE.read_text())


class FakeRpcError(grpc.RpcError, grpc.Call):
    """What grpc raises for a failed unary call: an RpcError that is also a Call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def initial_metadata(self) -> tuple[()]:
        return ()

    def result(self) -> Any:  # the interceptor calls result() on the returned outcome
        raise self

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _FakeCall:
    """The Call object returned beside a successful response."""

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def initial_metadata(self) -> tuple[()]:
        return ()


class _UnaryUnary:
    """A unary-unary multicallable that serializes the request and deserializes canned bytes."""

    def __init__(self, channel: FakeChannel, method: str, serializer: Any, deserializer: Any) -> None:
        self._channel, self._method = channel, method
        self._serializer, self._deserializer = serializer, deserializer

    def with_call(self, request: Any, timeout: float | None = None, **kwargs: Any) -> tuple[Any, _FakeCall]:
        wire = self._serializer(request)  # the real request serializer runs
        self._channel.calls.append((self._method, wire, timeout))
        outcomes = self._channel.outcomes
        outcome = outcomes(wire) if callable(outcomes) else outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return self._deserializer(outcome), _FakeCall()

    def __call__(self, request: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return self.with_call(request, timeout=timeout, **kwargs)[0]


class FakeChannel(grpc.Channel):
    """A gRPC channel whose calls return queued (or computed) response bytes, or raise RpcErrors."""

    def __init__(
        self, outcomes: list[bytes | BaseException] | Callable[[bytes], bytes | BaseException]
    ) -> None:
        self.outcomes = outcomes if callable(outcomes) else list(outcomes)
        self.calls: list[tuple[str, bytes, float | None]] = []

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(self, method, request_serializer, response_deserializer)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        pass

    def unsubscribe(self, callback: Any) -> None:
        pass

    def close(self) -> None:
        pass


def batch_bytes(*responses: vision.AnnotateImageResponse) -> bytes:
    """A serialized BatchAnnotateImagesResponse, as it comes off the wire."""
    batch = vision.BatchAnnotateImagesResponse(responses=list(responses))
    return vision.BatchAnnotateImagesResponse.serialize(batch)


def make_engine(
    outcomes: list[bytes | BaseException] | Callable[[bytes], bytes | BaseException], **kwargs: Any
) -> tuple[GoogleVisionEngine, FakeChannel]:
    """An engine whose real ImageAnnotatorClient talks to a FakeChannel."""
    channel = FakeChannel(outcomes)
    transport = ImageAnnotatorGrpcTransport(credentials=AnonymousCredentials(), channel=channel)
    client = vision.ImageAnnotatorClient(transport=transport)
    kwargs.setdefault("retry_deadline_seconds", 0)
    return GoogleVisionEngine(client=client, **kwargs), channel


def page_image(width: int = 800, height: int = 200) -> Image.Image:
    """A blank page of the fixture's size."""
    return Image.new("L", (width, height), 255)


def sent_request(channel: FakeChannel, index: int = 0) -> vision.BatchAnnotateImagesRequest:
    """Decode what the client put on the wire."""
    return vision.BatchAnnotateImagesRequest.deserialize(channel.calls[index][1])


@pytest.fixture(autouse=True)
def _no_ambient_google_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real credentials or project."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "pagestream-test")


# --- success mapping ------------------------------------------------------------------------


def test_recognize_maps_full_text_annotation_through_real_client() -> None:
    engine, channel = make_engine([batch_bytes(fixture_response())])
    with engine:
        layout = engine.recognize(page_image(), languages="eng+deu", dpi=300)

    assert layout.engine == "google-vision" and layout.source == "ocr"
    assert layout.engine_version.startswith("google-vision v1 (google-cloud-vision ")
    assert (layout.width, layout.height, layout.dpi) == (800, 200, 300)
    # a Vision paragraph spanning two printed lines is split at EOL_SURE_SPACE / LINE_BREAK
    assert [[ln.text for ln in b.lines] for b in layout.blocks] == [
        ["This is text.", "In two separate lines."],
        ["Sheet A101"],
    ]
    assert layout.text == "This is text.\nIn two separate lines.\nSheet A101"
    first = layout.blocks[0].lines[0].words[0]
    # the fixture omits x for x = 0, as proto3 JSON does: it must read as 0
    assert (first.text, first.box.x0, first.box.y0, first.box.x1, first.box.y1) == ("This", 0, 20, 70, 50)
    assert first.box.nx1 == pytest.approx(70 / 800)
    assert all(0 <= w.confidence <= 100 for w in layout.words())
    assert all(w.confidence > 90 for w in layout.words())  # 0.97–1.0 scaled to 0–100
    assert layout.mean_confidence == pytest.approx(sum(w.confidence for w in layout.words()) / 9, abs=0.01)
    assert layout.blocks[0].box.x1 == 330 and layout.blocks[1].box.y1 == 175


def test_request_is_one_document_text_detection_png_with_timeout_and_hints() -> None:
    engine, channel = make_engine([batch_bytes(fixture_response())], timeout_seconds=12.5)
    engine.recognize(page_image(), languages="eng+deu+xyz")

    method, _, timeout = channel.calls[0]
    assert method == BATCH_METHOD
    assert timeout is not None and 0 < timeout <= 12.5
    request = sent_request(channel)
    assert len(request.requests) == 1
    (req,) = request.requests
    assert [f.type_ for f in req.features] == [vision.Feature.Type.DOCUMENT_TEXT_DETECTION]
    assert req.image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(req.image.content)).size == (800, 200)
    assert list(req.image_context.language_hints) == ["en", "de"]


def test_large_image_is_downscaled_and_boxes_mapped_back_to_original_pixels() -> None:
    # The service saw an 800x200 image (half size): boxes in its pixels must come back doubled.
    engine, channel = make_engine([batch_bytes(fixture_response())], max_pixels=800 * 200)
    layout = engine.recognize(page_image(1600, 400))

    sent = Image.open(io.BytesIO(sent_request(channel).requests[0].image.content))
    assert sent.size == (800, 200)
    word = layout.blocks[0].lines[0].words[1]
    assert word.text == "is"
    assert (word.box.x0, word.box.x1) == (160, 210)  # 80..105 in the uploaded image, ×2 back
    assert (layout.width, layout.height) == (1600, 400)


def test_image_over_byte_limit_is_reencoded_smaller() -> None:
    noisy = Image.effect_noise((600, 600), 120)  # incompressible
    engine, channel = make_engine([batch_bytes(fixture_response())], max_image_bytes=60_000)
    engine.recognize(noisy)
    assert len(sent_request(channel).requests[0].image.content) <= 60_000


def test_normalized_vertices_are_scaled_to_pixels() -> None:
    payload = {
        "fullTextAnnotation": {
            "pages": [
                {
                    "blocks": [
                        {
                            "paragraphs": [
                                {
                                    "words": [
                                        {
                                            "boundingBox": {
                                                "normalizedVertices": [
                                                    {"x": 0.1, "y": 0.5},
                                                    {"x": 0.3},
                                                    {"x": 0.3, "y": 0.75},
                                                ]
                                            },
                                            "symbols": [
                                                {
                                                    "text": "Hi",
                                                    "property": {"detectedBreak": {"type": "LINE_BREAK"}},
                                                }
                                            ],
                                            "confidence": 0.5,
                                        }
                                    ]
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    }
    layout = layout_from_annotation(payload, width=1000, height=400, engine_version="v")
    (word,) = layout.words()
    assert (word.box.x0, word.box.y0, word.box.x1, word.box.y1) == (100, 0, 300, 300)
    assert word.confidence == 50


def test_empty_annotation_gives_empty_layout() -> None:
    engine, _ = make_engine([batch_bytes(vision.AnnotateImageResponse())])
    layout = engine.recognize(page_image())
    assert layout.text == "" and layout.blocks == [] and layout.mean_confidence is None


def test_language_hints_translate_tesseract_codes() -> None:
    assert language_hints("eng") == ["en"]
    assert language_hints("deu+eng+deu") == ["de", "en"]
    assert language_hints("osd") == []


# --- error classification -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, EngineUnavailableError),
        (grpc.StatusCode.UNAVAILABLE, EngineUnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, EngineUnavailableError),
        (grpc.StatusCode.INTERNAL, EngineUnavailableError),
        (grpc.StatusCode.INVALID_ARGUMENT, UnreadablePageError),
        (grpc.StatusCode.PERMISSION_DENIED, EngineConfigurationError),
        (grpc.StatusCode.UNAUTHENTICATED, EngineConfigurationError),
        (grpc.StatusCode.NOT_FOUND, OcrError),
    ],
)
def test_rpc_errors_are_classified_by_class(code: grpc.StatusCode, expected: type[OcrError]) -> None:
    engine, _ = make_engine([FakeRpcError(code, "boom")])
    with pytest.raises(expected) as info:
        engine.recognize(page_image())
    assert type(info.value) is expected
    assert info.value.retryable is (expected is EngineUnavailableError)
    assert isinstance(info.value.__cause__, gexc.GoogleAPICallError)  # vendor error kept


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (3, UnreadablePageError),  # INVALID_ARGUMENT: "Bad image data."
        (8, EngineUnavailableError),  # RESOURCE_EXHAUSTED
        (14, EngineUnavailableError),  # UNAVAILABLE
        (7, EngineConfigurationError),  # PERMISSION_DENIED
        (2, OcrError),  # UNKNOWN
    ],
)
def test_per_image_error_field_is_classified(code: int, expected: type[OcrError]) -> None:
    failed = vision.AnnotateImageResponse.from_json(
        json.dumps({"error": {"code": code, "message": "Bad image data."}})
    )
    engine, _ = make_engine([batch_bytes(failed)])
    with pytest.raises(expected) as info:
        engine.recognize(page_image())
    assert type(info.value) is expected
    assert "Bad image data." in str(info.value)


def test_transient_error_is_retried_within_the_bounded_deadline() -> None:
    engine, channel = make_engine(
        [FakeRpcError(grpc.StatusCode.UNAVAILABLE, "try again"), batch_bytes(fixture_response())],
        retry_deadline_seconds=5,
    )
    layout = engine.recognize(page_image())
    assert len(channel.calls) == 2 and layout.blocks


def test_retry_deadline_exhaustion_stays_retryable() -> None:
    engine, channel = make_engine(
        [FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")] * 50, retry_deadline_seconds=0.6
    )
    with pytest.raises(EngineUnavailableError) as info:
        engine.recognize(page_image())
    assert info.value.retryable
    assert 1 < len(channel.calls) < 50


def test_missing_default_credentials_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_credentials(*args: Any, **kwargs: Any) -> Any:
        raise gauth_exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr("google.auth.default", no_credentials)
    engine = GoogleVisionEngine()  # constructing must not touch credentials
    with pytest.raises(EngineConfigurationError) as info:
        engine.start()
    assert not info.value.retryable
    assert isinstance(info.value.__cause__, gauth_exceptions.DefaultCredentialsError)


def test_constructor_does_not_create_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("client created in __init__")

    monkeypatch.setattr(_google_vision.vision, "ImageAnnotatorClient", forbidden)
    GoogleVisionEngine()


def test_start_creates_client_from_default_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), "pagestream-test"))
    engine = GoogleVisionEngine()
    engine.start()
    assert isinstance(engine._client, vision.ImageAnnotatorClient)
    engine.close()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (gexc.TooManyRequests("429"), EngineUnavailableError),
        (gexc.RetryError("deadline", cause=None), EngineUnavailableError),
        (gauth_exceptions.TransportError("dns"), EngineUnavailableError),
        (gauth_exceptions.RefreshError("invalid_grant"), EngineConfigurationError),
        (gexc.InvalidArgument("Request payload size exceeds the limit"), UnreadablePageError),
    ],
)
def test_translate_error_by_class(exc: BaseException, expected: type[OcrError]) -> None:
    assert type(_google_vision.translate_error(exc)) is expected


def test_timeout_must_be_positive() -> None:
    with pytest.raises(EngineConfigurationError):
        GoogleVisionEngine(timeout_seconds=0)


def test_recognize_after_close_is_refused() -> None:
    engine, _ = make_engine([batch_bytes(fixture_response())])
    engine.start()
    engine.close()
    with pytest.raises(EngineConfigurationError):
        engine.recognize(page_image())


# --- the shared OcrEngine contract, on recorded responses ---------------------------------------

FIXTURE_LINES = ("This is text.", "In two separate lines.", "Sheet A101")


def replay_recorded(wire: bytes) -> bytes:
    """Answer like Vision: the recorded response for a page with ink, an empty one for a blank page."""
    (request,) = vision.BatchAnnotateImagesRequest.deserialize(wire).requests
    image = Image.open(io.BytesIO(request.image.content))
    blank = image.convert("L").getextrema()[0] == 255
    return batch_bytes(vision.AnnotateImageResponse() if blank else fixture_response())


class TestGoogleVisionEngineContract(OcrEngineContract):
    """The OcrEngine contract through the real client, replaying the recorded response."""

    subject = GoogleVisionEngine

    @pytest.fixture
    def engine(self) -> Any:
        engine, _ = make_engine(replay_recorded)
        engine.start()
        yield engine
        engine.close()

    @pytest.fixture
    def contract_image_and_text(self) -> tuple[Image.Image, str]:
        """An 800x200 page with the recorded response's text (the response the replay returns)."""
        image = pages.text_page_image(FIXTURE_LINES, dpi=100, size_in=(8.0, 2.0), font_pt=14, margin_in=0.2)
        assert image.size == (800, 200)
        return image, "\n".join(FIXTURE_LINES)
