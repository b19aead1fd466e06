"""Kafka I/O: the only package that imports confluent_kafka."""
