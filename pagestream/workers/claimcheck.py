"""Claim check for page results: an event never approaches the broker's size limit.

A page result whose record would exceed ``event_max_bytes`` keeps only the layout's summary
(no text, no blocks) in the event; the full layout JSON goes to the object store under a
content-addressed key, and the event carries its URI and sha256. Persist checks it out,
verifying the digest, before it writes the page.

Producers do not call ``check_in`` themselves: ``ClaimCheck`` is plugged into ``ConsumerLoop``,
which passes every result event it publishes through it (page worker and Textract poller alike).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pagestream.errors import InputError
from pagestream.events.envelope import encode_data
from pagestream.events.models import Event, PageOcrCompletedV1
from pagestream.layout import PageLayout
from pagestream.storage import ObjectStore

CONTENT_TYPE = "application/json"


class ClaimCheckError(InputError):
    """A claim-checked layout is missing or does not match its digest: the page cannot be stored."""

    reason = "claim_check_invalid"


def layout_key(event: PageOcrCompletedV1, digest: str) -> str:
    return f"results/{event.document_id}/{event.page_number:05d}-{digest}.json"


def check_in(event: PageOcrCompletedV1, store: ObjectStore, max_bytes: int) -> PageOcrCompletedV1:
    """``event`` itself when small enough, else a copy whose layout lives in ``store``."""
    if len(encode_data(event)) <= max_bytes:
        return event
    body = event.layout.model_dump_json().encode()
    digest = hashlib.sha256(body).hexdigest()
    uri = store.put(layout_key(event, digest), body, CONTENT_TYPE)
    summary = event.layout.model_copy(update={"text": "", "blocks": []})
    return event.model_copy(update={"layout": summary, "layout_uri": uri, "layout_sha256": digest})


class ClaimCheck:
    """The loop's claim check: a page result too big for the broker is checked in; other events pass."""

    def __init__(self, store: Callable[[], ObjectStore], max_bytes: int):
        """``store()`` is called on the first result that needs it (a consumer that never claim-checks
        never opens the object store)."""
        self._store = store
        self.max_bytes = max_bytes

    def __call__(self, event: Event) -> Event:
        if not isinstance(event, PageOcrCompletedV1) or len(encode_data(event)) <= self.max_bytes:
            return event  # encode_data remembers this event: publishing it does not serialize it again
        return check_in(event, self._store(), self.max_bytes)


def check_out(event: PageOcrCompletedV1, store: ObjectStore) -> PageLayout:
    """The event's full layout: inline, or read back from the store and verified."""
    if not event.layout_uri:
        return event.layout
    from pagestream.storage.errors import ObjectNotFoundError

    try:
        body = store.get(event.layout_uri)
    except ObjectNotFoundError as e:
        raise ClaimCheckError(f"claim-checked layout {event.layout_uri} is missing: {e}") from e
    if hashlib.sha256(body).hexdigest() != event.layout_sha256:
        raise ClaimCheckError(f"claim-checked layout {event.layout_uri} does not match its sha256")
    try:
        return PageLayout.model_validate_json(body)
    except ValueError as e:
        raise ClaimCheckError(f"claim-checked layout {event.layout_uri} is not a page layout: {e}") from e
