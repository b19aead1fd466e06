"""Fixtures of the pod-by-pod smoke test: the integration suite's broker and PostgreSQL fixtures,
re-declared here so tests/deploy gets its own instances (its pods commit offsets and create the
replication slot, which must not disturb the integration tests), plus a moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures, re-registered for this directory)
    database_url,
    kafka_bootstrap,
    private_postgres,
    stack_dir,
    tansu_broker,
)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3 (moto's server) standing in for the bucket of STORAGE_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
