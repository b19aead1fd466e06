"""Raw AWS Textract calls: build a bounded boto3 client, call an operation, translate errors.

Knows the vendor (boto3/botocore) and nothing about layouts; ``pagestream.ocr.textract`` (one
page) and ``pagestream.ocr.textract_async`` (whole documents in S3) adapt what this returns.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
)

from pagestream.ocr.errors import (
    EngineConfigurationError,
    EngineUnavailableError,
    OcrError,
    UnreadablePageError,
)

#: throttling and server-side trouble: the same request may succeed later
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
#: the document itself is unusable; retrying the same bytes cannot help
UNREADABLE_CODES = frozenset(
    {
        "BadDocumentException",
        "UnsupportedDocumentException",
        "DocumentTooLargeException",
        "InvalidParameterException",
        "InvalidS3ObjectException",
    }
)
#: credentials, permissions, region or keys must be fixed by an operator
CONFIGURATION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClient",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidKMSKeyException",
        "SubscriptionRequiredException",
    }
)


def library_version() -> str:
    """The installed boto3 version (an engine version when a response names no model version)."""
    try:
        return package_version("boto3")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def bounded_config(
    *, connect_timeout: float = 5.0, read_timeout: float = 30.0, max_attempts: int = 3
) -> Config:
    """Standard-mode retries with a bounded number of attempts and explicit socket timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def create_client(
    *,
    region_name: str | None = None,
    session: boto3.session.Session | None = None,
    config: Config | None = None,
) -> Any:
    """A Textract client from the default credential/region chain; nothing is sent until a call."""
    try:
        return (session or boto3.session.Session()).client(
            "textract", region_name=region_name, config=config or bounded_config()
        )
    except Exception as e:  # classified, never swallowed
        raise translate_error(e) from e


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (e.g. ``ThrottlingException``)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate_error(exc: BaseException) -> OcrError:
    """Map a botocore exception to our error class by its error code or exception type."""
    if isinstance(exc, OcrError):
        return exc
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in RETRYABLE_CODES:
            return EngineUnavailableError(
                f"Textract is throttling or unavailable ({code}: {message}); retry later"
            )
        if code in UNREADABLE_CODES:
            return UnreadablePageError(f"Textract cannot read this document ({code}: {message})")
        if code in CONFIGURATION_CODES:
            return EngineConfigurationError(
                f"Textract rejected the credentials or permissions ({code}: {message}); check the AWS "
                "credential chain (AWS_PROFILE, role) and the textract:* IAM permissions"
            )
        if status >= 500 or status == 429:
            return EngineUnavailableError(f"Textract server error ({code or status}: {message}); retry later")
        return OcrError(f"Textract call failed ({code or status}: {message})")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return EngineConfigurationError(
            f"no usable AWS credentials ({type(exc).__name__}); configure the default chain "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance/IRSA role)"
        )
    if isinstance(exc, NoRegionError):
        return EngineConfigurationError("no AWS region configured; set AWS_REGION or pass region_name")
    if isinstance(exc, (BotocoreConnectionError, HTTPClientError)):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ProxyConnectionError …
        return EngineUnavailableError(f"Textract unreachable ({type(exc).__name__}: {exc}); retry later")
    if isinstance(exc, ParamValidationError):
        return UnreadablePageError(f"Textract request rejected before sending: {exc}")
    return OcrError(f"Textract call failed ({type(exc).__name__}: {exc})")


def call(operation: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
    """Call one Textract operation, raising our errors (retryable ones stay retryable)."""
    try:
        return operation(**params)
    except Exception as e:  # classified, never swallowed
        raise translate_error(e) from e
