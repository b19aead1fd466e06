"""Session fixtures for integration tests: a real broker and a real PostgreSQL.

``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` point the tests at existing servers; when unset,
an embedded Tansu broker and a private PostgreSQL cluster are started once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagestream.events.topics import DOCUMENT_SUBMIT
from pagestream.settings import Settings
from pagestream.stack.broker import TansuBroker
from pagestream.stack.postgres import PrivatePostgres
from tests.schema_guard import ProducerSchemaGuard

_HERE = Path(__file__).parent.resolve()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``integration``."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's state directory (objects, embedded broker and database state)."""
    return tmp_path_factory.mktemp("pagestream-state")


@pytest.fixture(scope="session")
def tansu_broker(stack_dir: Path) -> Iterator[TansuBroker | None]:
    """The embedded broker, or None when KAFKA_BOOTSTRAP_SERVERS names an external one.

    Either way a record that does not match its topic's schema is refused at produce time
    (docs/schemas.md): by Tansu, or by a test-only guard in our producer for an external broker.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        # an external broker validates nothing: our producers refuse what Tansu would (tests only)
        with ProducerSchemaGuard(unvalidated_topics=(DOCUMENT_SUBMIT,)).installed():
            yield None
        return
    # The broker refuses records that do not match their topic's schema, so every record the suite's
    # services produce is checked. Except on the command topic: test_submit_topic hands the submit
    # consumer undecodable commands, as a broker without validation (Apache Kafka) would accept them.
    broker = TansuBroker(stack_dir / "broker", unvalidated_topics=(DOCUMENT_SUBMIT,))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def private_postgres(stack_dir: Path) -> Iterator[PrivatePostgres | None]:
    """The private PostgreSQL cluster (fast, non-durable), or None when DATABASE_URL is set."""
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    pg = PrivatePostgres(stack_dir / "postgres", fast=True)
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu_broker: TansuBroker | None) -> str:
    """Bootstrap servers of the broker under test."""
    if tansu_broker is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    return tansu_broker.bootstrap_servers


@pytest.fixture(scope="session")
def database_url(private_postgres: PrivatePostgres | None) -> str:
    """URL (with password) of the PostgreSQL database under test."""
    if private_postgres is None:
        return os.environ["DATABASE_URL"]
    return private_postgres.url


@pytest.fixture(scope="session")
def settings(kafka_bootstrap: str, database_url: str, stack_dir: Path) -> Settings:
    """Settings pointing at the session's broker, database and a file object store."""
    objects = stack_dir / "objects"
    objects.mkdir(exist_ok=True)
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        STORAGE_URL=f"file://{objects}",
        PAGESTREAM_STATE_DIR=stack_dir,
    )
