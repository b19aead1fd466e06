"""Submit a document to pagestream over Kafka (the ``document.submit.v1`` command topic).

Runnable against the embedded stack::

    pagestream up --detach
    cp examples/scanned-letter.png .pagestream/objects/incoming/   # under the allowed root
    python examples/submit_producer.py file://$PWD/.pagestream/objects/incoming/scanned-letter.png \
        --reference letter-42 --bootstrap "$(pagestream status --json | jq -r .bootstrap_servers)"

It needs only confluent-kafka (no pagestream import): this is what any external producer does.
See docs/producers.md for the contract.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

TOPIC = "pagestream.document.submit.v1"


def build_command(
    uri: str, reference: str | None, filename: str | None, force_ocr: bool, languages: str | None
) -> dict:
    """The record value: JSON per schemas/document.submit.v1.json."""
    value: dict = {"uri": uri, "options": {"force_ocr": force_ocr}}
    if reference:
        value["client_reference"] = reference
        value["idempotency_key"] = (
            f"my-system:{reference}"  # a retry of this command makes no second document
        )
    if filename:
        value["filename"] = filename
    if languages:
        value["options"]["languages"] = languages
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="s3://bucket/key, or file:///absolute/path under the allowed root")
    parser.add_argument(
        "--reference", help="your reference; the record key and echoed in document.rejected.v1"
    )
    parser.add_argument("--filename", help="display name (default: the URI's last segment)")
    parser.add_argument("--force-ocr", action="store_true")
    parser.add_argument("--languages", help="Tesseract languages, e.g. eng+deu")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    args = parser.parse_args(argv)

    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"})
    event_id = str(uuid.uuid4())
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_type", b"document.submit.v1"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"/examples/submit_producer"),
        ("ce_time", datetime.now(UTC).isoformat().encode()),
        ("content-type", b"application/json"),
    ]
    value = json.dumps(
        build_command(args.uri, args.reference, args.filename, args.force_ocr, args.languages)
    ).encode()
    outcome: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        outcome.append(
            f"failed: {err}" if err else f"delivered to {msg.topic()}[{msg.partition()}]@{msg.offset()}"
        )  # type: ignore[attr-defined]

    producer.produce(
        TOPIC, key=args.reference or args.uri, value=value, headers=headers, on_delivery=on_delivery
    )
    producer.poll(0)
    remaining = producer.flush(30)  # wait for the broker's acknowledgement
    if remaining or not outcome or outcome[0].startswith("failed"):
        print(f"command {event_id} not acknowledged: {outcome[:1] or 'timeout'}", file=sys.stderr)
        return 1
    print(f"command {event_id} {outcome[0]}")
    print("watch pagestream.document.committed.v1 (accepted) or pagestream.document.rejected.v1 (refused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
