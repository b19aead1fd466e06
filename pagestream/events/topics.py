"""Topic names: ``pagestream.<event-type>``; retries ``….retry``, dead letters ``….dlq``."""

from __future__ import annotations

PREFIX = "pagestream."

DOCUMENT_SUBMIT = "pagestream.document.submit.v1"  # command topic for external producers
DOCUMENT_SUBMIT_DLQ = DOCUMENT_SUBMIT + ".dlq"  # submit commands that cannot be decoded
DOCUMENT_COMMITTED = "pagestream.document.committed.v1"
DOCUMENT_REJECTED = "pagestream.document.rejected.v1"
DOCUMENT_OCR_COMPLETED = "pagestream.document.ocr-completed.v1"
DOCUMENT_DELETED = "pagestream.document.deleted.v1"
DOCUMENT_OCR_JOB_SUBMITTED = (
    "pagestream.document.ocr-job-submitted.v1"  # async OCR jobs, re-enqueued per poll
)
DOCUMENT_OCR_JOB_SUBMITTED_DLQ = DOCUMENT_OCR_JOB_SUBMITTED + ".dlq"
PAGE_OCR_REQUESTED = "pagestream.page.ocr-requested.v1"
PAGE_OCR_REQUESTED_RETRY = PAGE_OCR_REQUESTED + ".retry"
PAGE_OCR_REQUESTED_DLQ = PAGE_OCR_REQUESTED + ".dlq"
PAGE_OCR_COMPLETED = "pagestream.page.ocr-completed.v1"
PAGE_OCR_FAILED = "pagestream.page.ocr-failed.v1"
DOCUMENT_COMMITTED_DLQ = DOCUMENT_COMMITTED + ".dlq"
PERSIST_DLQ = "pagestream.persist.dlq"
CDC_HEARTBEAT = "pagestream.cdc.heartbeat"

ALL_TOPICS: tuple[str, ...] = (
    DOCUMENT_SUBMIT,
    DOCUMENT_SUBMIT_DLQ,
    DOCUMENT_COMMITTED,
    DOCUMENT_REJECTED,
    DOCUMENT_OCR_COMPLETED,
    DOCUMENT_DELETED,
    DOCUMENT_OCR_JOB_SUBMITTED,
    DOCUMENT_OCR_JOB_SUBMITTED_DLQ,
    PAGE_OCR_REQUESTED,
    PAGE_OCR_REQUESTED_RETRY,
    PAGE_OCR_REQUESTED_DLQ,
    PAGE_OCR_COMPLETED,
    PAGE_OCR_FAILED,
    DOCUMENT_COMMITTED_DLQ,
    PERSIST_DLQ,
)


#: every dead-letter topic: what ``pagestream dlq`` and ``/v1/dlq`` may read and redrive
DLQ_TOPICS: tuple[str, ...] = tuple(t for t in ALL_TOPICS if t.endswith(".dlq"))


def topic_for(event_type: str) -> str:
    """The topic an event type is published on (the outbox router's ``pagestream.${type}``)."""
    return PREFIX + event_type
