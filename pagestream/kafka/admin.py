"""Topic management and broker readiness."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pagestream.events.topics import ALL_TOPICS
from pagestream.kafka.errors import BrokerUnavailableError, KafkaError
from pagestream.settings import Settings

log = logging.getLogger(__name__)


def _admin(conf: dict) -> AdminClient:
    return AdminClient({**conf, "socket.timeout.ms": 5000})


def wait_for_broker(bootstrap_or_settings: str | Settings, timeout: float = 30.0) -> None:
    """Block until the broker answers a metadata request, or raise BrokerUnavailableError."""
    if isinstance(bootstrap_or_settings, Settings):
        conf = bootstrap_or_settings.kafka_client_config()
    else:
        conf = {"bootstrap.servers": bootstrap_or_settings}
    admin = _admin(conf)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            return
        except KafkaException as e:
            last = e
            time.sleep(0.2)
    raise BrokerUnavailableError(
        f"Kafka broker at {conf['bootstrap.servers']} did not answer in {timeout:.0f} s: {last}"
    )


def ensure_topics(settings: Settings, topics: Iterable[str] = ALL_TOPICS, timeout: float = 30.0) -> list[str]:
    """Create missing topics (partitions and replication factor from settings); return those created."""
    admin = _admin(settings.kafka_client_config())
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as e:
        raise BrokerUnavailableError(f"cannot list topics: {e}") from e
    wanted = [t for t in topics if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                t,
                num_partitions=settings.kafka_topic_partitions,
                replication_factor=settings.kafka_replication_factor,
            )
            for t in wanted
        ],
        operation_timeout=timeout,
    )
    created = []
    for topic, fut in futures.items():
        try:
            fut.result(timeout)
            created.append(topic)
        except TimeoutError as e:  # concurrent.futures' (an alias of the builtin since 3.11)
            raise BrokerUnavailableError(f"cannot create topic {topic}: no answer in {timeout:.0f} s") from e
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                continue
            raise KafkaError(
                f"cannot create topic {topic}: {e}", code=getattr(err, "name", lambda: None)()
            ) from e
    log.info("created topics", extra={"topics": created})
    return created


class WatermarkProbe:
    """Reads partition watermarks with one long-lived consumer (no group membership, no commits)."""

    def __init__(self, settings: Settings):
        self._conf = {
            **settings.kafka_client_config(),
            "group.id": "pagestream-watermark-probe",
            "enable.auto.commit": False,
        }
        self._consumer: object | None = None

    def depth(self, topic: str, timeout: float = 5.0) -> int:
        """Records held in ``topic`` (sum of high minus low watermark); 0 for a topic not created yet."""
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(self._conf)
        c: Consumer = self._consumer  # type: ignore[assignment]
        try:
            md = c.list_topics(topic, timeout=timeout)
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                return 0
            total = 0
            for p in t.partitions:
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                total += max(0, high - low)
            return total
        except KafkaException as e:
            raise BrokerUnavailableError(f"cannot read watermarks of {topic}: {e}") from e

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # type: ignore[attr-defined]
            self._consumer = None
