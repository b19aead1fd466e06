"""Raw Google Cloud Vision calls: build the client, send one DOCUMENT_TEXT_DETECTION, translate errors.

Knows the vendor (google-cloud-vision, google.api_core, google.auth) and nothing about layouts;
``pagestream.ocr.vision`` adapts what this returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import google.auth.exceptions as gauth_exceptions
import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import vision

from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)

#: retrying the same page later may succeed
_RETRYABLE = (
    gexc.ResourceExhausted,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.RetryError,
    gauth_exceptions.TransportError,
)
#: the request itself is unusable (bad image data, image too large, unsupported format)
_UNREADABLE = (gexc.InvalidArgument,)
#: credentials, permissions or the project (API disabled, billing) must be fixed
_CONFIGURATION = (
    gexc.PermissionDenied,
    gexc.Unauthenticated,
    gauth_exceptions.DefaultCredentialsError,
)

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def library_version() -> str:
    """The installed google-cloud-vision version."""
    try:
        return package_version("google-cloud-vision")
    except PackageNotFoundError:  # pragma: no cover - vendored or frozen builds
        return "unknown"


def create_client(client_options: dict[str, Any] | None = None) -> vision.ImageAnnotatorClient:
    """A client with Application Default Credentials (google.auth.default); gRPC connects on first call."""
    try:
        return vision.ImageAnnotatorClient(client_options=client_options)
    except Exception as e:  # classified, never swallowed
        raise translate_error(e) from e


def translate_error(exc: BaseException) -> OcrError:
    """Map a vendor exception to our error class by its type (never by its message)."""
    name = type(exc).__name__
    if isinstance(exc, _CONFIGURATION):
        return EngineConfigurationError(
            f"Google Vision rejected the credentials or project ({name}: {exc}); check "
            "GOOGLE_APPLICATION_CREDENTIALS / `gcloud auth application-default login` and that "
            "the Vision API is enabled with billing"
        )
    if isinstance(exc, gauth_exceptions.RefreshError):
        if getattr(exc, "retryable", False):
            return EngineUnavailableError(f"Google credentials refresh failed transiently ({exc})")
        return EngineConfigurationError(f"Google credentials cannot be refreshed ({exc}); re-authenticate")
    if isinstance(exc, _RETRYABLE):
        return EngineUnavailableError(f"Google Vision unavailable or throttling ({name}: {exc}); retry later")
    if isinstance(exc, _UNREADABLE):
        return UnreadablePageError(f"Google Vision cannot read this page image ({name}: {exc})")
    return OcrError(f"Google Vision call failed ({name}: {exc})")


def status_error(status: Any) -> OcrError | None:
    """Translate a per-image ``error`` (google.rpc.Status) of an AnnotateImageResponse, or None if OK."""
    code = int(getattr(status, "code", 0) or 0)
    if code == 0:
        return None
    message = getattr(status, "message", "") or ""
    grpc_code = _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)
    return translate_error(gexc.from_grpc_status(grpc_code, message))


def request_retry(deadline_seconds: float) -> gretry.Retry | None:
    """A bounded in-call retry for transient gRPC errors; None disables it."""
    if deadline_seconds <= 0:
        return None
    return gretry.Retry(
        predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
        initial=0.5,
        maximum=4.0,
        multiplier=2.0,
        timeout=deadline_seconds,
    )


def detect_document_text(
    client: vision.ImageAnnotatorClient,
    content: bytes,
    *,
    language_hints: Sequence[str] = (),
    timeout_seconds: float,
    retry_deadline_seconds: float,
) -> vision.AnnotateImageResponse:
    """One DOCUMENT_TEXT_DETECTION request for one image; errors (call or per-image) are raised as ours."""
    request = vision.AnnotateImageRequest(
        image=vision.Image(content=content),
        features=[vision.Feature(type_=vision.Feature.Type.DOCUMENT_TEXT_DETECTION)],
        image_context=vision.ImageContext(language_hints=list(language_hints)),
    )
    try:
        batch = client.batch_annotate_images(
            requests=[request],
            retry=request_retry(retry_deadline_seconds),
            timeout=timeout_seconds,
        )
    except Exception as e:  # classified, never swallowed
        raise translate_error(e) from e
    if len(batch.responses) != 1:
        raise OcrError(f"Google Vision returned {len(batch.responses)} responses for one image")
    response = batch.responses[0]
    error = status_error(response.error)
    if error is not None:
        raise error
    return response
