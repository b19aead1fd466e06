"""SubmitCommandConsumer: ``document.submit.v1`` commands from external producers → documents.

A command names the document by URI (``s3://bucket/key``, or ``file:///abs/path`` under an
allowed root on the embedded stack). The bytes are read through the object store and go
through the same ``DocumentIntake.submit`` as HTTP uploads (row + outbox event in one
transaction). A command that cannot be accepted yields ``document.rejected.v1`` with the
client's reference; a record that is not a command at all goes to the submit DLQ. The consumer
is a ``Handler``: ``ConsumerLoop`` decodes, publishes the rejection, dead-letters, retries
transient failures and commits the offset only after one of those effects is durable; a
redelivered command is absorbed by its idempotency key (the command's own, else one derived
from its ``ce_id``) or its sha256.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pagestream import metrics
from pagestream.errors import PagestreamError
from pagestream.events.envelope import Envelope
from pagestream.events.models import DocumentRejectedV1, DocumentSubmitV1, utcnow
from pagestream.events.topics import DOCUMENT_REJECTED, DOCUMENT_SUBMIT, DOCUMENT_SUBMIT_DLQ
from pagestream.intake import RejectedDocument
from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from pagestream.storage import LocalObjectStore, ObjectStore, S3ObjectStore
from pagestream.storage.errors import (
    InvalidObjectUriError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
)
from pagestream.storage.s3 import bucket_name_problem, parse_s3_uri
from pagestream.submission import DocumentIntake
from pagestream.workers.loop import ConsumerLoop, Delivery, Emit, Handler

log = logging.getLogger(__name__)
GROUP = "pagestream-ingest-submit"
CHANNEL = "kafka"

_REJECT_REASONS = {413: "too_large", 415: "unsupported_media_type", 422: "unprocessable"}


class CommandRejected(PagestreamError):  # noqa: N818 — names the outcome, like RejectedDocument
    """A submit command that cannot be carried out: answered with ``document.rejected.v1``."""

    def __init__(self, status_code: int, reason: str, detail: str):
        super().__init__(detail)
        self.status_code, self.command_reason, self.detail = status_code, reason, detail


class SubmitCommandConsumer(Handler[DocumentSubmitV1]):
    """Consumes ``pagestream.document.submit.v1`` in group ``pagestream-ingest-submit``."""

    def __init__(
        self,
        settings: Settings,
        intake: DocumentIntake,
        store: ObjectStore,
        *,
        consumer: EventConsumer | None = None,
        producer: EventProducer | None = None,
    ):
        self._settings = settings
        self._intake = intake
        self._store = store
        self._file_root = _file_root(settings, store)
        # Commands from Kafka producers: the submit → accepted hop may take a 50 ms poll (its producer
        # does not wait on it); the 10 ms poll is for hops inside a document's processing.
        self._consumer = consumer or EventConsumer(
            settings,
            GROUP,
            [DOCUMENT_SUBMIT],
            client_id="pagestream-ingest-submit",
            extra={"fetch.wait.max.ms": 50},
        )
        self._producer = producer or EventProducer(settings, client_id="pagestream-ingest-submit")
        self._loop = ConsumerLoop(
            self._consumer,
            self._producer,
            service="ingest-submit",
            dlq_topic=DOCUMENT_SUBMIT_DLQ,
            expected=DocumentSubmitV1,
            handler=self,
        )

    @property
    def ready(self) -> bool:
        return self._loop.healthy

    @property
    def healthy(self) -> bool:
        return self._loop.healthy

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; transient failures redeliver the same command."""
        self._loop.run(stop)

    def handle(self, d: Delivery[DocumentSubmitV1]) -> list[Emit]:
        """Submit the command's document (its row and outbox event are the effect: no events here)."""
        self.submit(d.envelope)
        return []

    def failed(self, d: Delivery[DocumentSubmitV1], error: PagestreamError) -> list[Emit]:
        """Neither the command nor a retry can fix this: tell the producer, never block the partition."""
        if isinstance(error, CommandRejected):
            return [self._rejected(d.task, error.status_code, error.command_reason, error.detail)]
        return [self._rejected(d.task, 422, error.reason, str(error))]

    def submit(self, env: Envelope) -> None:
        """Read the command's bytes and submit them; CommandRejected if that cannot be done."""
        cmd = env.expect(DocumentSubmitV1)
        data = self._read(cmd.uri)
        name = cmd.filename or unquote(urlsplit(cmd.uri).path).rsplit("/", 1)[-1] or None
        try:
            result = self._intake.submit(
                data,
                channel=CHANNEL,
                filename=name,
                idempotency_key=cmd.idempotency_key or f"kafka:{env.id}",
                client_reference=cmd.client_reference,
                options=cmd.options,
                traceparent=env.traceparent,
            )
        except RejectedDocument as e:
            raise CommandRejected(
                e.status_code, _REJECT_REASONS.get(e.status_code, e.reason), e.detail
            ) from e
        log.info(
            "submit command handled",
            extra={
                "document_id": str(result.document["id"]),
                "duplicate": not result.created,
                "client_reference": cmd.client_reference,
                "traceparent": env.traceparent,
            },
        )

    def _read(self, uri: str) -> bytes:
        """The bytes at ``uri``, only from places this service is allowed to read."""
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return self._read_file(uri)
        if parts.scheme == "s3":
            return self._read_s3(uri)
        raise CommandRejected(
            400, "bad_uri", f"uri {uri[:200]!r} must be s3://bucket/key or file:///absolute/path"
        )

    def _read_s3(self, uri: str) -> bytes:
        """Only from the configured store's bucket and prefix; size checked (HEAD) before reading."""
        try:
            bucket, _key = parse_s3_uri(uri)
        except InvalidObjectUriError as e:
            raise CommandRejected(400, "bad_uri", f"{e}; send s3://bucket/key") from e
        store = self._store
        if not isinstance(store, S3ObjectStore):
            raise CommandRejected(
                400,
                "bad_uri",
                "s3:// URIs need an S3 object store (STORAGE_URL=s3://…); "
                "this deployment stores files locally: use file://",
            )
        if bucket != store.bucket and (problem := bucket_name_problem(bucket)):
            raise CommandRejected(400, "bad_uri", f"uri {uri[:200]!r}: {problem}")
        if not store.within(uri):
            raise CommandRejected(
                403,
                "uri_not_allowed",
                f"{uri[:200]} is outside the bucket and prefix submit commands may read "
                f"({store.location}); upload the document under {store.location} and resubmit",
            )
        limit = self._intake.limits.max_bytes
        return self._get(store, uri, limit)

    def _read_file(self, uri: str) -> bytes:
        parts = urlsplit(uri)
        if self._file_root is None:
            raise CommandRejected(
                403,
                "uri_not_allowed",
                "file:// URIs are not accepted by this deployment "
                "(set PAGESTREAM_SUBMIT_FILE_ROOT to allow a directory)",
            )
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise CommandRejected(400, "bad_uri", f"uri {uri[:200]!r} must be file:///absolute/path")
        path = Path(unquote(parts.path)).resolve()  # symlinks and .. resolved before the check
        if self._file_root not in path.parents:
            raise CommandRejected(
                403,
                "uri_not_allowed",
                f"{path} is outside the directory submit commands may read ({self._file_root})",
            )
        try:
            size = path.stat().st_size
        except FileNotFoundError as e:
            raise CommandRejected(404, "object_not_found", f"no file at {uri}") from e
        except OSError as e:
            raise CommandRejected(422, "unreadable", f"cannot read {uri}: {e.strerror}") from e
        limit = self._intake.limits.max_bytes
        if size > limit:
            raise CommandRejected(
                413,
                "too_large",
                f"file is {size} bytes; limit is {limit} bytes (PAGESTREAM_MAX_UPLOAD_BYTES)",
            )
        return self._get(LocalObjectStore(self._file_root), path.as_uri(), limit)

    @staticmethod
    def _get(store: ObjectStore, uri: str, limit: int) -> bytes:
        try:
            return store.get_bounded(uri, limit)
        except ObjectNotFoundError as e:
            raise CommandRejected(404, "object_not_found", f"no object at {uri}") from e
        except ObjectTooLargeError as e:
            size = f"{e.size} bytes" if e.size is not None else f"over {limit} bytes"
            raise CommandRejected(
                413,
                "too_large",
                f"object is {size}; limit is {limit} bytes "
                "(PAGESTREAM_MAX_UPLOAD_BYTES); split the document and "
                "submit the parts",
            ) from e
        except InvalidObjectUriError as e:
            raise CommandRejected(400, "bad_uri", f"cannot read {uri[:200]}: {e}") from e
        except StorageError as e:
            if e.retryable:
                raise
            raise CommandRejected(422, "unreadable", f"cannot read {uri}: {e}") from e

    def _rejected(self, cmd: DocumentSubmitV1, status_code: int, reason: str, detail: str) -> Emit:
        metrics.DOCUMENTS_REJECTED.labels(CHANNEL, str(status_code)).inc()
        log.warning(
            "submit command rejected: %s",
            detail,
            extra={"client_reference": cmd.client_reference, "status_code": status_code, "reason": reason},
        )
        rejected = DocumentRejectedV1(
            uri=cmd.uri,
            client_reference=cmd.client_reference,
            status_code=status_code,
            reason=reason,
            detail=detail,
            rejected_at=utcnow(),
        )
        return Emit(rejected, DOCUMENT_REJECTED, same_span=True)


def _file_root(settings: Settings, store: ObjectStore) -> Path | None:
    """Where ``file://`` commands may point: the configured root, else the local store's directory."""
    if settings.submit_file_root is not None:
        return Path(settings.submit_file_root).resolve()
    if isinstance(store, LocalObjectStore):
        return store.root
    return None
