"""Accepting a document: validate by content, store the bytes, then ONE transaction for the
``documents`` row and its ``document.committed.v1`` outbox row. Shared by the HTTP API and
the ``document.submit.v1`` command consumer.

Nothing accepted is ever discarded: an encrypted PDF without its password is stored and
recorded as ``failed`` with the reason, so it can be resubmitted with ``password``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from pagestream import metrics
from pagestream.db import Engine
from pagestream.db.documents import NewDocument, create_document, find_existing
from pagestream.events.envelope import new_traceparent
from pagestream.events.models import DocumentOptions
from pagestream.intake import InspectedDocument, IntakeLimits, RejectedDocument, decrypt_pdf, inspect_document
from pagestream.settings import Settings
from pagestream.storage import ObjectStore, content_key

log = logging.getLogger(__name__)

ENCRYPTED_REASON = "PDF is encrypted; resubmit it with the `password` form field (the bytes are kept)"
# A message about a password, not one (bandit's S105 looks at the name).
WRONG_PASSWORD_REASON = (
    "PDF is encrypted and the given password does not open it; resubmit with the right `password`"  # noqa: S105
)


@dataclass(frozen=True)
class SubmissionResult:
    """The document row (new or existing) and whether this call created it."""

    document: dict[str, Any]
    created: bool


class DocumentIntake:
    """Validates, stores and records submitted documents."""

    def __init__(self, settings: Settings, engine: Engine, store: ObjectStore):
        self._engine = engine
        self._store = store
        self._limits = IntakeLimits(
            max_bytes=settings.max_upload_bytes,
            max_pages=settings.max_pages,
            max_image_pixels=settings.max_image_pixels,
        )

    @property
    def limits(self) -> IntakeLimits:
        return self._limits

    def submit(
        self,
        data: bytes,
        *,
        channel: str,
        filename: str | None = None,
        idempotency_key: str | None = None,
        client_reference: str | None = None,
        options: DocumentOptions | None = None,
        password: str | None = None,
        force: bool = False,
        traceparent: str | None = None,
    ) -> SubmissionResult:
        """Accept ``data`` or raise ``RejectedDocument`` (4xx with a precise detail)."""
        if idempotency_key:
            existing = find_existing(self._engine, idempotency_key=idempotency_key)
            if existing:
                return SubmissionResult(existing, created=False)
        try:
            info: InspectedDocument = inspect_document(
                data, self._limits, password=password, declared_name=filename
            )
        except RejectedDocument as e:
            metrics.DOCUMENTS_REJECTED.labels(channel, str(e.status_code)).inc()
            raise
        if not force and not (info.encrypted and not info.password_ok):
            existing = find_existing(self._engine, sha256=info.sha256)
            if existing:
                return SubmissionResult(existing, created=False)
        unprocessable = None
        stored = data
        if info.encrypted and not info.password_ok:
            unprocessable = WRONG_PASSWORD_REASON if password else ENCRYPTED_REASON
        elif info.encrypted and password:
            stored = decrypt_pdf(data, password)
        stored_sha = info.sha256 if stored is data else hashlib.sha256(stored).hexdigest()
        uri = self._store.put(content_key(stored_sha), stored, info.media_type)
        doc = create_document(
            self._engine,
            NewDocument(
                sha256=info.sha256,
                media_type=info.media_type,
                size_bytes=info.size_bytes,
                storage_uri=uri,
                page_count=info.page_count,
                filename=_display_name(filename),
                client_reference=client_reference,
                idempotency_key=idempotency_key,
                options=options or DocumentOptions(),
                unprocessable=unprocessable,
            ),
            traceparent=traceparent or new_traceparent(),
        )
        metrics.DOCUMENTS_RECEIVED.labels(channel).inc()
        metrics.UPLOAD_BYTES.inc(info.size_bytes)
        log.info(
            "document accepted",
            extra={
                "document_id": str(doc["id"]),
                "media_type": info.media_type,
                "pages": info.page_count,
                "channel": channel,
                "status": doc["status"],
            },
        )
        return SubmissionResult(doc, created=True)


def _display_name(name: str | None) -> str | None:
    """The client's file name, for display only (never used as a path)."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in base if ch.isprintable())[:255] or None
