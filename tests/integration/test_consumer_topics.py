"""A consumer subscribed to a topic nobody has created yet: it creates the topic before subscribing,
so its group assigns the topic at the first join and the first record is neither late nor lost."""

from __future__ import annotations

import uuid

from confluent_kafka.admin import AdminClient

from pagestream.kafka.consumer import EventConsumer
from pagestream.kafka.producer import EventProducer
from pagestream.settings import Settings
from tests.waiting import wait_until


def _exists(settings: Settings, topic: str) -> bool:
    admin = AdminClient(settings.kafka_client_config())
    return topic in admin.list_topics(timeout=10).topics


def test_a_consumer_creates_its_missing_topic_and_reads_its_first_record(migrated: Settings) -> None:
    topic = f"pagestream.test-new-type-{uuid.uuid4().hex[:8]}.v1"
    assert not _exists(migrated, topic)
    consumer = EventConsumer(migrated, f"test-{uuid.uuid4()}", [topic])
    producer = EventProducer(migrated)
    try:
        consumer.start()
        assert _exists(migrated, topic), "the consumer subscribed without creating its topic"
        # the group hands the topic's partitions to this member at its first join
        wait_until(lambda: consumer.poll(0.1) is None and consumer.assigned, 60, "partitions assigned")
        producer.produce(topic, b"k", b"the first record", [])
        assert producer.flush(30) == 0
        record = wait_until(lambda: consumer.poll(0.2), 60, "the first record")
        assert (record.offset, record.value) == (0, b"the first record")
    finally:
        producer.close()
        consumer.close()
