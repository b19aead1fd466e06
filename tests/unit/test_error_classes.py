"""Error classes decide retry vs. give up: the classification a user's document depends on."""

from __future__ import annotations

import uuid

import pytest

from pagestream.db.progress import storable
from pagestream.events.envelope import encode_data
from pagestream.events.errors import EventEncodeError
from pagestream.events.models import PageOcrFailedV1, utcnow
from pagestream.kafka.errors import DeliveryError, RecordRejectedError, RecordTooLargeError, delivery_error
from pagestream.retry import Backoff, capped_exponential


@pytest.mark.parametrize(
    ("code", "retriable", "cls", "retryable"),
    [
        ("MSG_SIZE_TOO_LARGE", True, RecordTooLargeError, False),
        ("_MSG_SIZE_TOO_LARGE", False, RecordTooLargeError, False),
        ("INVALID_RECORD", True, RecordRejectedError, False),
        ("TOPIC_AUTHORIZATION_FAILED", False, RecordRejectedError, False),
        ("_MSG_TIMED_OUT", True, DeliveryError, True),
        ("NOT_LEADER_FOR_PARTITION", True, DeliveryError, True),
        ("SOMETHING_FATAL", False, RecordRejectedError, False),
    ],
)
def test_delivery_errors_are_classified_by_code(
    code: str, retriable: bool, cls: type, retryable: bool
) -> None:
    err = delivery_error("pagestream.x", code, "boom", retriable=retriable)
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.code == code
    assert "pagestream.x" in str(err)


def test_an_event_with_lone_surrogates_is_an_encode_error_not_a_crash() -> None:
    ev = PageOcrFailedV1(
        page_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        page_number=1,
        page_count=1,
        attempts=1,
        reason="x",
        detail="bad \ud83d text",
        failed_at=utcnow(),
    )
    with pytest.raises(EventEncodeError) as info:
        encode_data(ev)
    assert info.value.retryable is False
    assert "page.ocr-failed.v1" in str(info.value)


def test_storable_strips_nul_and_replaces_lone_surrogates_everywhere() -> None:
    value = {"text": "a\x00b \ud83d c \U0001f600", "words": [{"t": "\udc00x"}], "n": 3, "k\x00": None}
    assert storable(value) == {
        "text": "ab \ufffd c \U0001f600",
        "words": [{"t": "\ufffdx"}],
        "n": 3,
        "k": None,
    }
    # the result is always valid UTF-8
    str(storable(value)).encode("utf-8")


def test_backoff_is_capped_and_resets() -> None:
    b = Backoff(initial=1.0, maximum=5.0, jitter=0.0)
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next_delay() == 1.0
    assert [capped_exponential(a, initial=2.0, factor=4.0, maximum=30.0) for a in (1, 2, 3, 4)] == [
        2,
        8,
        30,
        30,
    ]


def test_backoff_stays_at_its_cap_however_long_it_keeps_failing() -> None:
    # a relay reconnecting every 30 s for a day counts thousands of failures; 2.0 ** 1100 overflows
    b = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
    delays = [b.next_delay() for _ in range(5000)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == 30.0
    assert capped_exponential(10_000, initial=5.0, factor=2.0, maximum=60.0) == 60.0
