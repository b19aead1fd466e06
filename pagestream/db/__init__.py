"""PostgreSQL access: the only package that imports SQLAlchemy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from pagestream.db.errors import DatabaseError, DatabaseUnavailableError, DataRejectedError
from pagestream.settings import redact_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

__all__ = ["Engine", "make_engine", "migrate", "ping", "sqlalchemy_url", "translate_errors"]


def sqlalchemy_url(dsn: str, driver: str = "psycopg2") -> str:
    """``postgresql://…`` → ``postgresql+<driver>://…``."""
    for prefix in ("postgresql+psycopg2://", "postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return f"postgresql+{driver}://" + dsn[len(prefix) :]
    raise DatabaseError(f"DATABASE_URL must start with postgresql://, got {redact_url(dsn)}")


def make_engine(dsn: str, *, pool_size: int = 5, application_name: str = "pagestream") -> Engine:
    """A pooled synchronous engine (psycopg2). Connects lazily, on first use."""
    return create_engine(
        sqlalchemy_url(dsn),
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"application_name": application_name, "connect_timeout": 10},
        hide_parameters=True,
    )


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Wrap SQLAlchemy errors: connection/serialization problems become retryable."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as e:
        raise DatabaseUnavailableError(f"{what}: database unavailable ({type(e.orig).__name__})") from e
    except sa_exc.DBAPIError as e:
        code = getattr(e.orig, "pgcode", None)
        if code in ("40001", "40P01"):  # serialization failure, deadlock
            raise DatabaseUnavailableError(f"{what}: transaction conflict ({code}), retry") from e
        if code and code[:2] in (
            "22",
            "23",
        ):  # data exception, integrity violation: this data, not the database
            raise DataRejectedError(f"{what}: {type(e.orig).__name__} {code}") from e
        raise DatabaseError(f"{what}: {type(e.orig).__name__} {code or ''}".strip()) from e


def migrate(dsn: str) -> None:
    """Apply every Alembic migration not yet applied (idempotent; safe from several processes)."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(dsn, pool_size=1, application_name="pagestream-migrate")
    try:
        with translate_errors("migrate"), engine.begin() as conn:
            # one migrator at a time, even when several services start together
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def ping(engine: Engine) -> str | None:
    """None if the database answers, else a short reason (for readiness endpoints)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except (sa_exc.SQLAlchemyError, OSError) as e:  # any failure means not ready; report only its kind
        return f"database: {type(e).__name__}"
