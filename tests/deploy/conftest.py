"""Fixtures of the pod-by-pod smoke test: the integration suite's broker and PostgreSQL fixtures,
re-declared here so tests/deploy gets its own instances (its pods commit offsets and create the
replication slot, which must not disturb the integration tests); the moto S3 server (`s3_endpoint`)
comes from tests/s3_fixtures.py."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401  (fixtures, re-registered for this directory)
    database_url,
    kafka_bootstrap,
    private_postgres,
    stack_dir,
    tansu_broker,
)
