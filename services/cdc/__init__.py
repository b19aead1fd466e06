"""The cdc service: OutboxRelay from the outbox slot to Kafka."""
